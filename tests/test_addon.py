"""crawler/addon.py: one add-on switches the gates and the item stages on, in the flow's order."""

from __future__ import annotations

from scrapy import Spider
from scrapy.utils.test import get_crawler

from crawler.addon import FETCH, GATES, STAGES, ClearanceAddon


def crawler_with_addon(**settings: object):
    crawler = get_crawler(Spider, {"ADDONS": {ClearanceAddon: 0}, **settings})
    crawler._apply_settings()
    return crawler


def enabled(crawler, name: str) -> list[str]:
    from scrapy.utils.conf import build_component_list

    paths = []
    for component in build_component_list(crawler.settings.getwithbase(name)):
        paths.append(component if isinstance(component, str)
                     else f"{component.__module__}.{component.__qualname__}")
    return paths


def test_the_gates_come_first_in_the_flows_order_and_scrapys_own_gates_are_off():
    order = enabled(crawler_with_addon(), "DOWNLOADER_MIDDLEWARES")
    gates = [p for p in order if p.startswith("crawler.")]
    assert gates == [*GATES, *FETCH] == [
        "crawler.downloadermiddlewares.consent.ConsentGateMiddleware",
        "crawler.downloadermiddlewares.robots.RobotsGateMiddleware",
        "crawler.downloadermiddlewares.optout.OptOutGateMiddleware",
        "crawler.downloadermiddlewares.pagebudget.PageBudgetMiddleware",
        "crawler.downloadermiddlewares.conditional.ConditionalRequestMiddleware",
    ]
    assert order[: len(gates)] == gates  # before any of Scrapy's own middlewares
    assert not any(p.endswith(("RobotsTxtMiddleware", "OffsiteMiddleware")) for p in order)


def test_the_item_stages_run_screening_first_and_the_writer_last():
    order = enabled(crawler_with_addon(), "ITEM_PIPELINES")
    assert order == list(STAGES) == [
        "crawler.pipelines.screening.ScreeningStage",
        "crawler.pipelines.optout.OptOutStage",
        "crawler.pipelines.rights.RightsStage",
        "crawler.pipelines.rows.RowStage",
        "crawler.pipelines.writer.RunWriterPipeline",
    ]


def test_nothing_can_keep_a_response_beyond_its_screening():
    settings = crawler_with_addon().settings
    assert not settings.getbool("HTTPCACHE_ENABLED") and settings.get("JOBDIR") is None
    assert not settings.getbool("COOKIES_ENABLED") and not settings.getbool("ROBOTSTXT_OBEY")
    assert settings["LOG_FORMATTER"] == "crawler.redaction.QuietItems"
