"""Image bytes -> facts (format, size, hashes), or a reason to exclude them.

Decoding is bounded: the pixel count is checked from the header before any pixel is decoded
(decompression bombs), only common raster formats are opened, and a truncated or corrupt body is
an exclusion with its error, never a crash.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from pipeline import reasons

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
class ImageFacts:
    format: str
    mime: str
    width: int
    height: int
    sha256: str
    md5: str
    bytes: int


class ImageRejected(Exception):
    def __init__(self, reason: str, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def inspect_image(body: bytes, max_pixels: int) -> ImageFacts:
    """Open, bound and fully decode an image; raise :class:`ImageRejected` with a reason."""
    if not body:
        raise ImageRejected(reasons.NOT_AN_IMAGE, "empty body")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(body), formats=FORMATS) as img:
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
    return ImageFacts(
        format=fmt,
        mime=MIME.get(fmt, "application/octet-stream"),
        width=width,
        height=height,
        sha256=hashlib.sha256(body).hexdigest(),
        md5=hashlib.md5(body, usedforsecurity=False).hexdigest(),
        bytes=len(body),
    )
