"""Blocklist screening cost: images/s screened against 1M-entry lists vs decode + PDQ alone.

Everything runs in this process on generated data (deterministic): JPEGs of 512x512 and
1024x768, a 1,000,000-entry PDQ list and a 1,000,000-entry sha256 list of random entries
(written to a temp dir 0600 and loaded with ``Screener.load``, as a crawl would). It prints:

1. list load time and memory (tracemalloc: numpy reports its buffers) for 1M entries;
2. images/s of decode + ``pdq_hash`` (the baseline) and of decode + sha256 + md5 + ``pdq_hash``
   + ``Screener.match_hashes`` against both lists, and the ratio (target >= 0.8);
3. per-image match time vs list size (10k, 100k, 1M) for PDQ (multi-index and brute force) and
   exact sha256 (sorted rows + searchsorted, and a Python set of bytes);
4. ``--shortcuts``: the distance of each PDQ speed-up shortcut from the canonical hash;
5. ``--processes N``: decode + PDQ in N worker processes vs in this process.

    .venv/bin/python -m bench.screen [--images 24] [--rounds 3] [--shortcuts] [--processes 2]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import io
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pdqhash
from PIL import Image

from crawler.perceptual import _hex, pdq_hash
from pipeline.registry.config import Config, Settings
from pipeline.safety.hashlists import Screener, unique_rows
from pipeline.safety.matching import ExactIndex, PdqIndex, pdq_distance

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
SIZES = [(512, 512), (1024, 768)]


def make_jpeg(seed: int, size: tuple[int, int]) -> bytes:
    """A photo-like JPEG: a few smooth colour waves plus sensor-like noise, quality 90."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    pixels = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        for _ in range(5):
            fx, fy, phase = rng.uniform(0.5, 9), rng.uniform(0.5, 9), rng.uniform(0, 6.3)
            pixels[..., c] += np.sin((x / w * fx + y / h * fy) * 6.283 + phase)
    pixels += rng.normal(0, 0.4, pixels.shape).astype(np.float32)
    pixels = (pixels - pixels.min()) / (pixels.max() - pixels.min()) * 255
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def random_rows(n: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, width), dtype=np.uint8)


def write_list(path: Path, rows: np.ndarray, header: str) -> None:
    hexes = rows.tobytes().hex()
    width = rows.shape[1] * 2
    lines = [hexes[i:i + width] for i in range(0, len(hexes), width)]
    path.write_text(header + "\n".join(lines) + "\n", encoding="ascii")
    path.chmod(0o600)


def config_for(root: Path, lists: list[dict[str, Any]]) -> Config:
    settings = Settings.model_validate({
        "user_agent": "ClearanceBot/0.1", "robots_token": "ClearanceBot",
        "intended_use": "ai-training",
        "age_verification": {"accepted_methods": ["government-id"], "max_age_days": 730},
        "blocklists": lists,
    })
    return Config(root=root, settings=settings, sources={})


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.convert("RGB") if image.mode != "RGB" else image.copy()


def baseline(data: bytes) -> None:
    pdq_hash(decode(data))


def screened(data: bytes, screener: Screener) -> bool:
    sha256 = hashlib.sha256(data).hexdigest()
    md5 = hashlib.md5(data).hexdigest()
    digest, _quality = pdq_hash(decode(data))
    return screener.match_hashes(sha256=sha256, md5=md5, pdq=digest) is not None


def section_throughput(images: list[bytes], screener: Screener, rounds: int) -> None:
    base, full = [], []
    for data in images[:2]:  # warm up
        screened(data, screener)
    for _ in range(rounds):
        t_base = t_full = 0.0
        for data in images:  # alternating per image, so load from other processes hits both
            t_base += timed(partial(baseline, data))
            t_full += timed(partial(screened, data, screener))
        base.append(t_base)
        full.append(t_full)
    b, f = statistics.median(base), statistics.median(full)
    per_size = len(images) // len(SIZES)
    print(f"\n## 2. throughput ({len(images)} JPEGs: {per_size} x 512x512, {per_size} x 1024x768;"
          f" each image alternately, median of {rounds} rounds)")
    print(f"decode + pdq_hash (baseline)               {len(images) / b:8.1f} images/s")
    print(f"decode + sha256/md5 + pdq_hash + screening  {len(images) / f:8.1f} images/s"
          f"   (1M PDQ + 1M sha256 entries)")
    print(f"ratio screened/baseline: {b / f:.3f}  (target >= 0.8)")
    hits = sum(screened(data, screener) for data in images)
    print(f"hits: {hits} (random lists: expected 0)")


def section_match_time(queries: int) -> None:
    print("\n## 3. per-image match time vs list size (microseconds, mean over "
          f"{queries} queries; misses, the common case)")
    print(f"{'entries':>10} {'pdq MIH':>10} {'pdq brute':>10} {'sha256 sorted':>14} "
          f"{'sha256 set':>11}")
    rng = np.random.default_rng(7)
    pdq_queries = [rng.bytes(32).hex() for _ in range(queries)]
    exact_queries = [rng.bytes(32) for _ in range(queries)]
    for n in (10_000, 100_000, 1_000_000):
        print(_match_row(n, pdq_queries, exact_queries))


