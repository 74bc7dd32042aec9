"""Stage 200, opt-out signals on a screened image: any honoured signal that says no refuses it.

In order, the first refusal deciding the reason:

1. a page carrying this image opted out (its images are refused wherever else they appear);
2. the image response's headers (Content-Usage, X-Robots-Tag, tdm-reservation);
3. an image that did not decode is refused now, with its decode reason (stage ``image``);
4. its embedded metadata, read only now (XMP, C2PA, and the rights evidence they carry, in one
   pass over the bytes, off the reactor thread for large bodies): IPTC data mining, minors,
   C2PA/CAWG training-mining; a remote C2PA manifest is fetched only through the consent gate.
   Metadata that cannot be read excludes the item (``no_licence``, stage ``licence``).

The parsers are :mod:`crawler.signals`; signals read before the fetch are gates
(:mod:`crawler.downloadermiddlewares`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scrapy import Request
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.threads import deferToThread

from crawler.context import CrawlContext, context_of
from crawler.exceptions import Refused
from crawler.items import FetchedImage, refuse
from crawler.meta import META_KIND, META_PAGE, META_SOURCE
from crawler.rights.embedded import EmbeddedRights, with_rights
from crawler.signals import SignalResult, evidence
from crawler.signals.c2pa_manifest import C2paInfo, c2pa_signals
from crawler.signals.response import EmbeddedMetadata, Verdict, embedded_checks, header_checks
from pipeline.runs import reasons

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from crawler.conditional import Earlier


class OptOutStage:
    def __init__(self, crawler: Crawler, context: CrawlContext):
        self.crawler = crawler
        self.context = context
        self.settings = context.config.settings

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> OptOutStage:
        return cls(crawler, context_of(crawler))

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, FetchedImage):
            return item
        context = self.context
        inherited = context.opted_out.get(item.url)
        if inherited is not None:  # another page carrying this image opted out
            refuse(context, item, inherited[0], inherited[1], reasons.STAGE_SIGNALS)
        item.headers = Verdict()
        header_checks(item.response.headers, self.settings, item.headers)
        if item.headers.refusal is not None:
            label, result = item.headers.refusal
            refuse(context, item, result.reason or reasons.X_ROBOTS_NOAI,
                   f"{label}: {evidence(result)}", reasons.STAGE_SIGNALS)
        if item.earlier is not None:  # a 304: the embedded checks of the unchanged bytes
            item.embedded = earlier_embedded(item.earlier)
            item.results = list(item.embedded.results)
            return item
        if item.undecodable is not None:
            refuse(context, item, item.undecodable.reason, item.undecodable.detail,
                   reasons.STAGE_IMAGE)
        assert item.facts is not None
        body, mime = item.response.body, item.mime or item.facts.mime
        try:
            if item.large:
                embedded = await maybe_deferred_to_future(
                    deferToThread(self._embedded, body, mime))
            else:
                embedded = self._embedded(body, mime)
        except Exception as exc:  # noqa: BLE001 - per-item metadata that fails excludes it
            refuse(context, item, reasons.NO_LICENCE,
                   f"embedded metadata unreadable: {type(exc).__name__}: {exc}",
                   reasons.STAGE_LICENCE)
        results = list(embedded.results)
        if embedded.c2pa_remote_url and not any(r.denies for _, r in results):
            results = [(lbl, r) for lbl, r in results if lbl != "c2pa"]
            results.append(("c2pa", await self._remote_c2pa(embedded.c2pa_remote_url, item)))
        item.embedded, item.results = embedded, results
        refused = next(((lbl, r) for lbl, r in results if r.denies), None)
        if refused is not None:
            label, result = refused
            refuse(context, item, result.reason or reasons.IPTC_DATA_MINING_PROHIBITED,
                   f"{label}: {evidence(result)}", reasons.STAGE_SIGNALS)
        return item

    def _embedded(self, body: bytes, mime: str | None) -> EmbeddedMetadata:
        """Embedded opt-out signals and rights evidence of an image that passed screening."""
        return with_rights(embedded_checks(body, mime, self.settings), body, mime)

    async def _remote_c2pa(self, url: str, item: FetchedImage) -> SignalResult:
        """Fetch a remote C2PA manifest only through the consent gate; unreadable refuses."""
        request = Request(url, dont_filter=True, meta={
            META_SOURCE: item.source.id, META_PAGE: item.url, META_KIND: "c2pa_manifest"})
        assert self.crawler.engine is not None
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
                    embedded_checks, item.response.body, item.mime, self.settings,
                    manifest.body))
                return next(r for lbl, r in embedded.results if lbl == "c2pa")
        return c2pa_signals(info)[0]


EMBEDDED_CHECKS = ("xmp.", "c2pa")  # labels of embedded_checks' results in a row's signals


def earlier_embedded(earlier: Earlier) -> EmbeddedMetadata:
    """The embedded checks an earlier row recorded for the same bytes (they allowed it), as
    results again; the licence decision is the row's too (crawler.pipelines.rights)."""
    results = [
        (s["check"], SignalResult(s["check"], s["decision"], found=s["found"],
                                  detail=s["detail"]))
        for s in earlier.row["signals"] or [] if s["check"].startswith(EMBEDDED_CHECKS)
    ]
    rights = EmbeddedRights([], None, earlier.row.get("minor_age_disclosure"),
                            earlier.row.get("model_release_status"))
    return EmbeddedMetadata(results, None, rights=rights)
