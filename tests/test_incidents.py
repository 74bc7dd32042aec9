"""Incident records, the crawl's screening state, and log redaction (units)."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path
from typing import Any

import pytest
from helpers_config import settings_doc, source_doc, write_config
from helpers_runs import make_item

from crawler.context import CrawlContext, Registry
from crawler.redaction import QuietItems, RedactImageUrls
from crawler.screening import CrawlScreen, Fetched
from pipeline.registry.state import State
from pipeline.runs.writer import RunWriter
from pipeline.safety.hashlists import Screener
from pipeline.safety.incidents import (
    BLOCKLIST_MATCH,
    NEIGHBOUR,
    Incident,
    incident_counts,
    incidents_dir,
    read_incidents,
    write_incident,
)

BASE = "0f" * 32


def flip(pdq: str, bits: int) -> str:
    return f"{int(pdq, 16) ^ (((1 << bits) - 1) << (256 - bits)):064x}"


def test_directory_is_tightened_and_records_are_0600(tmp_path: Path):
    (tmp_path / "incidents").mkdir(mode=0o755)
    (tmp_path / "incidents").chmod(0o755)
    path = write_incident(tmp_path, Incident(BLOCKLIST_MATCH, "s", "crawl", url="https://x/1"))
    assert stat.S_IMODE(incidents_dir(tmp_path).stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left


def test_record_fields_and_counts_without_urls(tmp_path: Path):
    write_incident(tmp_path, Incident(BLOCKLIST_MATCH, "a", "crawl", url="https://a/1",
                                      sha256="ab" * 32, list_id="l1", list_version="v"))
    write_incident(tmp_path, Incident(NEIGHBOUR, "a", "screen", url="https://a/2",
                                      list_id="l1", neighbour_of="x"))
    write_incident(tmp_path, Incident(BLOCKLIST_MATCH, "b", "crawl", url="https://b/1",
                                      list_id="l2"))
    records = read_incidents(tmp_path)
    first = next(r for r in records if r["content"]["url"] == "https://a/1")
    assert first["format"] == "clearance.incident/1" and first["hashes"]["sha256"] == "ab" * 32
    assert set(first) >= {"incident_id", "incident_type", "detected_at", "reporter", "source",
                          "content", "hashes", "match", "crawler", "content_retained"}
    counts = incident_counts(tmp_path)
    assert counts["total"] == 3 and counts["by_source"] == {"a": 2, "b": 1}
    assert counts["by_list"] == {"l1": 2, "l2": 1}
    assert counts["by_type"] == {"blocklist_match": 2, "blocklist_neighbour": 1}
    assert "https://" not in json.dumps(counts)


@pytest.fixture
def context(tmp_path: Path):
    folder = tmp_path / "configs" / "blocklists"
    folder.mkdir(parents=True)
    (folder / "pdq.txt").write_text(BASE + "\n")
    (folder / "pdq.txt").chmod(0o600)
    doc = settings_doc()
    doc["blocklists"] = [{"id": "p", "kind": "pdq", "path": "blocklists/pdq.txt",
                          "threshold": 20}]
    config = write_config(tmp_path / "configs", [source_doc("s1"), source_doc("s2")], doc)
    writer = RunWriter(tmp_path / "data")
    screen = CrawlScreen(Screener.load(config), config, tmp_path / "data", writer.run_id)
    ctx = CrawlContext(config=config, registry=Registry(list(config.sources.values())),
                       writer=writer, screen=screen)
    yield ctx
    writer.discard()


def image(url: str, source: str, pdq: str) -> Fetched:
    return Fetched(url=url, source_id=source, page_url=None, sha256="00" * 32, md5="00" * 16,
                   sha1="00" * 20, pdq=pdq)


def test_neighbours_before_and_after_a_hit(context: CrawlContext, tmp_path: Path):
    screen = context.screen
    assert screen is not None
    source = context.config.sources["s2"]
    early_near = make_item(source, "https://s2/early-near.jpg", pdq=flip(BASE, 28))
    early_far = make_item(source, "https://s2/early-far.jpg", pdq=flip(BASE, 100))
    for row in (early_near, early_far):
        assert not screen.check_image(image(row["url"], "s2", row["pdq"]))
        context.add_item(row)
    # 25 bits from the listed entry: no (threshold 20); 15 bits: a hit
    assert not screen.check_image(image("https://s1/miss.jpg", "s1", flip(BASE, 25)))
    assert screen.check_image(image("https://s1/hit.jpg", "s1", flip(BASE, 15)))
    assert screen.suspended == {"s1"}
    assert State.in_data_dir(tmp_path / "data").suspended_ids() == {"s1"}
    # late: another source's image 15 bits from the hit (30 from the entry) is withheld
    assert screen.check_image(image("https://s2/late-near.jpg", "s2", flip(BASE, 30)))
    # a neighbour lies within the confident-match distance of a hit: its source is
    # suspended for review too
    assert screen.suspended == {"s1", "s2"}
    # early: admitted 13 bits from the hit, withdrawn from the run before commit
    assert context.withdraw_neighbours() == 1
    assert context.writer.items.count == 1
    assert set(screen.admitted) == {"https://s2/early-far.jpg"}
    assert screen.incidents == 3
    kinds = sorted(r["incident_type"] for r in read_incidents(tmp_path / "data"))
    assert kinds == ["blocklist_match", "blocklist_neighbour", "blocklist_neighbour"]
    # nothing of a withheld URL is written afterwards, even as a rejection
    assert not context.reject("https://s1/hit.jpg", "duplicate", "image", "x", source_id="s1")
    assert context.is_suspended("s1") and context.is_suspended("s2")


def test_log_records_never_name_image_urls(context: CrawlContext):
    screen = context.screen
    assert screen is not None
    screen.image_urls.add("http://h/img.jpg")
    redact = RedactImageUrls(screen)
    factory = redact.factory(logging.LogRecord)
    record = factory("scrapy.core.engine", logging.DEBUG, __file__, 1,
                     "Crawled (%(status)s) <GET %(url)s> (referer: %(ref)s)",
                     ({"status": 200, "url": "http://h/img.jpg", "ref": "http://h/page"},),
                     None)
    message = record.getMessage()
    assert "http://h/img.jpg" not in message and "<image URL>" in message
    assert "http://h/page" in message  # pages are not hidden

    class FakeRequest:
        url = "http://h/redirected.jpg"
        meta: dict[str, Any] = {"clearance_kind": "image"}

    record = factory("scrapy.downloadermiddlewares.redirect", logging.DEBUG, __file__, 1,
                     "Redirecting to %(redirected)s", ({"redirected": FakeRequest()},), None)
    redact.filter(record)
    assert "redirected.jpg" not in record.getMessage()


def test_scrapy_item_lines_leave_the_item_out():
    formatter = QuietItems()
    item = {"url": "http://h/x.jpg", "sha256": "ab" * 32, "source_id": "s1"}
    line = formatter.scraped(item, None, None)  # type: ignore[arg-type]
    text = line["msg"] % line["args"]
    assert "http://h" not in text and "ab" * 32 not in text and "s1" in text


def test_an_incident_that_cannot_be_written_stops_everything(context: CrawlContext,
                                                             tmp_path: Path):
    screen = context.screen
    assert screen is not None
    (tmp_path / "data" / "incidents").write_text("not a directory")
    assert screen.check_image(image("https://s1/hit.jpg", "s1", flip(BASE, 3)))
    assert screen.failure and "incident record could not be written" in screen.failure
    assert screen.suspended == {"s1"} and context.is_suspended("s2")  # drains the crawl
    assert State.in_data_dir(tmp_path / "data").suspended_ids() == {"s1"}


def test_flat_images_are_not_neighbours(context: CrawlContext):
    """PDQ quality under 50 (flat images hash alike): matched as hits, never expanded."""
    screen = context.screen
    assert screen is not None
    flat = Fetched(url="https://s1/flat.png", source_id="s1", page_url=None, sha256="11" * 32,
                   md5="11" * 16, sha1="11" * 20, pdq=flip(BASE, 2), pdq_quality=0)
    assert screen.check_image(flat) and screen.hit_pdqs == []
    near = Fetched(url="https://s2/near.png", source_id="s2", page_url=None, sha256="22" * 32,
                   md5="22" * 16, sha1="22" * 20, pdq=flip(BASE, 25), pdq_quality=100)
    assert not screen.check_image(near)
    screen.admit("https://s2/low.png", flip(BASE, 24), 10)
    assert screen.admitted == {}


def test_a_rejection_detail_never_quotes_a_withheld_url(context: CrawlContext):
    screen = context.screen
    assert screen is not None
    screen.withheld_urls.add("https://s1/listed-manifest.c2pa")
    assert context.reject("https://s1/img.jpg", "c2pa_training_not_allowed", "signals",
                          "remote manifest https://s1/listed-manifest.c2pa not fetched",
                          source_id="s1")
    row = context.writer.rejections.rows[-1]
    assert "listed-manifest" not in row["detail"] and "<withheld by blocklist>" in row["detail"]


def test_a_failing_decode_pool_falls_back_to_the_crawl_process(context: CrawlContext):
    import asyncio

    class Broken:
        closed = False

        def has_room(self, size: int) -> bool:
            return True

        async def inspect(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("cannot schedule new futures after shutdown")

        def close(self) -> None:
            Broken.closed = True

    from crawler.pipelines.screening import ScreeningStage

    context.decode_pool = Broken()  # type: ignore[assignment]
    stage = ScreeningStage(context)
    assert asyncio.run(stage._in_pool(b"x" * 100_000, None)) is None  # type: ignore[arg-type]
    assert context.decode_pool is None and Broken.closed


def test_a_dropped_image_between_stages_is_logged_by_its_source_only():
    from types import SimpleNamespace

    from crawler.exceptions import ItemRefused

    formatter = QuietItems()
    item = SimpleNamespace(url="http://h/x.jpg", source=SimpleNamespace(id="s1"))
    spider = SimpleNamespace(crawler=SimpleNamespace(settings={
        "DEFAULT_DROPITEM_LOG_LEVEL": "WARNING"}))
    line = formatter.dropped(item, ItemRefused("x_robots_noai", log_level="DEBUG"), None,
                             spider)  # type: ignore[arg-type]
    text = line["msg"] % line["args"]
    assert "http://h" not in text and "s1" in text and line["level"] == logging.DEBUG
