"""Checkpoints of a resumable crawl: every ``CLEARANCE_CHECKPOINT_S`` seconds (environment
variable or Scrapy setting; default 1) the run's rows so far become fsynced segments, then the
frontiers are committed, so a SIGKILL loses at most the rows of the last interval (fetched
again on resume, :mod:`crawler.resume`)."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.exceptions import NotConfigured
from twisted.internet.task import LoopingCall

from crawler.context import CrawlContext, context_of

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)
SETTING = "CLEARANCE_CHECKPOINT_S"


class Checkpoint:
    def __init__(self, crawler: Crawler, context: CrawlContext, interval: float):
        self.context = context
        self.interval = interval
        self.stats = crawler.stats
        self.task: LoopingCall | None = None
        crawler.signals.connect(self.opened, signal=signals.spider_opened)
        crawler.signals.connect(self.closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Checkpoint:
        try:
            context = context_of(crawler)
        except RuntimeError:  # no crawl (a crawler built only to read its settings)
            raise NotConfigured("no CrawlContext attached") from None
        if context.resume is None:
            raise NotConfigured("not a resumable crawl")
        raw = os.environ.get(SETTING) or crawler.settings.get(SETTING) or 1.0
        try:
            interval = float(raw)
        except ValueError:
            raise ValueError(f"{SETTING}={raw!r}: expected seconds") from None
        if not interval > 0:
            raise ValueError(f"{SETTING}={raw!r}: expected seconds above 0")
        return cls(crawler, context, interval)

    def opened(self, spider: Any) -> None:
        self.task = LoopingCall(self.tick)
        self.task.start(self.interval, now=False)

    def closed(self, spider: Any, reason: str) -> None:
        if self.task is not None and self.task.running:
            self.task.stop()

    def tick(self) -> None:
        assert self.context.resume is not None
        try:
            self.context.resume.checkpoint(self.context.writer)
        except Exception:  # noqa: BLE001 - the next tick (or the commit) tries again
            logger.exception("checkpoint failed")
            self.stats.inc_value("checkpoint/failed")
        else:
            self.stats.inc_value("checkpoint/done")
