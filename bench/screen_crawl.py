"""Screening inside the crawl: Clearance against bare Scrapy on a site of realistic images.

    .venv/bin/python -m bench.screen_crawl [--pages 200] [--runs 3] [--list-size 100000]
        [--modes threads:2,processes:1,none:0]

The site is :mod:`bench.site` with its images replaced by photo-like PNGs and JPEGs (blurred
discs; from 1024 px wide with light noise) at 512x512, 1024x768 and 1600x1200, in turn. Each
run, in child processes: bare tuned Scrapy downloading links and images, then ``clearance
crawl`` with a sha256 list and a PDQ list of ``--list-size`` random entries each (no image
matches; every one is hashed and screened), once per decode mode: ``threads:N`` (the default:
every image decoded + PDQ-hashed in N threads beside the reactor), ``processes:N`` (bodies of
32 KiB or more in N worker processes while they have room) and ``none:0`` (small images inline
on the reactor, large ones in one thread). Prints pages and images per second, the ratios
against bare Scrapy in the same run, and the load average.
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


KINDS = [(fmt, size) for size in ((512, 512), (1024, 768), (1600, 1200))
         for fmt in ("PNG", "JPEG")]


def realistic_images(root: Path) -> tuple[int, int]:
    """Replace the site's images by photo-like PNGs and JPEGs (quality 90), cycling through
    :data:`KINDS`; a JPEG is served as ``.jpg`` (the pages are rewritten to point at it).

    Three pictures are drawn per kind and each file gets its own small patch of colour, so
    every body (and nearly every PDQ) differs without drawing and blurring each one anew.
    """
    files = sorted((root / "img").glob("*.png"))
    bases = {kind: [np.asarray(photo_like(n * len(KINDS) + i, kind[1])) for n in range(3)]
             for i, kind in enumerate(KINDS)}
    total = 0
    renamed: dict[str, str] = {}
    for n, path in enumerate(files):
        kind = KINDS[n % len(KINDS)]
        pixels = bases[kind][(n // len(KINDS)) % 3].copy()
        rng = np.random.default_rng(n)
        y = int(rng.integers(0, pixels.shape[0] - 40))
        x = int(rng.integers(0, pixels.shape[1] - 40))
        pixels[y:y + 40, x:x + 40] = rng.integers(0, 256, 3, dtype=np.uint8)
        image = Image.fromarray(pixels, "RGB")
        if kind[0] == "JPEG":
            path.unlink()
            renamed[f"/img/{path.name}"] = f"/img/{path.stem}.jpg"
            path = path.with_suffix(".jpg")
            image.save(path, "JPEG", quality=90)
        else:
            image.save(path, "PNG", compress_level=1)
        total += path.stat().st_size
    pages = [root / "index.html", *(root / "p").rglob("*.html")]
    for page in pages:
        if not page.is_file():
            continue
        text = page.read_text()
        for old, new in renamed.items():
            text = text.replace(f'"{old}"', f'"{new}"')
        page.write_text(text)
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


def measure(server, start_url: str, config: Path, data: Path, name: str, mode: str,
            workers: int, concurrency: int, timeout: float
            ) -> Measurement:  # type: ignore[no-untyped-def]
    cmd = clearance_command() + ["--config", str(config), "--data", str(data)]
    cmd += ["crawl", "--json", "--no-progress", "--concurrency", str(concurrency)]
    wanted = {"CLEARANCE_DECODE_WORKERS": str(workers),
              "CLEARANCE_DECODE": "processes" if mode == "processes" else "threads"}
    previous = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    try:
        proc, wall, hits = _run_child(name, cmd, server, timeout)
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
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
    parser.add_argument("--modes", default="threads:2,processes:1,none:0",
                        help="comma-separated decode modes MODE:WORKERS to measure")
    args = parser.parse_args(argv)
    modes = [(m.split(":")[0], int(m.split(":")[1])) for m in args.modes.split(",") if m]
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
                variants = [("bare scrapy, links + images", "bare", -1)]
                variants += [(f"clearance, screening, decode {mode} x{n}", mode, n)
                             for mode, n in modes]
                for name, mode, workers in variants:
                    if workers < 0:
                        result = measure_bare(server, start_url, True, args.concurrency, work,
                                              args.timeout)
                    else:
                        result = measure(server, start_url, config,
                                         work / f"data-{mode}-{workers}-{k}", name, mode,
                                         workers, args.concurrency, args.timeout)
                    rows.setdefault(name, []).append(result)
                    print(f"  {name} run {k + 1}/{args.runs}: {result.hits.pages} pages, "
                          f"{result.hits.images} images in {result.wall_s:.2f}s "
                          f"(load {os.getloadavg()[0]:.2f})", flush=True)
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
