"""crawler/images.py: `inspect_image` facts for real images, and the reasons it refuses bodies
that are empty, not images, truncated, or too large (checked from the header, never decoded)."""

from __future__ import annotations

import hashlib
import io
import struct
import tracemalloc
import zlib
from pathlib import Path

import pytest
from PIL import Image

from crawler.images import ImageFacts, ImageRejected, inspect_image
from pipeline.runs import reasons

MAX_PIXELS = 50_000_000


def encode(size: tuple[int, int], fmt: str, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, (10, 120, 200) if mode == "RGB" else 0).save(buf, format=fmt)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG declaring width x height RGB pixels with a tiny IDAT: no pixel is ever allocated."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)  # a few bytes of one row
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def rejected(body: bytes, max_pixels: int = MAX_PIXELS) -> ImageRejected:
    with pytest.raises(ImageRejected) as info:
        inspect_image(body, max_pixels)
    assert info.value.reason in reasons.ALL
    assert str(info.value) == f"{info.value.reason}: {info.value.detail}"
    return info.value


# --------------------------------------------------------------------------- facts


@pytest.mark.parametrize(
    ("fmt", "mime", "mode"),
    [("JPEG", "image/jpeg", "RGB"), ("PNG", "image/png", "RGB"), ("GIF", "image/gif", "L"),
     ("WEBP", "image/webp", "RGB"), ("BMP", "image/bmp", "RGB")],
)
def test_facts(fmt: str, mime: str, mode: str) -> None:
    body = encode((64, 48), fmt, mode)
    facts = inspect_image(body, MAX_PIXELS)
    assert facts == ImageFacts(
        format=fmt,
        mime=mime,
        width=64,
        height=48,
        sha256=hashlib.sha256(body).hexdigest(),
        md5=hashlib.md5(body).hexdigest(),
        bytes=len(body),
        sha1=hashlib.sha1(body).hexdigest(),
    )


def test_hashes_are_of_the_exact_bytes() -> None:
    body = encode((8, 8), "PNG")
    a = inspect_image(body, MAX_PIXELS)
    b = inspect_image(body + b"trailing", MAX_PIXELS)
    assert (a.width, a.height) == (b.width, b.height)
    assert a.sha256 != b.sha256 and a.md5 != b.md5
    assert b.bytes == a.bytes + len(b"trailing")


def test_real_exiftool_xmp_jpeg(shared_fixtures: Path) -> None:
    body = (shared_fixtures / "images" / "iptc_xmp" / "exiftool_XMP.jpg").read_bytes()
    facts = inspect_image(body, MAX_PIXELS)
    assert (facts.format, facts.mime, facts.width, facts.height) == ("JPEG", "image/jpeg", 8, 8)
    assert facts.sha256 == hashlib.sha256(body).hexdigest()
    assert facts.md5 == hashlib.md5(body).hexdigest()
    assert facts.bytes == len(body)


# --------------------------------------------------------------------------- refusals


def test_empty_body() -> None:
    error = rejected(b"")
    assert (error.reason, error.detail) == (reasons.NOT_AN_IMAGE, "empty body")


@pytest.mark.parametrize(
    "body",
    [b"<!doctype html><html><body>Not found</body></html>",
     b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
     b"\x00" * 1024,
     b"GIF89a"],
)
def test_not_an_image(body: bytes) -> None:
    error = rejected(body)
    assert error.reason == reasons.NOT_AN_IMAGE


def test_html_body_names_the_formats_tried() -> None:
    error = rejected(b"<html><head><title>Login</title></head></html>")
    assert error.reason == reasons.NOT_AN_IMAGE
    assert "not a recognised image" in error.detail
    assert "JPEG" in error.detail and "PNG" in error.detail


