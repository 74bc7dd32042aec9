"""PDQ perceptual hashes of decoded images, in ThreatExchange's canonical 64-hex form.

The hash is :mod:`crawler.pdq` (the reference's algorithm in numba, bit-identical to
``pdqhash``, Meta's C++, which tests/test_pdq.py checks) over the full-resolution pixels, exactly
as hash lists are made: no draft decoding or downscaling first, which moves the hash 4-14 bits
(see bench/screen.py and the README, "Hash lists", for the measured shortcuts). It runs without
the GIL, so a decoding thread hashes beside the reactor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from crawler.pdq import pdq_bytes

if TYPE_CHECKING:
    from PIL import Image


def _pixels(image: Image.Image) -> np.ndarray:
    """The image's pixels as a uint8 array, without a copy where Pillow allows it.

    Grey is hashed as is (its luma is that of its RGB conversion: R = G = B). RGB is read in
    place through Pillow's Arrow export (its RGBX buffer, the 4th byte ignored by the kernel):
    ``np.asarray`` would copy it through ``tobytes``, 2-7 ms for 1-2 megapixels. Images whose
    rows Pillow spread over several blocks (over 16 MB) are copied.
    """
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    try:
        exported = pa.array(image)
    except (ValueError, TypeError, NotImplementedError):
        # Pillow cannot export this image through Arrow (rows spread over several blocks):
        # the copy through tobytes gives the same pixels, only slower.
        return np.asarray(image)
    width, height = image.size
    if image.mode == "L":
        return exported.to_numpy(zero_copy_only=True).reshape(height, width)
    return exported.values.to_numpy(zero_copy_only=True).reshape(height, width, 4)


def _hex(bits: np.ndarray) -> str:
    # pdqhash returns bit 255 first: packing big-endian gives the reference's hex
    # (Hash256::format prints word 15 down to word 0). For bit vectors of the oracle.
    return np.packbits(bits.astype(np.uint8)).tobytes().hex()


def pdq_hash(image: Image.Image) -> tuple[str, int]:
    """``(hex, quality)``: the canonical PDQ of a decoded image and its quality (0..100)."""
    hashes, quality = pdq_bytes(_pixels(image), 1)
    return hashes[0].tobytes().hex(), quality


def pdq_dihedral(image: Image.Image) -> list[str]:
    """The 8 dihedral variants' PDQ: original, rot90, rot180, rot270, flipX, flipY, flip+1, flip-1.

    One pass (the transforms are applied to the DCT, not the pixels, as the reference does).
    """
    return pdq_hash_and_dihedral(image)[2]


def pdq_hash_and_dihedral(image: Image.Image) -> tuple[str, int, list[str]]:
    """``(hex, quality, variants)`` in one pass; ``variants[0]`` is ``hex``.

    For ``screening.pdq_dihedral``: the same cost as :func:`pdq_hash` alone, where calling
    :func:`pdq_hash` and :func:`pdq_dihedral` would hash the image twice.
    """
    hashes, quality = pdq_bytes(_pixels(image), 8)
    hexes = [row.tobytes().hex() for row in hashes]
    return hexes[0], quality, hexes
