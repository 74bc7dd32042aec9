"""The one generic spider: seeded from the registry, follows in-scope links, fetches images.

Every link found is yielded; the consent gate decides (and records) what is out of scope, so a
curator can see each refused URL. Per source: ``crawl.max_depth`` bounds link depth and
``limits.max_pages_per_source`` bounds pages. Images are decoded off the reactor thread.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

from scrapy import Request, Spider
from scrapy.http import Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.defer import DeferredSemaphore
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

from crawler.context import CrawlContext
from crawler.exceptions import Refused
from crawler.extract import find_images, find_links
from crawler.images import (
    Hashes,
    ImageFacts,
    ImageRejected,
    content_hashes,
    header_pixels,
    inspect_image,
)
from crawler.meta import (
    META_DEPTH,
    META_IMAGE,
    META_KIND,
    META_PAGE,
    META_SIGNALS,
    META_SOURCE,
    META_TOO_LARGE,
)
from crawler.rights.embedded import EmbeddedRights, with_rights
from crawler.rights.markup import PageMarkup, page_markup, scoped_evidence
from crawler.rights.resolve import resolve
from crawler.signals import OFF, SignalResult, evidence
from crawler.signals.c2pa_manifest import C2paInfo, c2pa_signals
from crawler.signals.response import (
    EmbeddedMetadata,
    Verdict,
    embedded_checks,
    header_checks,
    page_verdict,
)
from pipeline.runs import reasons

logger = logging.getLogger(__name__)

# Small images (in bytes and in pixels) decode + PDQ-hash in a few ms: a thread hand-off costs
# more than it saves (measured with bench/crawl.py). Larger ones go to the decode pool, else to
# a thread (one at a time), so the reactor keeps serving.
INLINE_DECODE_BYTES = 256 * 1024
INLINE_DECODE_PIXELS = 1024 * 1024



class SourceSpider(Spider):
    name = "clearance"

    def __init__(self, context: CrawlContext, **kwargs: Any):
        super().__init__(**kwargs)
        self.context = context
        self.max_pixels = context.config.settings.limits.max_pixels
        self.max_pages = context.config.settings.limits.max_pages_per_source
        self.consent_sha256 = {s.id: s.consent_sha256 for s in context.registry.sources.values()}
        self.licence_allow = context.config.settings.licences.effective  # after presets
        # One threaded decode at a time: pdqhash holds the GIL, so more threads add no speed,
        # only memory (a 50-megapixel image takes ~1.4 GB to hash; ten at once would not fit).
        self.decode_threads = DeferredSemaphore(1)

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
        content_type = response.headers.get(b"Content-Type")
        mime = content_type.decode("latin-1") if content_type else None
        # Blocklist screening comes first: the bounded decode (+ PDQ) and the embedded
        # metadata read record nothing; a body that does not decode is still screened on its
        # exact hashes. A hit (or a suspended source) leaves no row here.
        hashes = content_hashes(response.body)
        # Inline only what is small in bytes and in pixels: a tiny PNG can declare 50
        # megapixels, whose PDQ would hold the reactor for a second.
        large = len(response.body) > INLINE_DECODE_BYTES or (
            header_pixels(response.body) or 0) > INLINE_DECODE_PIXELS
        facts: ImageFacts | None = None
        undecodable: ImageRejected | None = None
        try:
            # decode + PDQ in the decode pool's process when it has room (pdqhash holds the
            # GIL: the second core), else here, inline for small bodies, in a thread for large
            facts = await self.context.decode(response.body, self.max_pixels, hashes)
            if facts is None and not large:
                facts = self._decode(response.body, hashes)
            elif facts is None:
                facts = await maybe_deferred_to_future(
                    self.decode_threads.run(deferToThread, self._decode, response.body, hashes))
        except ImageRejected as exc:
            undecodable = exc
        except Exception as exc:  # noqa: BLE001 - still screened on its exact hashes below
            undecodable = ImageRejected(
                reasons.NOT_AN_IMAGE, f"cannot decode: {type(exc).__name__}: {exc}")
        if self.context.withheld(response, hashes, facts, mime):
            return
        embedded: EmbeddedMetadata | None = None
        unreadable: str | None = None
        if facts is not None:  # only a screened image's metadata is read
            try:
                if large:
                    embedded = await maybe_deferred_to_future(
                        deferToThread(self._embedded, response.body, mime, facts))
                else:
                    embedded = self._embedded(response.body, mime, facts)
            except Exception as exc:  # noqa: BLE001 - per-item metadata that fails excludes it
                unreadable = f"embedded metadata unreadable: {type(exc).__name__}: {exc}"

        def reject(reason: str, detail: str, stage: str) -> None:
            self.context.reject(
                response.url, reason, stage, detail, source_id=source.id, page_url=page_url
            )

        inherited = self.context.opted_out.get(response.url)
        if inherited is not None:  # another page carrying this image opted out
            reject(inherited[0], inherited[1], reasons.STAGE_SIGNALS)
            return
        headers = Verdict()
        header_checks(response.headers, self.context.settings, headers)
        if headers.refusal is not None:
            label, result = headers.refusal
            reject(result.reason or reasons.X_ROBOTS_NOAI, f"{label}: {evidence(result)}",
                   reasons.STAGE_SIGNALS)
            return
        if undecodable is not None:
            reject(undecodable.reason, undecodable.detail, reasons.STAGE_IMAGE)
            return
        if unreadable is not None:
            reject(reasons.NO_LICENCE, unreadable, reasons.STAGE_LICENCE)
            return
        assert facts is not None and embedded is not None
        results = list(embedded.results)
        if embedded.c2pa_remote_url and not any(r.denies for _, r in results):
            results = [(lbl, r) for lbl, r in results if lbl != "c2pa"]
            results.append(("c2pa", await self._remote_c2pa(
                embedded.c2pa_remote_url, response, source.id, mime)))
        refused = next(((lbl, r) for lbl, r in results if r.denies), None)
        if refused is not None:
            label, result = refused
            reject(result.reason or reasons.IPTC_DATA_MINING_PROHIBITED,
                   f"{label}: {evidence(result)}", reasons.STAGE_SIGNALS)
            return
        rights: EmbeddedRights = embedded.rights
        markup: PageMarkup = info["markup"]
        if rights.error or markup.errors:
            reject(reasons.NO_LICENCE, "; ".join(filter(None, [rights.error, *markup.errors])),
                   reasons.STAGE_LICENCE)
            return
        decision = resolve(
            rights.evidence + markup.for_image(info["requested"], response.url)
            + info["scoped"] + markup.page,
            self.licence_allow, source.licence.default, source_url=page_url or response.url)
        if decision.reason is not None:
            reject(decision.reason, decision.detail or "", reasons.STAGE_LICENCE)
            return
        self.context.images[source.id] += 1
        signals = {**info["page_signals"], **(meta.get(META_SIGNALS) or {}),
                   **headers.rows(), **Verdict(results).rows()}
        for name in self.context.signals_off:
            signals[name] = {"check": name, "ran": False, "found": None, "decision": OFF,
                             "detail": "switched off in clearance.yaml signals:"}
        av = source.age_verification
        assert av is not None  # eligible sources always have one
        yield {
            "row_id": facts.sha256,
            "url": response.url,
            "page_url": page_url,
            "source_id": source.id,
            "consent_id": source.consent.id,
            "consent_sha256": self.consent_sha256[source.id],
            "age_verification_id": av.id,
            "fetched_at": datetime.now(UTC),
            "http_status": response.status,
            "content_type": mime or facts.mime,
            "bytes": facts.bytes,
            "sha256": facts.sha256,
            "md5": facts.md5,
            "pdq": facts.pdq,
            "width": facts.width,
            "height": facts.height,
            "licence": decision.licence,
            "licence_url": decision.licence_url,
            "licence_source": decision.licence_source,
            "creator": decision.creator,
            "attribution": decision.attribution,
            "caption": info["caption"],
            "signals": [signals[k] for k in sorted(signals)],
            "blocklists": self.context.blocklist_refs,
            "run_id": self.context.run_id,
            "sha1": facts.sha1,
            "pdq_quality": facts.pdq_quality,
            "licence_evidence": decision.evidence,
            "licence_disagreement": decision.disagreement,
            "minor_age_disclosure": rights.minor_age,
            "model_release_status": rights.model_release,
            "credit": decision.credit,
        }

    def _decode(self, body: bytes, hashes: Hashes) -> ImageFacts:
        """Decode under limits and PDQ-hash (screening needs it before anything else)."""
        return inspect_image(body, self.max_pixels, pdq=True, hashes=hashes,
                             dihedral=self.context.pdq_dihedral)

    def _embedded(self, body: bytes, mime: str | None, facts: ImageFacts) -> EmbeddedMetadata:
        """Embedded opt-out signals and rights evidence of an image that passed screening."""
        embedded = embedded_checks(body, mime or facts.mime, self.context.settings)
        return with_rights(embedded, body, mime or facts.mime)

    async def _remote_c2pa(
        self, url: str, response: Response, source_id: str, mime: str | None
    ) -> SignalResult:
        """Fetch a remote C2PA manifest only through the consent gate; unreadable refuses."""
        request = Request(url, dont_filter=True, meta={
            META_SOURCE: source_id, META_PAGE: response.url, META_KIND: "c2pa_manifest"})
        try:
            manifest = await self.crawler.engine.download_async(request)
        except Refused as exc:
            info = C2paInfo.failed(f"remote manifest {url} not fetched: {exc}", url)
        except Exception as exc:  # noqa: BLE001 - any failure leaves the signal unread
            info = C2paInfo.failed(f"remote manifest {url}: {type(exc).__name__}: {exc}", url)
        else:
            if manifest.status != 200:
                info = C2paInfo.failed(f"remote manifest {url}: HTTP {manifest.status}", url)
            else:
                embedded = await maybe_deferred_to_future(deferToThread(
                    embedded_checks, response.body, mime, self.context.settings, manifest.body))
                return next(r for lbl, r in embedded.results if lbl == "c2pa")
        return c2pa_signals(info)[0]

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