def test_unsupported_format_is_not_opened() -> None:
    """Only common raster formats are opened (no PDF/EPS/ICO parsers on untrusted input)."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, format="ICO")
    assert rejected(buf.getvalue()).reason == reasons.NOT_AN_IMAGE


def test_truncated_jpeg() -> None:
    body = encode((256, 256), "JPEG")
    error = rejected(body[: len(body) // 2])
    assert error.reason == reasons.NOT_AN_IMAGE
    assert error.detail.startswith("cannot decode: ")
    assert "truncated" in error.detail


def test_corrupt_png_crc() -> None:
    body = bytearray(encode((32, 32), "PNG"))
    idat = body.index(b"IDAT")
    body[idat + 10] ^= 0xFF  # flip a byte inside the compressed data
    assert rejected(bytes(body)).reason == reasons.NOT_AN_IMAGE


def test_decompression_bomb_png_is_refused_from_its_header() -> None:
    body = png_header_only(20_000, 20_000)
    assert len(body) < 200
    tracemalloc.start()
    try:
        error = rejected(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.reason == reasons.TOO_LARGE
    assert "max_pixels" in error.detail
    assert peak < 50_000_000  # 20000x20000 RGB would be 1.2 GB


def test_over_our_limit_but_under_pillows_is_refused_undecoded() -> None:
    body = png_header_only(8_000, 8_000)  # 64 Mpx: above 50M, below Pillow's own bomb limit
    error = rejected(body, max_pixels=MAX_PIXELS)
    assert error.reason == reasons.TOO_LARGE
    assert "8000x8000 = 64000000 pixels" in error.detail
    assert f"limits.max_pixels={MAX_PIXELS}" in error.detail
    assert "not decoded" in error.detail


def test_max_pixels_boundary() -> None:
    body = encode((10, 10), "PNG")
    assert inspect_image(body, max_pixels=100).width == 10
    error = rejected(body, max_pixels=99)
    assert error.reason == reasons.TOO_LARGE
    assert "10x10 = 100 pixels" in error.detail
    assert "limits.max_pixels=99" in error.detail


def test_header_only_png_under_the_limit_is_a_decode_failure_not_a_crash() -> None:
    error = rejected(png_header_only(100, 100))
    assert error.reason == reasons.NOT_AN_IMAGE
    assert error.detail.startswith("cannot decode: ")


def test_zero_sized_png_header() -> None:
    assert rejected(png_header_only(0, 10)).reason == reasons.NOT_AN_IMAGE


def test_pdq_is_computed_on_the_decoded_image_when_asked() -> None:
    from crawler.perceptual import pdq_hash

    body = encode((64, 48), "PNG", "RGB")
    assert inspect_image(body, MAX_PIXELS).pdq is None
    facts = inspect_image(body, MAX_PIXELS, pdq=True)
    with Image.open(io.BytesIO(body)) as img:
        img.load()
        assert (facts.pdq, facts.pdq_quality) == pdq_hash(img)
    assert len(facts.pdq or "") == 64 and facts.pdq_variants == ()
    dihedral = inspect_image(body, MAX_PIXELS, pdq=True, dihedral=True)
    assert len(dihedral.pdq_variants) == 8 and dihedral.pdq_variants[0] == facts.pdq
    assert (dihedral.pdq, dihedral.pdq_quality) == (facts.pdq, facts.pdq_quality)


def test_content_hashes_work_on_any_body() -> None:
    from crawler.images import content_hashes

    hashes = content_hashes(b"not an image")
    assert hashes.sha256 == hashlib.sha256(b"not an image").hexdigest()
    assert hashes.md5 == hashlib.md5(b"not an image").hexdigest()
    assert hashes.sha1 == hashlib.sha1(b"not an image").hexdigest()


def test_decode_pool_gives_the_same_facts_and_reasons_as_inline() -> None:
    import asyncio

    from crawler.images import DecodePool

    body = encode((640, 480), "PNG", "RGB")
    pool = DecodePool()

    async def run() -> tuple[ImageFacts, ImageRejected]:
        facts = await pool.inspect(body, MAX_PIXELS)
        try:
            await pool.inspect(body, 1000)
        except ImageRejected as exc:
            return facts, exc
        raise AssertionError("max_pixels was not applied in the worker")

    try:
        facts, rejected_there = asyncio.run(run())
    finally:
        pool.close()
    assert facts == inspect_image(body, MAX_PIXELS, pdq=True)
    assert (rejected_there.reason, rejected_there.detail) == (
        rejected(body, 1000).reason, rejected(body, 1000).detail)


def test_header_pixels_reads_the_size_without_decoding() -> None:
    from crawler.images import header_pixels

    assert header_pixels(encode((64, 48), "PNG", "RGB")) == 64 * 48
    # A body that compresses a large canvas into few bytes still declares its size.
    big = encode((3000, 2000), "PNG", "L")
    assert len(big) < 256 * 1024 and header_pixels(big) == 6_000_000
    assert header_pixels(b"not an image") is None
    assert header_pixels(encode((64, 48), "PNG", "RGB")[:40]) in (None, 64 * 48)
