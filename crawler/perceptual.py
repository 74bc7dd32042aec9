"""PDQ perceptual hashes of decoded images, in ThreatExchange's canonical 64-hex form.

The hash is ``pdqhash`` (Meta's reference C++) over the full-resolution RGB pixels, exactly as
hash lists are made: no draft decoding or downscaling first, which moves the hash 4-14 bits
(see bench/screen.py and the README, "Hash lists", for the measured shortcuts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pdqhash

if TYPE_CHECKING:
    from PIL import Image


def _rgb_array(image: Image.Image) -> np.ndarray:
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return np.asarray(rgb)


def _hex(bits: np.ndarray) -> str:
    # pdqhash returns bit 255 first: packing big-endian gives the reference's hex
    # (Hash256::format prints word 15 down to word 0).
    return np.packbits(bits.astype(np.uint8)).tobytes().hex()


def pdq_hash(image: Image.Image) -> tuple[str, int]:
    """``(hex, quality)``: the canonical PDQ of a decoded image and its quality (0..100)."""
    bits, quality = pdqhash.compute(_rgb_array(image))
    return _hex(bits), int(quality)


def pdq_dihedral(image: Image.Image) -> list[str]:
    """The 8 dihedral variants' PDQ: original, rot90, rot180, rot270, flipX, flipY, flip+1, flip-1.

    One pass of the reference code (the transforms are applied to the DCT, not the pixels).
    """
    variants, _quality = pdqhash.compute_dihedral(_rgb_array(image))
    return [_hex(bits) for bits in variants]


def pdq_hash_and_dihedral(image: Image.Image) -> tuple[str, int, list[str]]:
    """``(hex, quality, variants)`` in one reference pass; ``variants[0]`` is ``hex``.

    For ``screening.pdq_dihedral``: the same cost as :func:`pdq_hash` alone, where calling
    :func:`pdq_hash` and :func:`pdq_dihedral` would hash the image twice.
    """
    variants, quality = pdqhash.compute_dihedral(_rgb_array(image))
    hexes = [_hex(bits) for bits in variants]
    return hexes[0], int(quality), hexes
