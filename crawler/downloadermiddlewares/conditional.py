"""Conditional requests: an image fetched before is asked for with its validators.

An image request whose URL a committed run kept with an ``ETag`` or ``Last-Modified``
(:mod:`crawler.conditional`) is sent with ``If-None-Match`` / ``If-Modified-Since``, and may be
answered ``304``: the spider then hands the item stages the earlier row instead of a body, and
every stage applies again to the new response (its headers: ``X-Robots-Tag``,
``tdm-reservation``, ``Content-Usage``) and to the stored hashes (the current hash lists).
The gates before this one (consent, robots.txt, tdmrep.json/ai.txt, page budget) ran as for
any request; so does every hop of a redirect, which gets its own URL's validators, or none.

Placed after the gates and before Scrapy's own middlewares. Scrapy's HttpCacheMiddleware stays
off: nothing of a response is kept, only validators of rows that were committed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scrapy.exceptions import NotConfigured

from crawler.context import CrawlContext, context_of
from crawler.meta import META_EARLIER, META_IMAGE, META_KIND, META_PAGE, META_SOURCE

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)

CONDITIONAL_HEADERS = (b"If-None-Match", b"If-Modified-Since")
_HANDLE = "handle_httpstatus_list"


class ConditionalRequestMiddleware:
    def __init__(self, crawler: Crawler, context: CrawlContext):
        if context.validators is None:
            raise NotConfigured("no validators store (incremental crawls off)")
        self.context = context
        self.validators = context.validators
        self.stats = crawler.stats

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ConditionalRequestMiddleware:
        return cls(crawler, context_of(crawler))

    def process_request(self, request: Request) -> None:
        if request.meta.get(META_KIND) != "image":
            return
        self._reset(request)  # a redirect hop or a retry carries the previous URL's
        source = self.context.registry.sources.get(request.meta.get(META_SOURCE) or "")
        found = request.meta.get(META_IMAGE)
        if source is None or found is None:
            return
        earlier = self.validators.earlier(source, request.url, found,
                                          request.meta.get(META_PAGE))
        if earlier is None:
            return
        v = earlier.validator
        if v.etag:
            request.headers[b"If-None-Match"] = v.etag
        if v.last_modified:
            request.headers[b"If-Modified-Since"] = v.last_modified
        request.meta[META_EARLIER] = earlier
        request.meta[_HANDLE] = [*request.meta.get(_HANDLE, []), 304]
        self.stats.inc_value("conditional/sent")

    def process_response(self, request: Request, response: Response) -> Response:
        if request.meta.get(META_EARLIER) is None:
            return response
        if response.status == 304:
            self.stats.inc_value("conditional/not_modified")
        else:
            self.stats.inc_value("conditional/modified")
            self._reset(request)  # a new body: a new row, as for any response
        return response

    @staticmethod
    def _reset(request: Request) -> None:
        if request.meta.pop(META_EARLIER, None) is not None:
            handled = [s for s in request.meta.get(_HANDLE, []) if s != 304]
            if handled:
                request.meta[_HANDLE] = handled
            else:
                request.meta.pop(_HANDLE, None)
        for name in CONDITIONAL_HEADERS:
            request.headers.pop(name, None)
