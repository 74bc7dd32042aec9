"""The one generic spider: seeded from the registry, follows in-scope links, fetches images.

Every link found is yielded; the consent gate decides (and records) what is out of scope, so a
curator can see each refused URL. Per source: ``crawl.max_depth`` bounds link depth and
``limits.max_pages_per_source`` bounds pages. Images are decoded off the reactor thread.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scrapy import Request, Spider
from scrapy.http import Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

from crawler.context import CrawlContext
from crawler.downloadermiddlewares.consent import META_PAGE, META_SOURCE
from crawler.downloadermiddlewares.robots import META_SIGNALS
from crawler.exceptions import Refused
from crawler.extensions.sizeguard import META_TOO_LARGE
from crawler.extract import find_images, find_licence_links, find_links
from crawler.images import ImageRejected, inspect_image
from crawler.signals import OFF
from pipeline import reasons
from pipeline.config import Source
from pipeline.licences import licence_from_url

logger = logging.getLogger(__name__)

META_DEPTH = "clearance_depth"
META_KIND = "clearance_kind"
META_IMAGE = "clearance_image"


@dataclass(frozen=True)
class PageLicence:
    licence: str | None
    url: str | None
    source: str | None  # licence_source column value
    problem: str | None = None  # reason code when no usable licence
    detail: str | None = None


def page_licence(links: list[str], source: Source) -> PageLicence:
    if links:
        mapped = [(licence_from_url(u), u) for u in links]
        known = {spdx for spdx, _ in mapped if spdx}
        if len(known) > 1:
            return PageLicence(
                None, None, None, reasons.LICENCE_CONFLICT,
                f"page declares several licences: {', '.join(sorted(known))}",
            )
        if known:
            spdx = known.pop()
            url = next(u for s, u in mapped if s == spdx)
            return PageLicence(spdx, url, "rel-license")
        return PageLicence(
            None, None, None, reasons.NO_LICENCE,
            f"rel=license target(s) not a recognised licence: {', '.join(links)}",
        )
    if source.licence.default:
        return PageLicence(source.licence.default, None, "source-default")
    return PageLicence(
        None, None, None, reasons.NO_LICENCE,
        "no licence markup on the page and no licence.default for the source",
    )


class SourceSpider(Spider):
    name = "clearance"

    def __init__(self, context: CrawlContext, **kwargs: Any):
        super().__init__(**kwargs)
        self.context = context
        self.max_pixels = context.config.settings.limits.max_pixels
        self.max_pages = context.config.settings.limits.max_pages_per_source

    async def start(self) -> AsyncIterator[Request]:
        for source in self.context.registry.sources.values():
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
        if not isinstance(response, TextResponse) or b"html" not in (
            response.headers.get(b"Content-Type") or b"text/html"
        ):
            return
        self.context.pages[source.id] += 1
        depth = response.meta.get(META_DEPTH, 0)
        sel = response.selector
        licence = page_licence(find_licence_links(sel, response.url), source)
        page_signals = dict(response.meta.get(META_SIGNALS) or {})
        page_signals.pop("robots", None)  # the image's own robots decision replaces it
        for image in find_images(sel, response.url):
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
                        "licence": licence,
                        "page_signals": page_signals,
                    },
                },
            )
        if depth >= source.crawl.max_depth:
            return
        if self.context.pages[source.id] >= self.max_pages:
            self.context.hit_limit("max_pages_per_source", source.id)
            return
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

    # ------------------------------------------------------------------ images

    async def parse_image(self, response: Response) -> AsyncIterator[dict[str, Any]]:
        meta = response.meta
        source = self.context.registry.sources[meta[META_SOURCE]]
        info = meta[META_IMAGE]
        page_url = meta.get(META_PAGE)
        licence: PageLicence = info["licence"]

        def reject(reason: str, detail: str, stage: str) -> None:
            self.context.reject(
                response.url, reason, stage, detail, source_id=source.id, page_url=page_url
            )

        try:
            facts = await maybe_deferred_to_future(
                deferToThread(inspect_image, response.body, self.max_pixels)
            )
        except ImageRejected as exc:
            reject(exc.reason, exc.detail, reasons.STAGE_IMAGE)
            return
        if licence.licence is None:
            reject(licence.problem or reasons.NO_LICENCE, licence.detail or "", "licence")
            return
        self.context.images[source.id] += 1
        signals = {**info["page_signals"], **(meta.get(META_SIGNALS) or {})}
        for name in self.context.signals_off:
            signals[name] = {"check": name, "ran": False, "found": None, "decision": OFF,
                             "detail": "switched off in clearance.yaml signals:"}
        content_type = response.headers.get(b"Content-Type")
        av = source.age_verification
        assert av is not None  # eligible sources always have one
        yield {
            "row_id": facts.sha256,
            "url": response.url,
            "page_url": page_url,
            "source_id": source.id,
            "consent_id": source.consent.id,
            "consent_sha256": source.consent_sha256,
            "age_verification_id": av.id,
            "fetched_at": datetime.now(UTC),
            "http_status": response.status,
            "content_type": content_type.decode("latin-1") if content_type else facts.mime,
            "bytes": facts.bytes,
            "sha256": facts.sha256,
            "md5": facts.md5,
            "pdq": None,
            "width": facts.width,
            "height": facts.height,
            "licence": licence.licence,
            "licence_url": licence.url,
            "licence_source": licence.source,
            "creator": None,
            "attribution": None,
            "caption": info["caption"],
            "signals": [signals[k] for k in sorted(signals)],
            "blocklists": None,
            "run_id": self.context.run_id,
        }

    # ------------------------------------------------------------------ errors

    def on_error(self, failure: Failure) -> None:
        if failure.check(Refused):
            return  # the gate already wrote the rejection row
        request = failure.request  # type: ignore[attr-defined]
        exc = failure.value
        if request.meta.get(META_TOO_LARGE):
            reason, detail = reasons.TOO_LARGE, request.meta[META_TOO_LARGE]
        elif isinstance(exc, HttpError):
            reason, detail = reasons.FETCH_FAILED, f"HTTP {exc.response.status}"
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
