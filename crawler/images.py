"""Image bytes -> facts (format, size, hashes), or a reason to exclude them.

Decoding is bounded: the pixel count is checked from the header before any pixel is decoded
(decompression bombs), only common raster formats are opened, and a truncated or corrupt body is
an exclusion with its error, never a crash.

Screening needs the hashes before anything else: :func:`content_hashes` works on any body (an
undecodable one is still screened on its exact hashes), and :func:`inspect_image` adds the PDQ
perceptual hash of the image it has just decoded (no second decode).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import multiprocessing
import warnings
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

from pipeline.runs import reasons

FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
MIME = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}


@dataclass(frozen=True)
class Hashes:
    """Exact content hashes of a body (hex), computed before it is decoded."""

    sha256: str
    md5: str
    sha1: str


def content_hashes(body: bytes) -> Hashes:
    return Hashes(
        sha256=hashlib.sha256(body).hexdigest(),
        md5=hashlib.md5(body, usedforsecurity=False).hexdigest(),
        sha1=hashlib.sha1(body, usedforsecurity=False).hexdigest(),
    )


@dataclass(frozen=True)
class ImageFacts:
    format: str
    mime: str
    width: int
    height: int
    sha256: str
    md5: str
    bytes: int
    sha1: str | None = None
    pdq: str | None = None  # canonical PDQ hex of the decoded image (when asked)
    pdq_quality: int | None = None
    pdq_variants: tuple[str, ...] = ()  # the dihedral variants, when screening asks for them


class ImageRejected(Exception):
    def __init__(self, reason: str, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")

    def __reduce__(self) -> tuple[Any, ...]:  # crosses the decode pool's process boundary
        return (ImageRejected, (self.reason, self.detail))


def open_header(body: bytes) -> Image.Image | None:
    """The image with only its header read (no pixel decoded), for :func:`inspect_image` to
    decode without reading the header again; None if the header is unreadable (then
    :func:`inspect_image` reports what is wrong with the body)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(body), formats=FORMATS)
    except Exception:  # noqa: BLE001 - inspect_image reports what is wrong with the body
        return None


def header_pixels(body: bytes) -> int | None:
    """Width x height from the image header alone (no pixel is decoded); None if unreadable."""
    img = open_header(body)
    if img is None:
        return None
    with img:
        width, height = img.size
    return width * height


