"""The frontier's spider middleware: records each page and image request the spider makes and
each page whose callback ran, and on resume leaves out what is settled and adds the pages
still to do (:mod:`crawler.resume`, :mod:`crawler.frontier`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from scrapy import Request
from scrapy.exceptions import NotConfigured

from crawler.context import context_of
from crawler.frontier import IMAGE, PAGE
from crawler.meta import META_DEPTH, META_KIND, META_PAGE, META_SOURCE

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response

    from crawler.resume import Resume


class FrontierMiddleware:
    def __init__(self, crawler: Crawler, resume: Resume):
        self.crawler = crawler
        self.resume = resume
        self.stats = crawler.stats

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> FrontierMiddleware:
        resume = context_of(crawler).resume
        if resume is None:
            raise NotConfigured("no frontier (a crawl that is not resumable)")
        return cls(crawler, resume)

    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for request in start:
            if isinstance(request, Request):
                if request.url in self.resume.settled:
                    self.stats.inc_value("frontier/settled_start")
                    continue
                self._note(request)
            yield request
        spider: Any = self.crawler.spider
        for source_id, pending in self.resume.pending.items():
            for page in pending:
                meta = {META_SOURCE: source_id, META_DEPTH: page.depth, META_KIND: PAGE}
                if page.page_url:
                    meta[META_PAGE] = page.page_url
                self.stats.inc_value("frontier/resumed_pages")
                yield Request(page.url, callback=spider.parse_page, errback=spider.on_error,
                              meta=meta)

    def process_spider_output(self, response: Response, result: Iterable[Any]) -> Iterator[Any]:
        for one in result:
            self._note(one)
            yield one
        self._parsed(response)

    async def process_spider_output_async(
        self, response: Response, result: AsyncIterator[Any]
    ) -> AsyncIterator[Any]:
        async for one in result:
            self._note(one)
            yield one
        self._parsed(response)

    def _note(self, request: Any) -> None:
        if not isinstance(request, Request):
            return
        kind = request.meta.get(META_KIND)
        if kind not in (PAGE, IMAGE):
            return
        found = self.resume.frontiers.get(request.meta.get(META_SOURCE) or "")
        if found is not None:
            depth = request.meta.get(META_DEPTH) if kind == PAGE else None
            found.queued(kind, request.url, depth, request.meta.get(META_PAGE))

    def _parsed(self, response: Response) -> None:
        meta = response.meta
        if meta.get(META_KIND) != PAGE:
            return
        found = self.resume.frontiers.get(meta.get(META_SOURCE) or "")
        if found is None:
            return
        depth, page_url = meta.get(META_DEPTH), meta.get(META_PAGE)
        found.parsed(response.url, depth, page_url)
        for hop in meta.get("redirect_urls") or ():
            found.parsed(hop, depth, page_url)
