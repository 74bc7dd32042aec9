"""Run one crawl: decide eligibility, build the crawl's context, run Scrapy, commit the run.

The gates and item stages, and their order, are switched on by one add-on
(:mod:`crawler.addon`); this module adds the crawl's own tuning (concurrency, per-host delays,
limits, timeouts) and checks that nothing could keep a response beyond its screening.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scrapy import signals as scrapy_signals
from scrapy.crawler import CrawlerProcess

from crawler import resume as resuming
from crawler.conditional import Validators
from crawler.context import CrawlContext, Registry, attach
from crawler.images import DecodePool, DecodeThreads
from crawler.redaction import RedactImageUrls
from crawler.screening import CrawlScreen
from crawler.spiders.sources import SourceSpider
from pipeline.registry.config import Config, Source
from pipeline.registry.eligibility import Eligibility, check
from pipeline.runs import reasons
from pipeline.runs.writer import RunWriter, sweep_abandoned_runs
from pipeline.safety.hashlists import Screener

logger = logging.getLogger(__name__)
DECODE_WORKERS_ENV = "CLEARANCE_DECODE_WORKERS"
DECODE_MODE_ENV = "CLEARANCE_DECODE"

@dataclass(frozen=True)
class CrawlPlan:
    eligible: list[Source]
    skipped: list[tuple[Source, Eligibility]]


def plan_crawl(
    config: Config,
    source_ids: list[str] | None,
    today: date,
    suspended: frozenset[str] | set[str] = frozenset(),
) -> CrawlPlan:
    """Split the requested sources into eligible and skipped (with reasons).

    Unknown ids raise KeyError naming them (the CLI turns that into exit 2).
    """
    if source_ids:
        unknown = [s for s in source_ids if s not in config.sources]
        if unknown:
            raise KeyError(
                f"unknown source id(s): {', '.join(unknown)} "
                f"(known: {', '.join(sorted(config.sources)) or 'none'})"
            )
        chosen = [config.sources[s] for s in dict.fromkeys(source_ids)]
    else:
        chosen = list(config.sources.values())
    eligible, skipped = [], []
    for source in chosen:
        verdict = check(source, config.settings, today, suspended=source.id in suspended)
        if verdict:
            eligible.append(source)
        else:
            skipped.append((source, verdict))
    return CrawlPlan(eligible, skipped)


def scrapy_settings(context: CrawlContext, concurrency: int, log_level: str) -> dict[str, Any]:
    settings = context.config.settings
    slots: dict[str, dict[str, float]] = {}
    for source in context.registry.sources.values():
        for prefix in source.scope:
            host = urlsplit(prefix).hostname or ""
            delay = max(slots.get(host, {}).get("delay", 0.0), source.crawl.download_delay)
            slots[host] = {"delay": delay}
    return {
        "USER_AGENT": settings.user_agent,
        "ADDONS": {"crawler.addon.ClearanceAddon": 0},
        "CONCURRENT_REQUESTS": concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
        "CONCURRENT_ITEMS": 8,  # Scrapy's 100 starts 100 tasks per response (upstream #5182)
        "DOWNLOAD_SLOTS": slots,
        "DOWNLOAD_DELAY": 0,
        "DOWNLOAD_MAXSIZE": settings.limits.max_bytes,
        "DOWNLOAD_WARNSIZE": 0,
        "DOWNLOAD_TIMEOUT": 30,
        "REDIRECT_MAX_TIMES": 10,
        "RETRY_TIMES": 1,
        "TELNETCONSOLE_ENABLED": False,
        "REMOTE_CONTROL_ENABLED": False,  # Scrapy 2.19's code-executing HTTP control server
        "LOG_LEVEL": log_level,
        "DNS_TIMEOUT": 10,
    }


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("clearance", "scrapy", "twisted", "pyarrow", "pydantic", "pillow", "protego",
                 "robotexclusionrulesparser", "c2pa-python", "defusedxml", "http-sfv"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def run_crawl(
    config: Config,
    data_dir: Path,
    source_ids: list[str] | None = None,
    *,
    today: date | None = None,
    suspended: frozenset[str] | set[str] = frozenset(),
    concurrency: int = 16,
    log_level: str = "WARNING",
    progress: bool = False,
    plan: CrawlPlan | None = None,
    screener: Screener | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Crawl the eligible sources into a new run; return the run.json document.

    Scrapy's reactor runs once per process: call this once per process. Pass the ``plan`` a
    caller already made (to print what is skipped) rather than deciding eligibility twice.
    ``screener`` defaults to the config's hash lists (:meth:`Screener.load`). ``run_id`` names
    the run folder (the scheduler chooses it, to remove the folder of a crawl it had to kill).
    """
    started = datetime.now(UTC)
    t0 = time.monotonic()
    crawl_plan = plan or plan_crawl(config, source_ids, today or started.date(), suspended)
    screener = screener if screener is not None else Screener.load(config)
    eligible_ids = [s.id for s in crawl_plan.eligible]
    writer = RunWriter(Path(data_dir), run_id, resumable=eligible_ids)
    # A killed crawl of these sources is adopted (its durable rows, its frontiers), after
    # eligibility was decided again: a source revoked since is neither crawled nor kept.
    resume = resuming.prepare(
        Path(data_dir), writer, eligible_ids, [s.id for s, _ in crawl_plan.skipped],
        set(source_ids) if source_ids else set(config.sources))
    abandoned = sweep_abandoned_runs(Path(data_dir))  # killed runs with nothing durable
    context = CrawlContext(
        config=config,
        registry=Registry(crawl_plan.eligible),
        writer=writer,
        signals_off=config.settings.signals.off(),
        screen=CrawlScreen(screener, config, Path(data_dir), writer.run_id),
        decode_pool=_decode_pool(),
        resume=resume,
        validators=Validators(config, Path(data_dir)),
    )
    resume.seed(context)
    assert context.screen is not None
    context.screen.on_withheld = resume.forget
    for source, verdict in crawl_plan.skipped:
        for url in source.start_urls:
            context.reject(
                url, verdict.reason or reasons.CONSENT_INACTIVE, reasons.STAGE_ELIGIBILITY,
                verdict.message, source_id=source.id,
            )
    finish: dict[str, Any] = {}
    try:
        if crawl_plan.eligible:
            _run_scrapy(context, concurrency, log_level, progress, finish)
        else:
            finish["reason"] = "nothing to crawl"
        if "reason" not in finish:
            raise RuntimeError("the crawl stopped without closing the spider; run discarded")
        if context.screen is not None and context.screen.failure:
            raise RuntimeError(f"blocklist hit: {context.screen.failure}; run discarded "
                               "(the source is suspended)")
    except BaseException:
        writer.discard()
        resume.close(delete=True)
        raise
    finally:
        if context.decode_pool is not None:
            context.decode_pool.close()
    context.withdraw_neighbours()
    for url in sorted(context.late_opt_outs()):
        for row in writer.remove_items({url}):
            reason, detail = context.opted_out[url]
            context.reject(url, reason, reasons.STAGE_SIGNALS, detail,
                           source_id=row["source_id"], page_url=row["page_url"])
    assert context.screen is not None
    writer.withheld = context.screen.incidents  # every incident withheld one URL
    elapsed = time.monotonic() - t0
    pages, images = sum(context.pages.values()), sum(context.images.values())
    sources: dict[str, Any] = {}
    for source in crawl_plan.eligible:
        sources[source.id] = {
            "status": "crawled",
            "consent_id": source.consent.id,
            "consent_sha256": source.consent_sha256,
            "pages": context.pages[source.id],
            "items": writer.items_by_source[source.id],
            "rejections": dict(sorted(writer.rejections_by_source.get(source.id, {}).items())),
        }
    for source, verdict in crawl_plan.skipped:
        sources[source.id] = {"status": "skipped", "reason": verdict.reason,
                              "message": verdict.message}
    meta = {
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "finish_reason": finish["reason"],
        "sources": sources,
        "config_sha256": config.sha256,
        "config_files": config.file_sha256,
        "versions": _versions(),
        "limits_hit": context.limits_hit,
        # Folders of earlier runs killed before committing (no run.json), removed unread.
        "abandoned_runs_removed": abandoned,
        # Killed runs of these sources whose durable rows this run took over (crawler.resume).
        "resumed_from": writer.resumed_from,
        "resume": resume.summary(),
        # Sources suspended by a blocklist hit during this crawl (their queued requests were
        # dropped); hits themselves appear only as counts.withheld.
        "suspended": sorted(context.screen.suspended),
        "conflicts": conflicts(writer.rejections_by_source, crawl_plan.eligible),
        "signals_off": context.signals_off,
        "optout_lists": dict(sorted(context.optout_lists.items())),
        "timings": {
            "duration_s": round(elapsed, 3),
            "crawl_s": round(finish.get("crawl_s", 0.0), 3),
            "pages": pages,
            "images": images,
            "pages_per_s": round(pages / finish["crawl_s"], 2) if finish.get("crawl_s") else 0.0,
        },
        "stats": finish.get("stats", {}),
    }
    doc = writer.commit(meta)
    resume.close(delete=True)  # committed: the next crawl of these sources starts afresh
    _record_validators(context, writer.dir, doc["run_id"])
    return doc


