"""The PDQ quality rule (README, "The quality rule"): hashes of quality < 50 are unreliable.

A low-quality image is still matched on its exact hashes and on PDQ; a PDQ match where the
image or the list entry is under 50 is withheld like any hit, its incident records both
qualities and ``reliable: false``, and unreliable hashes never seed neighbour expansion.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from conftest import write_config
from PIL import Image

from crawler.perceptual import pdq_hash
from crawler.screening import CrawlScreen, Fetched
from pipeline.registry.config import load_config
from pipeline.safety.hashlists import Screener, unreliable_entries
from pipeline.safety.incidents import Incident

FLAT = Image.new("RGB", (64, 48), (120, 120, 120))
RICH = Image.fromarray(np.random.default_rng(1).integers(0, 256, (96, 128, 3), dtype=np.uint8))


def _config(tmp_path: Path, lists: dict[str, tuple[str, str]]) -> Any:
    configs = tmp_path / "configs"
    (configs / "blocklists").mkdir(parents=True, exist_ok=True)
    specs = []
    for list_id, (kind, text) in lists.items():
        path = configs / "blocklists" / f"{list_id}.txt"
        path.write_text(text)
        path.chmod(0o600)
        specs.append({"id": list_id, "kind": kind, "path": f"blocklists/{list_id}.txt"})
    write_config(configs, [{"id": "src", "start_urls": ["https://src.example/"]}],
                 blocklists=specs)
    return load_config(configs)


def _fetched(url: str, image: Image.Image, body: bytes) -> Fetched:
    pdq, quality = pdq_hash(image)
    return Fetched(url=url, source_id="src", page_url=None,
                   sha256=hashlib.sha256(body).hexdigest(), md5=hashlib.md5(body).hexdigest(),
                   sha1=hashlib.sha1(body).hexdigest(), pdq=pdq, pdq_quality=quality)


def _incidents(data: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((data / "incidents").glob("*.json"))]


def test_flat_images_are_unreliable() -> None:
    assert pdq_hash(FLAT)[1] < 50 <= pdq_hash(RICH)[1]


def test_a_low_quality_image_is_still_matched_on_its_exact_hashes(tmp_path: Path) -> None:
    body = b"flat image bytes"
    config = _config(tmp_path, {"sha": ("sha256", hashlib.sha256(body).hexdigest() + "\n")})
    screen = CrawlScreen(Screener.load(config), config, tmp_path / "data", "r")
    assert screen.check_image(_fetched("https://src.example/flat.png", FLAT, body))
    (incident,) = _incidents(tmp_path / "data")
    assert incident["match"]["kind"] == "sha256" and incident["match"]["reliable"] is None
    assert incident["hashes"]["pdq_quality"] < 50


def test_a_low_quality_pdq_match_is_withheld_and_marked_for_review(tmp_path: Path) -> None:
    pdq, quality = pdq_hash(FLAT)
    config = _config(tmp_path, {"p": ("pdq", f"{pdq}\n")})
    screen = CrawlScreen(Screener.load(config), config, tmp_path / "data", "r")
    assert screen.check_image(_fetched("https://src.example/flat.png", FLAT, b"x"))
    (incident,) = _incidents(tmp_path / "data")
    assert incident["hashes"]["pdq_quality"] == quality < 50
    assert incident["match"]["reliable"] is False and incident["match"]["distance"] == 0
    assert screen.hit_pdqs == []  # an unreliable hash widens nothing
    # another flat image of the same site is not withheld as a neighbour of it
    assert not screen.check_image(_fetched("https://src.example/flat2.png",
                                           Image.new("RGB", (40, 40), (10, 10, 10)), b"y"))


def test_a_list_entry_of_low_quality_is_matched_and_its_quality_recorded(
        tmp_path: Path) -> None:
    pdq, quality = pdq_hash(RICH)
    assert quality >= 50
    config = _config(tmp_path, {"p": ("pdq", f"# export\n{pdq},20\n{'0' * 64} 90\n")})
    screener = Screener.load(config)
    assert any("1 PDQ entries have quality < 50" in w for w in screener.warnings())
    hit = screener.match_hashes(sha256="0" * 64, pdq=pdq)
    assert hit is not None and hit.entry_quality == 20 and hit.distance == 0
    screen = CrawlScreen(screener, config, tmp_path / "data", "r")
    assert screen.check_image(_fetched("https://src.example/rich.png", RICH, b"z"))
    (incident,) = _incidents(tmp_path / "data")
    assert incident["match"]["matched_quality"] == 20
    assert incident["match"]["reliable"] is False


def test_reliable_matches_say_so() -> None:
    incident = Incident("blocklist_match", "src", "crawl", list_kind="pdq", pdq_quality=100,
                        matched_quality=None)
    assert incident.document()["match"]["reliable"] is True
    assert Incident("blocklist_match", "src", "crawl", list_kind="md5").reliable() is None


def test_unreliable_entries_keep_the_lowest_quality_of_a_repeated_entry() -> None:
    a, b = "ab" * 32, "cd" * 32
    text = f"{a},40\n{a} 10 # again\n{b}\t49\n{'ef' * 32},50\n{'12' * 32}\n"
    assert unreliable_entries(text.encode()) == {bytes.fromhex(a): 10, bytes.fromhex(b): 49}
