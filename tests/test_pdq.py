"""crawler.pdq against the oracle: ``pdqhash`` (Meta's C++ reference) must give the same bits.

Every case compares all 8 dihedral variants (``pdqhash.compute_dihedral``) and the quality,
bit for bit: the real photos in ../shared/fixtures, sizes from 1x1 to 4032x3024 (tiny ones
below the reference's 5-pixel minimum hash to zero), flat, gradient and noise images, grey
pixels and strided arrays. A compiler or flag change (fast-math, fused multiply-adds) that
moved one bit on one image fails here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pdqhash
import pytest
from PIL import Image, ImageOps

from crawler import pdq


def oracle(pixels: np.ndarray) -> tuple[list[str], int]:
    if pixels.ndim == 2:  # the binding takes RGB only: grey as its RGB conversion
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    variants, quality = pdqhash.compute_dihedral(np.ascontiguousarray(pixels))
    return [np.packbits(bits.astype(np.uint8)).tobytes().hex() for bits in variants], int(quality)


def ours(pixels: np.ndarray) -> tuple[list[str], int]:
    hashes, quality = pdq.pdq_bytes(pixels, 8)
    return [row.tobytes().hex() for row in hashes], quality


def differing_bits(a: list[str], b: list[str]) -> list[int]:
    return [bin(int(x, 16) ^ int(y, 16)).count("1") for x, y in zip(a, b, strict=True)]


def assert_same(pixels: np.ndarray, label: str) -> None:
    want, want_quality = oracle(pixels)
    got, got_quality = ours(pixels)
    assert differing_bits(want, got) == [0] * 8, f"{label}: bits differ per variant"
    assert got_quality == want_quality, f"{label}: quality {got_quality} != {want_quality}"


def smooth(height: int, width: int, seed: int) -> np.ndarray:
    """Photo-like: low-frequency waves plus a little noise (quality near 100)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    fx, fy = rng.uniform(2, 40, 3), rng.uniform(2, 40, 3)
    channels = [127 + 100 * np.sin(x / fx[c] + y / fy[c]) + rng.normal(0, 8, (height, width))
                for c in range(3)]
    return np.clip(np.stack(channels, -1), 0, 255).astype(np.uint8)


def noise(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def gradient(height: int, width: int, direction: str) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    ramp = {"x": x / max(width - 1, 1), "y": y / max(height - 1, 1),
            "xy": (x + y) / max(width + height - 2, 1)}[direction]
    out = np.empty((height, width, 3), dtype=np.uint8)
    out[..., 0] = (ramp * 255).astype(np.uint8)
    out[..., 1] = ((1 - ramp) * 255).astype(np.uint8)
    out[..., 2] = 128
    return out


# --------------------------------------------------------------------------- fixtures


def fixture_images(root: Path) -> list[Path]:
    exts = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".tif", ".tiff", ".bmp"}
    return sorted(p for p in (root / "images").rglob("*") if p.suffix.lower() in exts)


def test_every_fixture_image_and_its_rotations(shared_fixtures: Path) -> None:
    paths = fixture_images(shared_fixtures)
    assert paths, "no images in ../shared/fixtures/images"
    for path in paths:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
            assert_same(rgb, path.name)
            assert_same(np.asarray(ImageOps.grayscale(image)), f"{path.name} grey")
        assert_same(np.rot90(rgb), f"{path.name} rot90")
        assert_same(rgb[::-1], f"{path.name} flipped")  # a strided view


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("height", [1, 2, 3, 4, 5, 6])
def test_tiny_sizes_including_those_below_the_minimum(height: int) -> None:
    for width in range(1, 8):
        for kind, pixels in (("noise", noise(height, width, height * 10 + width)),
                             ("flat", np.full((height, width, 3), 200, np.uint8))):
            assert_same(pixels, f"{height}x{width} {kind}")
    hashes, quality = pdq.pdq_bytes(noise(4, 100, 0), 8)
    assert not hashes.any() and quality == 0  # below 5 pixels: zero, as the reference


