"""crawler.perceptual: canonical PDQ of decoded images, and its robustness to benign edits.

The robustness distances (crop 1% per side, resize to 60%, JPEG quality 70) are printed with
``-s`` and recorded in the README ("Hash lists").
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pdqhash
import pytest
from conftest import write_config
from PIL import Image, ImageDraw

from crawler.perceptual import pdq_dihedral, pdq_hash, pdq_hash_and_dihedral
from pipeline.registry.config import load_config
from pipeline.safety.hashlists import Screener
from pipeline.safety.matching import DEFAULT_PDQ_THRESHOLD, pdq_distance

FIXTURE_JPEG = "images/c2pa/adobe-20220124-A.jpg"  # 1024x683 photo, PDQ quality 100


def made(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A deterministic picture of overlapping shapes (PDQ quality 100 for most seeds)."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    w, h = size
    for _ in range(25):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(20, w // 2)), y0 + int(rng.integers(20, h // 2))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=fill)
    return image


def altered(image: Image.Image) -> Image.Image:
    """Lightly cropped (1% per side), resized to 60% (Lanczos), re-encoded as JPEG quality 70."""
    w, h = image.size
    dx, dy = int(w * 0.01), int(h * 0.01)
    copy = image.crop((dx, dy, w - dx, h - dy))
    copy = copy.resize((int(copy.width * 0.6), int(copy.height * 0.6)), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    copy.save(buffer, "JPEG", quality=70)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        decoded.load()
        return decoded.copy()


def te_hex(bits: np.ndarray) -> str:
    """ThreatExchange's own vector-to-hex: the bits in order as one binary number."""
    return f"{int(''.join(str(int(b)) for b in bits), 2):064x}"


# --------------------------------------------------------------------------- canonical form


def test_pdq_hash_is_the_reference_hash_in_threatexchange_hex() -> None:
    image = made(0)
    digest, quality = pdq_hash(image)
    bits, want_quality = pdqhash.compute(np.asarray(image))
    assert digest == te_hex(bits)
    assert len(digest) == 64 and digest == digest.lower()
    assert quality == want_quality and 0 <= quality <= 100
    assert pdq_hash(image) == (digest, quality)  # deterministic


def test_pdq_hash_of_the_fixture_jpeg(shared_fixtures: Path) -> None:
    with Image.open(shared_fixtures / FIXTURE_JPEG) as image:
        image.load()
        digest, quality = pdq_hash(image)
        bits, _ = pdqhash.compute(np.asarray(image.convert("RGB")))
    assert digest == te_hex(bits) and quality == 100


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_other_modes_hash_as_their_rgb_conversion(mode: str) -> None:
    image = made(1).convert(mode)
    assert pdq_hash(image) == pdq_hash(image.convert("RGB"))


def test_flat_image_has_low_quality() -> None:
    _digest, quality = pdq_hash(Image.new("RGB", (256, 256), (120, 120, 120)))
    assert quality < 50  # the reference's advice: such hashes are unreliable


def test_dihedral_variants() -> None:
    image = made(2, (512, 512))
    variants = pdq_dihedral(image)
    assert len(variants) == 8 and len(set(variants)) == 8
    assert variants[0] == pdq_hash(image)[0]
    assert pdq_hash_and_dihedral(image) == (*pdq_hash(image), variants)
    # The reference derives the variants from the DCT, not the pixels, and its box filter is
    # not symmetric: only the transpose comes out exact; the rest land 10-28 bits away.
    nearest = []
    for transposed in Image.Transpose:
        moved = pdq_hash(image.transpose(transposed))[0]
        assert pdq_distance(moved, variants[0]) > DEFAULT_PDQ_THRESHOLD
        nearest.append(min(pdq_distance(moved, v) for v in variants[1:]))
    print(f"rotated/mirrored copies vs the nearest dihedral variant: {nearest}")
    assert max(nearest) <= DEFAULT_PDQ_THRESHOLD
    assert pdq_distance(pdq_hash(image.transpose(Image.Transpose.TRANSPOSE))[0],
                        variants[6]) == 0


# --------------------------------------------------------------------------- robustness


def _robustness(original: Image.Image) -> int:
    return pdq_distance(pdq_hash(original)[0], pdq_hash(altered(original))[0])


def test_altered_copies_of_made_images_stay_within_threshold() -> None:
    distances = [_robustness(made(seed)) for seed in range(8)]
    print(f"made images, crop 1% + resize 60% + JPEG q70: distances {distances}")
    assert max(distances) <= DEFAULT_PDQ_THRESHOLD
    assert min(distances) > 0  # the edit is real


def test_altered_copy_of_a_fixture_photo_stays_within_threshold(shared_fixtures: Path) -> None:
    with Image.open(shared_fixtures / FIXTURE_JPEG) as image:
        distance = _robustness(image.convert("RGB"))
    print(f"{FIXTURE_JPEG}, crop 1% + resize 60% + JPEG q70: distance {distance}")
    assert 0 < distance <= DEFAULT_PDQ_THRESHOLD


def test_unrelated_images_are_far_apart(shared_fixtures: Path) -> None:
    with Image.open(shared_fixtures / FIXTURE_JPEG) as image:
        photo = pdq_hash(image)[0]
    made_hashes = [pdq_hash(made(seed))[0] for seed in range(8)]
    distances = [pdq_distance(a, b) for i, a in enumerate(made_hashes) for b in made_hashes[i + 1:]]
    distances += [pdq_distance(photo, h) for h in made_hashes]
    print(f"unrelated pairs: min distance {min(distances)}")
    assert min(distances) > 2 * DEFAULT_PDQ_THRESHOLD


def test_screener_matches_the_altered_copy_and_not_an_unrelated_image(
    tmp_path: Path, shared_fixtures: Path
) -> None:
    with Image.open(shared_fixtures / FIXTURE_JPEG) as image:
        photo = image.convert("RGB")
    listed = [pdq_hash(photo), pdq_hash(made(3))]
    configs = tmp_path / "configs"
    (configs / "blocklists").mkdir(parents=True)
    path = configs / "blocklists" / "pdq.txt"
    path.write_text("".join(f"{h},{q}\n" for h, q in listed))
    path.chmod(0o600)
    write_config(configs, [{"id": "src", "start_urls": ["https://src.example/"]}],
                 blocklists=[{"id": "pdq", "kind": "pdq", "path": "blocklists/pdq.txt"}])
    screener = Screener.load(load_config(configs))
    unrelated_sha = hashlib.sha256(b"bytes of the copy").hexdigest()
    for original in (photo, made(3)):
        copy = pdq_hash(altered(original))[0]
        hit = screener.match_hashes(sha256=unrelated_sha, pdq=copy)
        assert hit is not None and hit.matched == pdq_hash(original)[0]
        assert hit.distance is not None and 0 < hit.distance <= DEFAULT_PDQ_THRESHOLD
    assert screener.match_hashes(sha256=unrelated_sha, pdq=pdq_hash(made(4))[0]) is None