def _record_validators(context: CrawlContext, run_dir: Path, run_id: str) -> None:
    """Validators of the committed rows (incremental crawls: crawler.conditional). The run
    stands without them: a failure only means the next crawl asks for those bodies again."""
    if context.validators is None:
        return
    withheld = set() if context.screen is None else set(context.screen.withheld_urls)
    try:
        context.validators.commit(run_dir, run_id, withheld)
    except Exception as exc:  # noqa: BLE001 - the run is committed; say so and go on
        logger.warning("validators of run %s not recorded (%s: %s); the next crawl fetches "
                       "its images unconditionally", run_id, type(exc).__name__, exc)


def _decode_pool() -> DecodePool | DecodeThreads | None:
    """Where images are decoded + PDQ-hashed: threads beside the reactor (default; the PDQ
    kernel and Pillow's decoders release the GIL), or with ``CLEARANCE_DECODE=processes``
    worker processes for bodies of 32 KiB or more. ``CLEARANCE_DECODE_WORKERS`` sets how many
    (default one per core, at most 4; 0: the crawl decodes small images inline and large ones
    in one thread, the fallback). bench/screen_crawl.py measures each."""
    raw = os.environ.get(DECODE_WORKERS_ENV, str(min(4, os.cpu_count() or 1)))
    try:
        workers = int(raw)
    except ValueError:
        raise ValueError(f"{DECODE_WORKERS_ENV}={raw!r}: expected a whole number") from None
    mode = os.environ.get(DECODE_MODE_ENV, "threads")
    if mode not in ("threads", "processes"):
        raise ValueError(f"{DECODE_MODE_ENV}={mode!r}: expected threads or processes")
    if workers <= 0:
        return None
    return DecodeThreads(workers) if mode == "threads" else DecodePool(workers)