def test_random_sizes() -> None:
    rng = np.random.default_rng(12)
    for case in range(40):
        height, width = (int(v) for v in rng.integers(5, 1300, 2))
        make = (smooth, noise)[case % 2]
        assert_same(make(height, width, case), f"{height}x{width} {make.__name__}")


@pytest.mark.parametrize("shape", [(3024, 4032), (4032, 3024), (7, 2900), (2900, 7),
                                   (127, 129), (128, 128), (256, 255), (1080, 1920)])
def test_window_edges_and_huge_images(shape: tuple[int, int]) -> None:
    assert_same(smooth(*shape, seed=shape[0]), f"{shape} smooth")


@pytest.mark.parametrize("value", [0, 1, 127, 254, 255])
def test_flat_images(value: int) -> None:
    for shape in ((5, 5), (64, 64), (480, 640), (1000, 333)):
        assert_same(np.full((*shape, 3), value, np.uint8), f"{shape} flat {value}")


@pytest.mark.parametrize("direction", ["x", "y", "xy"])
def test_gradients(direction: str) -> None:
    for shape in ((5, 9), (64, 64), (512, 512), (768, 1024), (1200, 1600)):
        assert_same(gradient(*shape, direction), f"{shape} gradient {direction}")


def test_noise_and_saturated_channels() -> None:
    for shape in ((512, 512), (768, 1024)):
        assert_same(noise(*shape, seed=3), f"{shape} noise")
        pixels = noise(*shape, seed=4)
        pixels[..., 1] = 255
        pixels[: shape[0] // 2, :, 2] = 0
        assert_same(pixels, f"{shape} saturated")


def test_a_fourth_channel_is_ignored() -> None:
    rgb = smooth(120, 90, 6)
    rgbx = np.concatenate([rgb, noise(120, 90, 7)[..., :1]], axis=2)
    assert ours(rgbx) == ours(rgb) == oracle(rgb)


def test_grey_pixels_hash_as_their_rgb_conversion() -> None:
    grey = smooth(300, 400, 5)[..., 0]
    rgb = np.asarray(Image.fromarray(grey, "L").convert("RGB"))
    assert ours(grey) == ours(rgb) == oracle(rgb)


# --------------------------------------------------------------------------- the kernel


def test_fewer_variants_are_a_prefix_of_the_eight() -> None:
    pixels = smooth(200, 300, 9)
    all8, quality = pdq.pdq_bytes(pixels, 8)
    one, quality1 = pdq.pdq_bytes(pixels, 1)
    assert one.shape == (1, 32) and (one[0] == all8[0]).all() and quality1 == quality


def test_the_kernel_is_compiled_without_fast_math_and_without_the_gil() -> None:
    for kernel in (pdq.pdq_kernel, pdq._downsample, pdq._dct, pdq._quality):
        options = kernel.targetoptions
        assert options.get("nogil") is True
        assert not options.get("fastmath"), "fast-math reassociates float sums: bits move"


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(TypeError):
        pdq.pdq_bytes(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        pdq.pdq_bytes(np.zeros((8, 8, 5), dtype=np.uint8))
    with pytest.raises(ValueError):
        pdq.pdq_bytes(np.zeros((8, 8, 3), dtype=np.uint8), 9)


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA", "CMYK"])
def test_decoded_images_in_every_mode_hash_as_their_rgb_conversion(mode: str) -> None:
    from crawler.perceptual import _pixels, pdq_hash_and_dihedral

    for shape in ((300, 400), (2000, 2400)):  # the second is over Pillow's 16 MB block
        image = Image.fromarray(smooth(*shape, seed=shape[0])).convert(mode)
        hexed, quality, variants = pdq_hash_and_dihedral(image)
        want, want_quality = oracle(np.asarray(image.convert("RGB")))
        assert variants == want and hexed == want[0] and quality == want_quality, mode
        assert _pixels(image).shape[:2] == shape
