"""Request de-duplication that records redirect loops instead of dropping them silently, and
drops the requests a resumed crawl has settled already (:mod:`crawler.resume`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy.dupefilters import RFPDupeFilter

from crawler.context import context_of
from crawler.meta import META_PAGE, META_SOURCE
from pipeline.runs import reasons

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

    from crawler.context import CrawlContext


class LoopRecordingDupeFilter(RFPDupeFilter):
    context: CrawlContext | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> LoopRecordingDupeFilter:  # type: ignore[override]
        dupefilter = super().from_crawler(crawler)
        dupefilter.context = context_of(crawler)
        return dupefilter

    def request_seen(self, request: Request) -> bool:
        resume = self.context.resume if self.context is not None else None
        if resume is not None and request.url in resume.settled:
            return True  # its result is durable in the run this crawl resumed (crawler.resume)
        seen = super().request_seen(request)
        chain = request.meta.get("redirect_urls") or []
        if seen and self.context is not None and request.url in chain:
            hops = " -> ".join([*chain, request.url])
            self.context.reject(
                chain[0], reasons.FETCH_FAILED, reasons.STAGE_FETCH, f"redirect loop: {hops}",
                source_id=request.meta.get(META_SOURCE), page_url=request.meta.get(META_PAGE),
            )
        return seen