def _match_row(n: int, pdq_queries: list[str], exact_queries: list[bytes]) -> str:
    rows = unique_rows(random_rows(n, 32, n))
    mih = PdqIndex(rows, 31, brute=False)
    brute = PdqIndex(rows, 31, brute=True)
    exact = ExactIndex(rows)
    as_set = {bytes(r) for r in rows}
    t_mih = timed(lambda: [mih.nearest(q) for q in pdq_queries]) / len(pdq_queries)
    t_brute = timed(lambda: [brute.nearest(q) for q in pdq_queries[:20]]) / 20
    t_sorted = timed(lambda: [exact.contains(q) for q in exact_queries]) / len(exact_queries)
    t_set = timed(lambda: [q in as_set for q in exact_queries]) / len(exact_queries)
    return (f"{n:>10,} {t_mih * 1e6:>10.1f} {t_brute * 1e6:>10.1f} {t_sorted * 1e6:>14.1f} "
            f"{t_set * 1e6:>11.2f}")


def section_load(tmp: Path) -> Screener:
    n = 1_000_000
    lists = tmp / "blocklists"
    lists.mkdir()
    write_list(lists / "pdq.txt", random_rows(n, 32, 1), "# bench PDQ list\n")
    write_list(lists / "sha256.txt", random_rows(n, 32, 2), "")
    print("## 1. list load (parse + index) and memory, 1,000,000 entries each")
    for list_id, kind in (("pdq", "pdq"), ("sha256", "sha256")):
        spec = {"id": list_id, "kind": kind, "path": f"blocklists/{list_id}.txt"}
        config = config_for(tmp, [spec])
        gc.collect()
        start = time.perf_counter()
        Screener.load(config)
        elapsed = time.perf_counter() - start
        gc.collect()
        tracemalloc.start()  # a second load, traced: tracing slows allocation-heavy parsing
        one = Screener.load(config)
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        note = "bare hashes" if kind == "sha256" else "a comment line, then bare hashes"
        print(f"{kind:>7}: load {elapsed:5.2f} s ({note}); held {current / 1e6:6.1f} MB, "
              f"peak {peak / 1e6:6.1f} MB")
        del one
    rows = random_rows(n, 32, 2)
    gc.collect()
    tracemalloc.start()
    as_set = {bytes(r) for r in rows}
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"for comparison, a Python set of 1M 32-byte bytes holds {current / 1e6:.1f} MB")
    del as_set
    config = config_for(tmp, [
        {"id": "pdq", "kind": "pdq", "path": "blocklists/pdq.txt"},
        {"id": "sha256", "kind": "sha256", "path": "blocklists/sha256.txt"},
    ])
    return Screener.load(config)


def section_shortcuts(images: list[bytes]) -> None:
    """Distances of PDQ shortcuts from the canonical hash; kept only when 0 (none is)."""
    samples = [("made", data) for data in images]
    if FIXTURES.is_dir():
        samples += [(p.name, p.read_bytes()) for p in sorted(FIXTURES.glob("images/c2pa/*.jpg"))]

    def canonical(data: bytes) -> str:
        return pdq_hash(decode(data))[0]

    def luma(data: bytes) -> str:  # Pillow's integer luma fed as three equal channels
        grey = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
        return _hex(pdqhash.compute(np.repeat(grey[:, :, None], 3, axis=2))[0])

    def reduce2(data: bytes) -> str:  # halve images of 1024 px or more first
        image = decode(data)
        image = image.reduce(2) if min(image.size) >= 1024 else image
        return _hex(pdqhash.compute(np.asarray(image))[0])

    def draft(data: bytes) -> str:  # JPEG DCT-domain scaling to 1/4
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", (image.width // 4, image.height // 4))
        return _hex(pdqhash.compute(np.asarray(image.convert("RGB")))[0])

    def per_image(fn: Callable[[bytes], str]) -> float:
        return timed(lambda: [fn(d) for _, d in samples]) / len(samples)

    print("\n## 4. PDQ shortcuts vs the canonical hash (bits; ms per image incl. decode)")
    print(f"canonical: {per_image(canonical) * 1e3:.1f} ms")
    for name, fn in (("luma", luma), ("reduce2", reduce2), ("draft/4", draft)):
        distances = [pdq_distance(canonical(d), fn(d)) for _, d in samples]
        t = per_image(fn)
        print(f"{name:>8}: {t * 1e3:5.1f} ms; distance max {max(distances)}, "
              f"median {statistics.median(distances)}, nonzero {sum(1 for d in distances if d)}"
              f"/{len(distances)}")


def _hash_bytes(data: bytes) -> tuple[str, int]:
    return pdq_hash(decode(data))


def section_processes(images: list[bytes], workers: int, rounds: int) -> None:
    """pdqhash holds the GIL: threads do not scale, processes do (DESIGN.md)."""
    from concurrent.futures import ProcessPoolExecutor

    one, many = [], []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_hash_bytes, images[:workers]))  # start the workers
        for _ in range(rounds):
            one.append(timed(lambda: [_hash_bytes(d) for d in images]))
            many.append(timed(lambda: list(pool.map(_hash_bytes, images, chunksize=2))))
    a, b = statistics.median(one), statistics.median(many)
    print(f"\n## 5. decode + pdq_hash in {workers} worker processes vs this process")
    print(f"in process {len(images) / a:6.1f} images/s; {workers} processes "
          f"{len(images) / b:6.1f} images/s; ratio {a / b:.2f} (machine has shared cores)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=24, help="images (half of each size)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--shortcuts", action="store_true", help="also measure PDQ shortcuts")
    parser.add_argument("--processes", type=int, default=0,
                        help="also measure decode + PDQ in N worker processes")
    args = parser.parse_args()
    images = [make_jpeg(i, SIZES[i % len(SIZES)]) for i in range(args.images)]
    with tempfile.TemporaryDirectory() as tmp:
        screener = section_load(Path(tmp))
        section_throughput(images, screener, args.rounds)
    section_match_time(args.queries)
    if args.shortcuts:
        section_shortcuts(images)
    if args.processes:
        section_processes(images, args.processes, args.rounds)


if __name__ == "__main__":
    main()
