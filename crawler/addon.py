"""The Clearance add-on: switches the whole gate and stage stack on, in one place.

Scrapy add-ons change settings at the "addon" priority (``docs/topics/addons.rst``). This one
is the order of the flow as a reader should see it:

    downloader middlewares (lower runs first on the way out):
        50 consent gate   nothing outside an eligible source's scope is ever sent
        60 robots gate    robots.txt for our token, AI-agent blocks, Content-Usage rules
        70 opt-out gate   per-host policy files: tdmrep.json, ai.txt
        80 page budget    limits.max_pages_per_source counts requests sent, not pages parsed
        90 conditional    an image kept before is asked for with its validators (304: re-used)
        then Scrapy's own (retry, redirect, compression ...)
    item pipelines (per fetched image, lower first):
        100 screening -> 200 opt-out signals -> 300 rights -> 400 rows -> 900 run writer

Scrapy's RobotsTxtMiddleware and OffsiteMiddleware are off (our gates replace them and, unlike
them, record every refusal), and so is everything that could keep a response beyond its
screening (the HTTP cache, a persisted JOBDIR queue) or follow what consent did not name
(cookies, meta refresh).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

GATES = {
    "crawler.downloadermiddlewares.consent.ConsentGateMiddleware": 50,
    "crawler.downloadermiddlewares.robots.RobotsGateMiddleware": 60,
    "crawler.downloadermiddlewares.optout.OptOutGateMiddleware": 70,
    "crawler.downloadermiddlewares.pagebudget.PageBudgetMiddleware": 80,
}
FETCH = {  # not a gate: after every gate, so a conditional request passed them all
    "crawler.downloadermiddlewares.conditional.ConditionalRequestMiddleware": 90,
}
STAGES = {
    "crawler.pipelines.screening.ScreeningStage": 100,
    "crawler.pipelines.optout.OptOutStage": 200,
    "crawler.pipelines.rights.RightsStage": 300,
    "crawler.pipelines.rows.RowStage": 400,
    "crawler.pipelines.writer.RunWriterPipeline": 900,
}
REPLACED = {  # Scrapy's own, replaced by our gates
    "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
    "scrapy.downloadermiddlewares.offsite.OffsiteMiddleware": None,
}
EXTENSIONS = {"crawler.extensions.sizeguard.SizeGuard": 0,
              "crawler.extensions.checkpoint.Checkpoint": 0}
# Records the spider's requests in the resume frontier (crawler.resume); outermost, so it sees
# what the callbacks yield after every other spider middleware.
SPIDER_MIDDLEWARES = {"crawler.spidermiddlewares.frontier.FrontierMiddleware": 10}
SETTINGS = {
    "ROBOTSTXT_OBEY": False,  # the robots gate obeys robots.txt
    "DUPEFILTER_CLASS": "crawler.dupefilter.LoopRecordingDupeFilter",
    "LOG_FORMATTER": "crawler.redaction.QuietItems",  # no item dumps in the log
    # Nothing of a response may outlive its screening: no HTTP cache, no persisted request
    # queue or dupefilter (JOBDIR) that could keep a blocklisted URL or its bytes.
    "HTTPCACHE_ENABLED": False,
    "JOBDIR": None,
    "COOKIES_ENABLED": False,
    "METAREFRESH_ENABLED": False,
    "DEPTH_LIMIT": 0,  # per source, in the spider
}


class ClearanceAddon:
    """``ADDONS = {"crawler.addon.ClearanceAddon": 0}``: the gates, the stages, the guards."""

    def update_settings(self, settings: BaseSettings) -> None:
        # Import paths, as Scrapy's own *_BASE dicts spell them: a class key would not switch
        # off the base entry of the same component.
        for name, components in (("DOWNLOADER_MIDDLEWARES", {**GATES, **FETCH, **REPLACED}),
                                 ("ITEM_PIPELINES", STAGES), ("EXTENSIONS", EXTENSIONS),
                                 ("SPIDER_MIDDLEWARES", SPIDER_MIDDLEWARES)):
            for path, priority in components.items():
                settings[name][path] = priority
        for name, value in SETTINGS.items():
            settings.set(name, value, "addon")
