"""The one generic spider: seeded from the registry, it finds pages, links and images and
fetches them; what becomes of each fetched image is the item stages' work (crawler.pipelines).

Every link found is yielded; the consent gate decides (and records) what is out of scope, so a
curator can see each refused URL. Per source: ``crawl.max_depth`` bounds link depth and
``limits.max_pages_per_source`` bounds pages. A page's own opt-out signals refuse its images
before they are requested.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from scrapy import Request, Spider
from scrapy.http import Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from crawler import optoutlists
from crawler.context import CrawlContext
from crawler.exceptions import Refused
from crawler.extract import find_images, find_links
from crawler.items import FetchedImage
from crawler.meta import (
    META_DEPTH,
    META_EARLIER,
    META_IMAGE,
    META_KIND,
    META_PAGE,
    META_SOURCE,
    META_TOO_LARGE,
)
from crawler.rights.markup import page_markup, scoped_evidence
from crawler.signals import evidence
from crawler.signals.response import page_verdict
from pipeline.runs import reasons

logger = logging.getLogger(__name__)

# An image URL answering these is gone (reasons.GONE), not failed: a build drops its rows.
GONE_STATUSES = (404, 410)


class SourceSpider(Spider):
    name = "clearance"

    def __init__(self, context: CrawlContext, **kwargs: Any):
        super().__init__(**kwargs)
        self.context = context
        self.max_pixels = context.config.settings.limits.max_pixels  # error bodies screened
        self.max_pages = context.config.settings.limits.max_pages_per_source

    async def start(self) -> AsyncIterator[Request]:
        sources = self.context.registry.sources.values()
        for request in optoutlists.list_requests(sources, self.parse_optout_list, self.on_error):
            yield request
        for source in sources:
            for url in source.start_urls:
                yield Request(
                    url,
                    callback=self.parse_page,
                    errback=self.on_error,
                    meta={META_SOURCE: source.id, META_DEPTH: 0, META_KIND: "page"},
                )

    # ------------------------------------------------------------------ pages

    def parse_page(self, response: Response) -> Iterator[Request]:
        source = self.context.registry.sources[response.meta[META_SOURCE]]
        if self.context.is_suspended(source.id):
            return  # a blocklist hit suspended the source during this crawl: stop at once
        if not isinstance(response, TextResponse) or b"html" not in (
            response.headers.get(b"Content-Type") or b"text/html"
        ):
            return
        if self.context.pages[source.id] >= self.max_pages:
            self.context.hit_limit("max_pages_per_source", source.id)
            return  # already-queued pages past the limit are not used
        self.context.pages[source.id] += 1
        depth = response.meta.get(META_DEPTH, 0)
        sel = response.selector
        markup = page_markup(response.body, response.text, sel, response.url)
        verdict = page_verdict(response.headers, response.body, self.context.settings)
        page_signals = verdict.rows(prefix="page.")
        refusal = verdict.refusal
        for image in find_images(sel, response.url):
            if refusal is not None:
                label, result = refusal
                self.context.opt_out(
                    image.url, result.reason or reasons.META_NOAI,
                    f"page {response.url} {label}: {evidence(result)}",
                    source_id=source.id, page_url=response.url,
                )
                continue
            yield Request(
                image.url,
                callback=self.parse_image,
                errback=self.on_error,
                priority=1,  # finish a page's images before going deeper
                meta={
                    META_SOURCE: source.id,
                    META_PAGE: response.url,
                    META_KIND: "image",
                    META_IMAGE: {
                        "caption": image.caption,
                        "markup": markup,
                        "scoped": scoped_evidence(image, response.url, markup),
                        "requested": image.url,
                        "page_signals": page_signals,
                    },
                },
            )
        if depth >= source.crawl.max_depth:
            return
        if self.context.page_requests[source.id] >= self.max_pages:
            self.context.hit_limit("max_pages_per_source", source.id)
            return  # the budget is spent: queue no more (queued ones are dropped, recorded)
        for url in find_links(sel, response.url):
            yield Request(
                url,
                callback=self.parse_page,
                errback=self.on_error,
                meta={
                    META_SOURCE: source.id,
                    META_PAGE: response.url,
                    META_DEPTH: depth + 1,
                    META_KIND: "page",
                },
            )

    def parse_optout_list(self, response: Response) -> None:
        """A source's contributor opt-out list (crawler.optoutlists): kept for run.json."""
        source = self.context.registry.sources[response.meta[META_SOURCE]]
        record, why = optoutlists.read_list(response, source)
        if record is not None:
            self.context.optout_lists[source.id] = record
            return
        reason, stage, detail = optoutlists.unreadable(response, why or "unreadable")
        self.context.reject(response.url, reason, stage, detail, source_id=source.id)

    # ------------------------------------------------------------------ images

    def parse_image(self, response: Response) -> Iterator[FetchedImage]:
        """Hand the image to the item stages (crawler.pipelines): screening first."""
        meta = response.meta
        earlier = meta.get(META_EARLIER) if response.status == 304 else None
        if response.status == 304 and earlier is None:
            self.context.reject(response.url, reasons.FETCH_FAILED, reasons.STAGE_FETCH,
                                "HTTP 304 to a request without validators",
                                source_id=meta.get(META_SOURCE), page_url=meta.get(META_PAGE))
            return
        content_type = response.headers.get(b"Content-Type")
        mime = content_type.decode("latin-1") if content_type else None
        yield FetchedImage(
            response=response,
            source=self.context.registry.sources[meta[META_SOURCE]],
            page_url=meta.get(META_PAGE),
            found=meta[META_IMAGE],
            # a 304 confirms the earlier row's content, and its type
            mime=earlier.row["content_type"] if earlier is not None else mime,
            earlier=earlier,
        )

    # ------------------------------------------------------------------ errors

    def on_error(self, failure: Failure) -> None:
        if failure.check(Refused):
            return  # the gate already wrote the rejection row
        request = failure.request  # type: ignore[attr-defined]
        exc = failure.value
        if request.meta.get(META_TOO_LARGE):
            reason, detail = reasons.TOO_LARGE, request.meta[META_TOO_LARGE]
        elif isinstance(exc, HttpError):
            if request.meta.get(META_KIND) == "image" and self.context.withheld_error_body(
                    exc.response, self.max_pixels):
                return  # an error response carrying listed content: the incident, no row
            status = exc.response.status
            reason, detail = reasons.FETCH_FAILED, f"HTTP {status}"
            if status in GONE_STATUSES and request.meta.get(META_KIND) == "image":
                self._gone(request, status)
                return
        else:
            message = str(exc)
            name = type(exc).__name__
            if "max size" in message or "DOWNLOAD_MAXSIZE" in message:
                reason = reasons.TOO_LARGE
                detail = message.split(" in request ")[0].replace(
                    "DOWNLOAD_MAXSIZE", "limits.max_bytes")
            else:
                reason, detail = reasons.FETCH_FAILED, f"{name}: {message}".strip(": ")
        self.context.reject(
            request.url,
            reason,
            reasons.STAGE_FETCH,
            detail,
            source_id=request.meta.get(META_SOURCE),
            page_url=request.meta.get(META_PAGE),
        )

    def _gone(self, request: Request, status: int) -> None:
        """A ``gone`` rejection for the URL that answered (the final hop: the URL an earlier
        row of it carries) and for each redirect hop that led there, none of which serves an
        image any more; ``at`` is the time of the answer."""
        chain = list(request.meta.get("redirect_urls") or ())
        hops = " -> ".join([*chain, request.url])
        for url in [request.url, *reversed(chain)]:
            detail = f"HTTP {status}" if url == request.url else f"HTTP {status} at {hops}"
            self.context.reject(
                url, reasons.GONE, reasons.STAGE_FETCH, detail,
                source_id=request.meta.get(META_SOURCE), page_url=request.meta.get(META_PAGE),
            )