def conflicts(by_source: dict[str, Any], eligible: list[Source]) -> dict[str, Any]:
    """Opted-in sources whose own signals refused items: the curator must go back to them."""
    out: dict[str, Any] = {}
    for source in eligible:
        refused = {r: n for r, n in sorted(by_source.get(source.id, {}).items())
                   if r in reasons.OPT_OUTS and n}
        if refused:
            out[source.id] = {
                "consent_id": source.consent.id,
                "refused": sum(refused.values()),
                "by_reason": refused,
                "note": "the source consented, but its own opt-out signals refused these URLs; "
                        "its consent and its signals disagree",
            }
    return out


def _run_scrapy(
    context: CrawlContext, concurrency: int, log_level: str, progress: bool,
    finish: dict[str, Any],
) -> None:
    process = CrawlerProcess(
        {**scrapy_settings(context, concurrency, log_level), "LOG_INSTALL_ROOT_HANDLER": True})
    crawler = process.create_crawler(SourceSpider)
    attach(crawler, context)
    settings = crawler.settings
    if settings.getbool("HTTPCACHE_ENABLED") or settings.get("JOBDIR"):
        raise RuntimeError("HTTPCACHE_ENABLED and JOBDIR must be off: blocklist hits must not "
                           "be kept anywhere")
    restore = logging.getLogRecordFactory()
    if context.screen is not None:
        # At record creation, so every handler Scrapy installs (now or later) gets it.
        logging.setLogRecordFactory(RedactImageUrls(context.screen).factory(restore))
    t_open: list[float] = []

    def opened(spider: Any) -> None:
        t_open.append(time.monotonic())

    def closed(spider: Any, reason: str) -> None:
        finish["reason"] = reason
        finish["crawl_s"] = time.monotonic() - (t_open[0] if t_open else time.monotonic())
        finish["stats"] = {
            k: v for k, v in sorted(crawler.stats.get_stats().items())
            if isinstance(v, (int, float, str)) and not k.startswith("start_time")
        }

    crawler.signals.connect(opened, signal=scrapy_signals.spider_opened)
    crawler.signals.connect(closed, signal=scrapy_signals.spider_closed)
    if progress:
        from crawler.progress import attach_progress

        attach_progress(crawler, context)
    process.crawl(crawler, context=context)
    try:
        process.start()
    finally:
        logging.setLogRecordFactory(restore)
