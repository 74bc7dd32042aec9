"""Screening inside the crawl: Clearance against bare Scrapy on a site of realistic images.

    .venv/bin/python -m bench.screen_crawl [--pages 200] [--runs 3] [--list-size 100000]

The site is :mod:`bench.site` with its images replaced by photo-like PNGs (blurred discs),
alternately 512x512 (~75 KB: decoded + PDQ-hashed inline) and 1024x768 with light noise
(~630 KB). Each run, in child processes: bare tuned Scrapy downloading links and images, then
``clearance crawl`` with a sha256 list and a PDQ list of ``--list-size`` random entries each
(no image matches; every one is hashed and screened), with the decode pool (default: bodies of
32 KiB or more go to a worker process while it has room) and with
``CLEARANCE_DECODE_WORKERS=0`` (the crawl process decodes everything, large bodies in a
thread). Prints pages and images per second and the ratios against bare Scrapy in the same run.
Offline.
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw, ImageFilter

from bench.crawl import (
    BenchError,
    Measurement,
    _run_child,
    clearance_command,
    measure_bare,
    median_of,
    start_server,
    table,
    write_bench_configs,
)
from bench.site import generate_bench_site


def photo_like(seed: int, size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(40):
        x, y = int(rng.integers(0, size[0])), int(rng.integers(0, size[1]))
        r = int(rng.integers(10, size[0] // 5))
        draw.ellipse((x - r, y - r, x + r, y + r),
                     fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    blurred = np.asarray(img.filter(ImageFilter.GaussianBlur(2)), dtype=np.uint8)
    if size[0] < 1024:
        return Image.fromarray(blurred, "RGB")  # ~75 KB
    noise = rng.integers(0, 2, (size[1], size[0], 3), dtype=np.uint8)  # ~630 KB
    return Image.fromarray(blurred + noise, "RGB")


def realistic_images(root: Path) -> tuple[int, int]:
    files = sorted((root / "img").glob("*.png"))
    total = 0
    for n, path in enumerate(files):
        size = (512, 512) if n % 2 == 0 else (1024, 768)
        photo_like(n, size).save(path, "PNG")
        total += path.stat().st_size
    return len(files), total


def write_lists(config: Path, size: int) -> None:
    folder = config / "blocklists"
    folder.mkdir(exist_ok=True)
    for name in ("sha256", "pdq"):
        path = folder / f"{name}.txt"
        with open(path, "w") as fh:
            for _ in range(size):
                fh.write(secrets.token_hex(32) + "\n")
        path.chmod(0o600)
    settings = config / "clearance.yaml"
    doc = yaml.safe_load(settings.read_text())
    doc["blocklists"] = [
        {"id": "bench-sha256", "kind": "sha256", "path": "blocklists/sha256.txt"},
        {"id": "bench-pdq", "kind": "pdq", "path": "blocklists/pdq.txt", "threshold": 31},
    ]
    settings.write_text(yaml.safe_dump(doc, sort_keys=False))


def measure(server, start_url: str, config: Path, data: Path, name: str, workers: int,
            concurrency: int, timeout: float) -> Measurement:  # type: ignore[no-untyped-def]
    cmd = clearance_command() + ["--config", str(config), "--data", str(data)]
    cmd += ["crawl", "--json", "--no-progress", "--concurrency", str(concurrency)]
    previous = os.environ.get("CLEARANCE_DECODE_WORKERS")
    os.environ["CLEARANCE_DECODE_WORKERS"] = str(workers)
    try:
        proc, wall, hits = _run_child(name, cmd, server, timeout)
    finally:
        if previous is None:
            os.environ.pop("CLEARANCE_DECODE_WORKERS", None)
        else:
            os.environ["CLEARANCE_DECODE_WORKERS"] = previous
    if proc.returncode != 0:
        raise BenchError(f"{name}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return Measurement(name, wall, hits)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--list-size", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--server", choices=["auto", "nginx", "python"], default="auto")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--pool-workers", default="1",
                        help="comma-separated decode-pool sizes to measure (default 1)")
    args = parser.parse_args(argv)
    pools = [int(n) for n in args.pool_workers.split(",") if n.strip()]
    with tempfile.TemporaryDirectory(prefix="clearance-screen-crawl-") as tmp:
        work = Path(tmp)
        site = generate_bench_site(work / "site", args.pages)
        started = time.monotonic()
        count, size = realistic_images(work / "site")
        print(f"site: {site.pages} pages, {count} images ({size / 1e6:.1f} MB, made in "
              f"{time.monotonic() - started:.1f}s); lists: 2 x {args.list_size:,} entries",
              flush=True)
        server = start_server(work / "site", work, args.server)
        try:
            start_url = server.base_url + "/index.html"
            config = write_bench_configs(work / "configs", start_url, server.base_url, True)
            write_lists(config, args.list_size)
            rows: dict[str, list[Measurement]] = {}
            for k in range(args.runs):
                variants = [("bare scrapy, links + images", -1)]
                variants += [(f"clearance, screening, decode pool x{n}", n) for n in pools]
                variants += [("clearance, screening, threads only", 0)]
                for name, workers in variants:
                    if workers < 0:
                        result = measure_bare(server, start_url, True, args.concurrency, work,
                                              args.timeout)
                    else:
                        result = measure(server, start_url, config,
                                         work / f"data-{workers}-{k}", name, workers,
                                         args.concurrency, args.timeout)
                    rows.setdefault(name, []).append(result)
                    print(f"  {name} run {k + 1}/{args.runs}: {result.hits.pages} pages, "
                          f"{result.hits.images} images in {result.wall_s:.2f}s", flush=True)
            medians = {name: median_of(runs) for name, runs in rows.items()}
            print()
            print(table(list(medians.values())))
            bare = medians["bare scrapy, links + images"]
            for name, m in medians.items():
                if name != bare.name and bare.images_per_s:
                    print(f"{name} / bare scrapy: {m.images_per_s / bare.images_per_s:.2f} "
                          "(images/s, wall)")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