def inspect_image(
    body: bytes,
    max_pixels: int,
    *,
    pdq: bool = False,
    dihedral: bool = False,
    hashes: Hashes | None = None,
    opened: Image.Image | None = None,
) -> ImageFacts:
    """Open, bound and fully decode an image; raise :class:`ImageRejected` with a reason.

    With ``pdq`` the PDQ hash and quality of the decoded image are computed too; an image that
    decodes but cannot be PDQ-hashed is rejected (it could not be screened). ``opened`` is the
    body's image from :func:`open_header`, when the caller has already read its header.
    """
    if not body:
        raise ImageRejected(reasons.NOT_AN_IMAGE, "empty body")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with opened or Image.open(io.BytesIO(body), formats=FORMATS) as img:
                width, height = img.size
                if width <= 0 or height <= 0:
                    raise ImageRejected(reasons.NOT_AN_IMAGE, f"invalid size {width}x{height}")
                if width * height > max_pixels:
                    raise ImageRejected(
                        reasons.TOO_LARGE,
                        f"{width}x{height} = {width * height} pixels exceeds "
                        f"limits.max_pixels={max_pixels} (not decoded)",
                    )
                fmt = img.format or "unknown"
                img.load()
                if pdq and dihedral:  # one reference pass gives the hash and all 8 variants
                    hexed, quality, variants = _pdq_variants(img)
                    perceptual: tuple[str | None, int | None] = (hexed, quality)
                else:
                    perceptual, variants = (_pdq(img) if pdq else (None, None)), ()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(
            reasons.TOO_LARGE, f"decompression bomb (limits.max_pixels={max_pixels}): {exc}"
        ) from None
    except UnidentifiedImageError:
        raise ImageRejected(
            reasons.NOT_AN_IMAGE, f"not a recognised image ({', '.join(FORMATS)})"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise ImageRejected(
            reasons.NOT_AN_IMAGE, f"cannot decode: {type(exc).__name__}: {exc}"
        ) from None
    hashes = hashes or content_hashes(body)
    return ImageFacts(
        format=fmt,
        mime=MIME.get(fmt, "application/octet-stream"),
        width=width,
        height=height,
        sha256=hashes.sha256,
        md5=hashes.md5,
        bytes=len(body),
        sha1=hashes.sha1,
        pdq=perceptual[0],
        pdq_quality=perceptual[1],
        pdq_variants=variants,
    )


def _pdq(img: Image.Image) -> tuple[str, int]:
    from crawler.perceptual import pdq_hash

    try:
        return pdq_hash(img)
    except Exception as exc:  # noqa: BLE001 - an unhashable image cannot be screened
        raise ImageRejected(
            reasons.NOT_AN_IMAGE, f"cannot compute its PDQ hash: {type(exc).__name__}: {exc}"
        ) from None


def _pdq_variants(img: Image.Image) -> tuple[str, int, tuple[str, ...]]:
    from crawler.perceptual import pdq_hash_and_dihedral

    try:
        hexed, quality, variants = pdq_hash_and_dihedral(img)
        return hexed, quality, tuple(variants)
    except Exception as exc:  # noqa: BLE001 - an unhashable image cannot be screened
        raise ImageRejected(
            reasons.NOT_AN_IMAGE, f"cannot compute its PDQ hash: {type(exc).__name__}: {exc}"
        ) from None


def _warm_up() -> None:
    from crawler.pdq import warm_up

    warm_up()


def hash_and_inspect(body: bytes, max_pixels: int, dihedral: bool
                     ) -> tuple[Hashes, ImageFacts | None, ImageRejected | None]:
    """:meth:`DecodeThreads.screen`'s job: the hashes always, the facts or the rejection."""
    hashes = content_hashes(body)
    try:
        return hashes, _inspect_with_pdq(body, max_pixels, dihedral, hashes), None
    except ImageRejected as exc:
        return hashes, None, exc
    except Exception as exc:  # noqa: BLE001 - still screened on its exact hashes
        return hashes, None, ImageRejected(
            reasons.NOT_AN_IMAGE, f"cannot decode: {type(exc).__name__}: {exc}")


def _inspect_with_pdq(body: bytes, max_pixels: int, dihedral: bool,
                      hashes: Hashes | None) -> ImageFacts:
    return inspect_image(body, max_pixels, pdq=True, dihedral=dihedral, hashes=hashes)


class DecodeThreads:
    """Decode + PDQ of every image in ``workers`` threads beside the reactor.

    Pillow releases the GIL while it decodes and :mod:`crawler.pdq` releases it for the whole
    hash, so threads use both cores with no copy of the body or the result between processes
    (bench/screen_crawl.py measured them against :class:`DecodePool`). Memory stays bounded as
    before: the header is read and the pixel count checked before any pixel is decoded, and
    at most ``workers`` images are decoded at once (one per thread); bodies waiting in the
    queue are the responses the crawl already holds.
    """

    def __init__(self, workers: int = 2, *, warm: bool = True):
        self.workers = workers
        self.pending = 0
        self._executor: ThreadPoolExecutor | None = None
        if warm:  # import numba and load the compiled PDQ kernel (~0.7 s) while Scrapy starts
            self._pool().submit(_warm_up)

    def has_room(self, size: int) -> bool:
        return True  # every image: the reactor thread does no image work

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="decode")
        return self._executor

    async def inspect(self, body: bytes, max_pixels: int, *, dihedral: bool = False,
                      hashes: Hashes | None = None) -> ImageFacts:
        """:func:`inspect_image` with PDQ, in a thread; raises :class:`ImageRejected`."""
        future = self._pool().submit(_inspect_with_pdq, body, max_pixels, dihedral, hashes)
        self.pending += 1
        try:
            return await asyncio.wrap_future(future)
        finally:
            self.pending -= 1

    async def screen(self, body: bytes, max_pixels: int, *, dihedral: bool = False
                     ) -> tuple[Hashes, ImageFacts | None, ImageRejected | None]:
        """Content hashes, then :func:`inspect_image` with PDQ, all in a thread: ``(hashes,
        facts, None)``, or ``(hashes, None, rejection)`` for a body that does not decode (it
        is still screened on its hashes)."""
        future = self._pool().submit(hash_and_inspect, body, max_pixels, dihedral)
        self.pending += 1
        try:
            return await asyncio.wrap_future(future)
        finally:
            self.pending -= 1

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


class DecodePool:
    """Bounded decode + PDQ of large images in a worker process.

    Before :mod:`crawler.pdq`, ``pdqhash`` held the GIL (26.8 ms for a 1024x768 image), so a
    thread would stall the reactor and a process used the second core instead; with the GIL
    released :class:`DecodeThreads` is the default (``CLEARANCE_DECODE=processes`` for this).
    Work is shared, not handed over: a body goes to the worker only while it has room
    (:meth:`has_room`), otherwise the crawl decodes it itself, so both cores stay busy
    whatever the mix of sizes. The worker is started on first use (forkserver: never a fork of
    the running reactor). A worker that dies (a decoder crash on a hostile body) rejects that
    image and is replaced.
    """

    MIN_BYTES = 32 * 1024  # below this the hand-off costs more than the decode

    def __init__(self, workers: int = 1):
        self.workers = workers
        self.pending = 0
        self._executor: ProcessPoolExecutor | None = None

    def has_room(self, size: int) -> bool:
        # one queued behind each running job keeps the worker fed between hand-offs
        return size >= self.MIN_BYTES and self.pending < 2 * self.workers

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            context = multiprocessing.get_context("forkserver")
            self._executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
        return self._executor

    async def inspect(self, body: bytes, max_pixels: int, *, dihedral: bool = False,
                      hashes: Hashes | None = None) -> ImageFacts:
        """:func:`inspect_image` with PDQ, in the worker; raises :class:`ImageRejected`."""
        future = self._pool().submit(_inspect_with_pdq, body, max_pixels, dihedral, hashes)
        self.pending += 1
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            self.close()
            raise ImageRejected(
                reasons.NOT_AN_IMAGE, "the image decoder process died on this body"
            ) from None
        finally:
            self.pending -= 1

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
