"""crawler.images.DecodeThreads: hashes, decode and PDQ off the reactor, and how the crawl picks
its decode mode (crawler.runner._decode_pool)."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
from PIL import Image

from crawler.images import (
    DecodePool,
    DecodeThreads,
    content_hashes,
    hash_and_inspect,
    inspect_image,
)
from crawler.runner import _decode_pool
from pipeline.runs import reasons


def _png(size: tuple[int, int] = (300, 200)) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def test_hash_and_inspect_gives_the_hashes_and_the_facts_of_the_inline_path() -> None:
    body = _png()
    hashes, facts, rejected = hash_and_inspect(body, 10_000_000, True)
    assert rejected is None and hashes == content_hashes(body)
    assert facts == inspect_image(body, 10_000_000, pdq=True, dihedral=True)
    assert facts.pdq and len(facts.pdq_variants) == 8


@pytest.mark.parametrize("body,reason", [(b"not an image", reasons.NOT_AN_IMAGE),
                                         (_png()[:300], reasons.NOT_AN_IMAGE),
                                         (_png((4000, 3000)), reasons.TOO_LARGE)])
def test_a_body_that_does_not_decode_keeps_its_hashes(body: bytes, reason: str) -> None:
    hashes, facts, rejected = hash_and_inspect(body, 1_000_000, False)
    assert facts is None and rejected is not None and rejected.reason == reason
    assert hashes == content_hashes(body)  # still screened on its exact hashes


def test_decode_threads_screen_in_an_event_loop() -> None:
    pool = DecodeThreads(2)
    bodies = [_png((64 + i, 48)) for i in range(6)]

    async def run() -> list:
        return await asyncio.gather(*(pool.screen(b, 10_000_000) for b in bodies))

    try:
        results = asyncio.run(run())
    finally:
        pool.close()
    assert [r[1].width for r in results] == [64 + i for i in range(6)]
    assert pool.pending == 0 and pool.has_room(1 << 30)


def test_the_decode_mode_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLEARANCE_DECODE_WORKERS", "2")
    monkeypatch.delenv("CLEARANCE_DECODE", raising=False)
    pool = _decode_pool()
    assert isinstance(pool, DecodeThreads) and pool.workers == 2
    pool.close()
    monkeypatch.setenv("CLEARANCE_DECODE", "processes")
    assert isinstance(_decode_pool(), DecodePool)
    monkeypatch.setenv("CLEARANCE_DECODE_WORKERS", "0")
    assert _decode_pool() is None
    monkeypatch.setenv("CLEARANCE_DECODE", "gpu")
    with pytest.raises(ValueError, match="threads or processes"):
        _decode_pool()
