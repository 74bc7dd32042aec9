"""Our PDQ (crawler.pdq) against ``pdqhash`` (the reference C++), per image size, in one run.

For each size it hashes the same photo-like decoded images (RGB arrays; decoding is not timed)
with both and prints: ms per image (median), images/s on 1 and on 2 threads (the 2-thread
figure shows whether the GIL is released), and the bits of difference over all 8 dihedral
variants (must be 0). It also measures what the first image of a process costs: importing and
loading the compiled kernel from numba's on-disk cache, and compiling it from nothing (a fresh
``NUMBA_CACHE_DIR``), each in a fresh interpreter.

    .venv/bin/python -m bench.pdq [--images 6] [--seconds 1.5] [--no-cold]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pdqhash

from crawler import pdq

SIZES = [(64, 64), (512, 512), (1024, 768), (1600, 1200), (1920, 1080), (4032, 3024)]
REPO = Path(__file__).resolve().parents[1]


def photo(seed: int, size: tuple[int, int]) -> np.ndarray:
    """Photo-like RGB pixels: a few smooth colour waves plus sensor-like noise."""
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
    return pixels.astype(np.uint8)


def ours(pixels: np.ndarray) -> list[str]:
    return [row.tobytes().hex() for row in pdq.pdq_bytes(pixels, 8)[0]]


def reference(pixels: np.ndarray) -> list[str]:
    variants, _quality = pdqhash.compute_dihedral(pixels)
    return [np.packbits(bits.astype(np.uint8)).tobytes().hex() for bits in variants]


def per_image_ms(fn: Callable[[np.ndarray], object], images: list[np.ndarray]) -> float:
    times = []
    for _ in range(3):
        for pixels in images:
            start = time.perf_counter()
            fn(pixels)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def images_per_second(fn: Callable[[np.ndarray], object], images: list[np.ndarray],
                      threads: int, seconds: float) -> float:
    """Each of ``threads`` threads hashes the images round and round for ``seconds``."""
    deadline = time.perf_counter() + seconds

    def worker(offset: int) -> int:
        done = 0
        while time.perf_counter() < deadline:
            fn(images[(offset + done) % len(images)])
            done += 1
        return done

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(worker, range(threads)))
    return total / (time.perf_counter() - start)


def first_image_cost(cache_dir: str | None) -> float:
    """Seconds from a fresh interpreter's ``import crawler.pdq`` to its first hash."""
    code = ("import time; t = time.perf_counter(); from crawler import pdq; "
            "import numpy as np; pdq.pdq_bytes(np.zeros((600, 800, 3), np.uint8), 8); "
            "print(time.perf_counter() - t)")
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True,
                         capture_output=True, text=True, timeout=600)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6, help="images per size")
    parser.add_argument("--seconds", type=float, default=1.5, help="per images/s figure")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-compile figure")
    args = parser.parse_args()

    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min), "
          f"{os.cpu_count()} cores")
    print(f"first image, kernel from the on-disk cache: {first_image_cost(None):.2f} s")
    if not args.no_cold:
        with tempfile.TemporaryDirectory() as empty:
            print(f"first image, compiling from nothing: {first_image_cost(empty):.2f} s")
    pdq.warm_up()

    print(f"\n{'size':>10} | {'ours ms':>8} {'ref ms':>8} {'x':>5} | "
          f"{'ours/s 1t':>9} {'2t':>7} | {'ref/s 1t':>8} {'2t':>7} | bits differ")
    total_diff = 0
    for w, h in SIZES:
        images = [photo(seed, (w, h)) for seed in range(args.images)]
        diff = sum(bin(int(a, 16) ^ int(b, 16)).count("1")
                   for pixels in images
                   for a, b in zip(ours(pixels), reference(pixels), strict=True))
        total_diff += diff
        ms_ours, ms_ref = per_image_ms(ours, images), per_image_ms(reference, images)
        rates = [images_per_second(fn, images, t, args.seconds)
                 for fn in (ours, reference) for t in (1, 2)]
        print(f"{w:>5}x{h:<4} | {ms_ours:8.2f} {ms_ref:8.2f} {ms_ref / ms_ours:5.1f} | "
              f"{rates[0]:9.0f} {rates[1]:7.0f} | {rates[2]:8.0f} {rates[3]:7.0f} | {diff}")
    print(f"\nbits of difference over {len(SIZES) * args.images} images x 8 variants: "
          f"{total_diff} (must be 0)")
    print(f"load after: {os.getloadavg()[0]:.2f}")
    if total_diff:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
