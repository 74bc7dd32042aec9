"""Page budget: ``limits.max_pages_per_source`` is a promise to the source about requests.

After every gate (a refused request costs nothing), each page request that is about to be sent
counts against its source's budget: its first attempt only, not a redirect hop or a retry of a
page already counted. Once the budget is used up, no further page request of that source is
sent: the queued ones are dropped with a ``page_limit`` rejection each, and ``run.json``
``limits_hit`` names the source. Images of the pages already fetched are not pages and are
still fetched; the spider also stops queuing links of a source whose budget is spent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawler.context import CrawlContext, context_of
from crawler.exceptions import Refused
from crawler.meta import META_KIND, META_PAGE, META_SOURCE
from pipeline.runs import reasons

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

LIMIT = "max_pages_per_source"


class PageBudgetMiddleware:
    def __init__(self, crawler: Crawler, context: CrawlContext):
        self.context = context
        self.stats = crawler.stats
        self.max_pages = context.config.settings.limits.max_pages_per_source

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PageBudgetMiddleware:
        return cls(crawler, context_of(crawler))

    def process_request(self, request: Request) -> None:
        if request.meta.get(META_KIND) != "page":
            return
        if request.meta.get("redirect_times") or request.meta.get("retry_times"):
            return  # the page was counted when it was first sent
        source_id = request.meta.get(META_SOURCE)
        if source_id is None:
            return
        context = self.context
        if context.page_requests[source_id] >= self.max_pages:
            context.hit_limit(LIMIT, source_id)
            detail = f"limits.max_pages_per_source={self.max_pages} reached for source {source_id}"
            context.reject(request.url, reasons.PAGE_LIMIT, reasons.STAGE_FETCH, detail,
                           source_id=source_id, page_url=request.meta.get(META_PAGE))
            self.stats.inc_value("pagebudget/dropped")
            raise Refused(reasons.PAGE_LIMIT, detail)
        context.page_requests[source_id] += 1
