"""A synthetic, finite site for crawl benchmarks: N HTML pages, small PNGs, a robots.txt.

Pages form a 10-ary tree in heap order (page ``i``'s children are ``10i+1 .. 10i+10``); each
page links to its children, its parent and, on leaves, its siblings, so every page carries about
ten in-site links and is reachable from ``/``. Whatever order a crawler visits them in, no page
is first found deeper than about 10 links per tree level (~40 for 2,000 pages), well inside
``max_depth: 100``. Page ``i`` shows ``i % 3`` images (0-2, one on average), each unique, and a
``rel=license`` CC BY 4.0 link, so a licence-checking crawler keeps them.

``python -m bench.site DIR [--pages N]`` writes one.
"""

from __future__ import annotations

import argparse
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

CC_BY = "https://creativecommons.org/licenses/by/4.0/"
FANOUT = 10
ROBOTS_TXT = "User-agent: *\nDisallow: /nothing-here/\n"


@dataclass(frozen=True)
class BenchSite:
    root: Path
    pages: int
    images: int
    links: int


def page_path(i: int) -> str:
    return "/index.html" if i == 0 else f"/p/{i}.html"


def _links(i: int, pages: int) -> list[int]:
    children = [c for c in range(FANOUT * i + 1, FANOUT * i + FANOUT + 1) if c < pages]
    if i == 0:
        return children
    parent = (i - 1) // FANOUT
    siblings = [
        s for s in range(FANOUT * parent + 1, FANOUT * parent + FANOUT + 1) if s < pages and s != i
    ]
    return children + [parent] + (siblings if not children else [])


def _png(i: int, k: int) -> bytes:
    image = Image.new("RGB", (64, 64), (i % 256, (i // 256) % 256, 60 + 90 * k))
    draw = ImageDraw.Draw(image)
    draw.line((0, i % 64, 63, (i * 7 + k) % 64), fill=(255 - i % 256, 200, 40 * k), width=3)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _html(i: int, pages: int, images: list[str]) -> str:
    links = "".join(f'<li><a href="{page_path(j)}">Page {j}</a></li>' for j in _links(i, pages))
    figures = "".join(f'<img src="{src}" alt="Image {src}">' for src in images)
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>Page {i}</title></head>'
        f"<body><h1>Page {i}</h1><p>{'Lorem ipsum dolor sit amet. ' * 20}</p>{figures}"
        f'<ul>{links}</ul><footer><a rel="license" href="{CC_BY}">CC BY 4.0</a></footer>'
        "</body></html>\n"
    )


def generate_bench_site(root: str | Path, pages: int = 2000) -> BenchSite:
    """Write the site under ``root`` (deterministic); return what it holds."""
    if pages < 1:
        raise ValueError("pages must be >= 1")
    root = Path(root)
    (root / "p").mkdir(parents=True, exist_ok=True)
    (root / "img").mkdir(exist_ok=True)
    (root / "robots.txt").write_text(ROBOTS_TXT, encoding="utf-8")
    n_images = n_links = 0
    for i in range(pages):
        images = []
        for k in range(i % 3):
            src = f"/img/{i}-{k}.png"
            (root / src.lstrip("/")).write_bytes(_png(i, k))
            images.append(src)
        n_images += len(images)
        n_links += len(_links(i, pages))
        (root / page_path(i).lstrip("/")).write_text(_html(i, pages, images), encoding="utf-8")
    return BenchSite(root, pages, n_images, n_links)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the synthetic benchmark site.")
    parser.add_argument("root", type=Path)
    parser.add_argument("--pages", type=int, default=2000)
    args = parser.parse_args(argv)
    site = generate_bench_site(args.root, args.pages)
    print(f"{site.pages} pages, {site.images} images, {site.links} links in {site.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
