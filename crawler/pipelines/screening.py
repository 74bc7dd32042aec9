"""Stage 100, screening: every fetched image is hashed, decoded under its bounds, PDQ-hashed and
matched against the hash lists before any other stage sees it.

A hit (or a hit's neighbour, or an image of a source suspended meanwhile) is dropped here with
no row and no rejection: its incident is the one trace (:mod:`crawler.screening`). A body that
does not decode is still matched on its exact hashes; its decode failure travels on with the
item and becomes its rejection only after the header opt-outs had their say.

Where the work runs: by default every body is hashed, decoded and PDQ-hashed in the decode
threads (:class:`crawler.images.DecodeThreads`; Pillow's decoders and :mod:`crawler.pdq` release
the GIL, so they use the second core while the reactor crawls), at most one image per thread at
a time, the pixel count checked from the header before any pixel is decoded. With
``CLEARANCE_DECODE=processes`` bodies of 32 KiB or more go to the decode pool's worker process
while it has room; otherwise (or with no pool) the crawl decodes them itself, inline only when
the image is small in bytes and in pixels (the header is peeked first: a tiny PNG can declare
50 megapixels), else in one thread at a time (a 50-megapixel image takes ~1.4 GB decoded).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.defer import DeferredSemaphore
from twisted.internet.threads import deferToThread

from crawler.context import CrawlContext, context_of
from crawler.images import (
    MIME,
    DecodeThreads,
    Hashes,
    ImageFacts,
    ImageRejected,
    content_hashes,
    inspect_image,
    open_header,
)
from crawler.items import FetchedImage, withhold
from pipeline.runs import reasons

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from crawler.conditional import Earlier

logger = logging.getLogger(__name__)

# Small images (in bytes and in pixels) decode + PDQ-hash in a few ms: a thread hand-off costs
# more than it saves (measured with bench/crawl.py).
INLINE_DECODE_BYTES = 256 * 1024
INLINE_DECODE_PIXELS = 1024 * 1024


class ScreeningStage:
    def __init__(self, context: CrawlContext):
        self.context = context
        self.max_pixels = context.config.settings.limits.max_pixels
        self.decode_threads = DeferredSemaphore(1)  # one threaded decode at a time (see above)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ScreeningStage:
        return cls(context_of(crawler))

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, FetchedImage):
            return item
        if item.earlier is not None:  # a 304: the earlier row's hashes, screened again
            item.hashes, item.facts = earlier_facts(item.earlier)
            if self.context.withheld(item.response, item.hashes, item.facts, item.mime):
                withhold()
            return item
        body = item.response.body
        item.large = len(body) > INLINE_DECODE_BYTES
        pool = self.context.decode_pool
        if isinstance(pool, DecodeThreads):  # hashes, decode and PDQ all off the reactor
            item.hashes, item.facts, item.undecodable = await pool.screen(
                body, self.max_pixels, dihedral=self.context.pdq_dihedral)
            if item.facts is not None:
                item.large = item.large or (
                    item.facts.width * item.facts.height > INLINE_DECODE_PIXELS)
        else:
            item.hashes = content_hashes(body)
            try:
                item.facts = await self._decode(item)
            except ImageRejected as exc:
                item.undecodable = exc
            except Exception as exc:  # noqa: BLE001 - still screened on its exact hashes below
                item.undecodable = ImageRejected(
                    reasons.NOT_AN_IMAGE, f"cannot decode: {type(exc).__name__}: {exc}")
        if self.context.withheld(item.response, item.hashes, item.facts, item.mime):
            withhold()
        return item

    async def _decode(self, item: FetchedImage) -> ImageFacts:
        """Decode + PDQ in the pool when it has room, else here: inline when small in bytes and
        in pixels, otherwise in a thread. The header is read once, and only in this process
        when this process decodes."""
        body, hashes = item.response.body, item.hashes
        assert hashes is not None
        facts = await self._in_pool(body, hashes)
        if facts is not None:
            item.large = item.large or facts.width * facts.height > INLINE_DECODE_PIXELS
            return facts
        opened = None if item.large else open_header(body)
        if opened is not None and opened.size[0] * opened.size[1] > INLINE_DECODE_PIXELS:
            item.large = True
        if not item.large:
            return self._inspect(body, hashes, opened)
        return await maybe_deferred_to_future(
            self.decode_threads.run(deferToThread, self._inspect, body, hashes, opened))

    def _inspect(self, body: bytes, hashes: Hashes, opened: Any = None) -> ImageFacts:
        return inspect_image(body, self.max_pixels, pdq=True, hashes=hashes,
                             dihedral=self.context.pdq_dihedral, opened=opened)

    async def _in_pool(self, body: bytes, hashes: Hashes) -> ImageFacts | None:
        """The decode pool's answer, or None when the crawl should decode this body itself."""
        context = self.context
        pool = context.decode_pool
        if pool is None or not pool.has_room(len(body)):
            return None
        try:
            return await pool.inspect(body, self.max_pixels, dihedral=context.pdq_dihedral,
                                      hashes=hashes)
        except ImageRejected:
            raise
        except Exception as exc:  # noqa: BLE001 - the pool failing must not lose the image
            logger.warning("decode pool unavailable (%s: %s); decoding in the crawl process",
                           type(exc).__name__, exc)
            context.decode_pool = None
            pool.close()
            return None


def earlier_facts(earlier: Earlier) -> tuple[Hashes, ImageFacts]:
    """The hashes and facts of a row a 304 confirmed (its dihedral PDQ variants too, when the
    crawl screens them: they were recorded with its validators)."""
    row = earlier.row
    hashes = Hashes(sha256=row["sha256"], md5=row["md5"], sha1=row["sha1"] or "")
    formats = {mime: fmt for fmt, mime in MIME.items()}
    mime = row["content_type"] or ""
    facts = ImageFacts(
        format=formats.get(mime.split(";")[0].strip(), ""), mime=mime, width=row["width"],
        height=row["height"], sha256=row["sha256"], md5=row["md5"], bytes=row["bytes"],
        sha1=row["sha1"], pdq=row["pdq"], pdq_quality=row["pdq_quality"],
        pdq_variants=earlier.pdq_variants,
    )
    return hashes, facts
