"""Rights metadata extraction: items/s per image and per page, beside what the crawler already does.

Per image: :func:`crawler.rights.embedded.read_rights` (XMP + IPTC IIM + C2PA creative work)
against the full Pillow decode the crawler does on every image (baseline). Per page:
:func:`crawler.rights.markup.page_markup` (extruct JSON-LD / microdata / RDFa + ccREL) plus the
per-image share (``for_image`` + ``scoped_evidence``) against the plain page parse (parsel
selector, ``find_images``, ``find_links``). Inputs are generated here, plus the real files of
../shared/fixtures when present. Each line prints items/s of both and the ratio
metadata/baseline (above 1: the extraction is faster than the work it rides on).

    .venv/bin/python -m bench.metadata [--seconds 0.5]
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import struct
import time
from collections.abc import Callable
from pathlib import Path

from parsel import Selector
from PIL import Image

from crawler.extract import find_images, find_links
from crawler.rights.embedded import read_rights
from crawler.rights.markup import norm_url, page_markup, scoped_evidence

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
CC_BY = "https://creativecommons.org/licenses/by/4.0/"


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second: the best of 3 runs of about ``seconds`` each."""
    fn()
    best = 0.0
    for _ in range(3):
        n, t0 = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < seconds:
            fn()
            n += 1
        best = max(best, n / elapsed)
    return best


def jpeg(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (120, 60, 200)).save(out, "JPEG", quality=85)
    return out.getvalue()


def with_rights(data: bytes) -> bytes:
    """APP1 XMP (cc:license, creator, title, credit) and APP13 IIM (by-line, credit, notice)."""
    packet = (
        "<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF"
        " xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'><rdf:Description"
        " xmlns:dc='http://purl.org/dc/elements/1.1/' xmlns:cc='http://creativecommons.org/ns#'"
        " xmlns:photoshop='http://ns.adobe.com/photoshop/1.0/'"
        f" photoshop:Credit='Bench Co-op'><cc:license rdf:resource='{CC_BY}'/>"
        "<dc:creator><rdf:Seq><rdf:li>Bench Author</rdf:li></rdf:Seq></dc:creator>"
        "<dc:title><rdf:Alt><rdf:li xml:lang='x-default'>Bench</rdf:li></rdf:Alt></dc:title>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()
    app1 = b"http://ns.adobe.com/xap/1.0/\x00" + packet
    iim = b"".join(b"\x1c" + bytes([2, d]) + struct.pack(">H", len(v)) + v for d, v in (
        (80, b"Bench Author"), (110, b"Bench Co-op"), (116, b"CC BY 4.0")))
    app13 = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00" + struct.pack(">I", len(iim)) + iim
    segments = (b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
                + b"\xff\xed" + struct.pack(">H", len(app13) + 2) + app13)
    return data[:2] + segments + data[2:]


def decode(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as image:
        image.load()


def gallery(n: int = 20) -> tuple[str, list[str]]:
    """A gallery page: one JSON-LD ImageObject per image, figures with ccREL, a page licence."""
    urls = [f"https://bench.example/img/{i}.jpg" for i in range(n)]
    graph = [{"@type": "ImageObject", "contentUrl": u, "license": CC_BY, "creditText": "Co-op",
              "creator": {"@type": "Person", "name": f"Author {i}"}} for i, u in enumerate(urls)]
    head = ('<script type="application/ld+json">'
            + json.dumps({"@context": "https://schema.org", "@graph": graph}) + "</script>"
            f'<link rel="license" href="{CC_BY}">')
    body = "".join(
        f'<figure><img src="{u}" alt="work {i}"><figcaption><span property="cc:attributionName">'
        f'Author {i}</span> <a rel="license" href="{CC_BY}">CC BY</a></figcaption></figure>'
        f'<a href="/p/{i}.html">next</a>' for i, u in enumerate(urls))
    html = f"<!doctype html><html><head><title>g</title>{head}</head><body>{body}</body></html>"
    return html, urls


def plain(n: int = 20) -> str:
    body = "".join(f'<figure><img src="/img/{i}.jpg" alt="work {i}"><figcaption>Work {i}'
                   f'</figcaption></figure><a href="/p/{i}.html">next</a>' for i in range(n))
    return (f'<!doctype html><html><head><title>p</title><link rel="license" href="{CC_BY}">'
            f"</head><body>{body}</body></html>")


def page_parse(html: str, base: str) -> None:
    sel = Selector(text=html)
    find_images(sel, base)
    find_links(sel, base)


def page_rights(html: str, base: str) -> Callable[[], None]:
    """The rights work alone, on the selector and images the crawler already has."""
    sel = Selector(text=html)
    images = find_images(sel, base)
    body = html.encode()

    def run() -> None:
        norm_url.cache_clear()  # a crawl sees each image URL once; licence URLs do repeat
        markup = page_markup(body, html, sel, base)
        for image in images:
            markup.for_image(image.url)
            scoped_evidence(image, base, markup)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=0.5)
    args = parser.parse_args()
    s = args.seconds

    images: list[tuple[str, bytes, str]] = [
        ("generated 512x512 JPEG, no metadata", jpeg((512, 512)), "image/jpeg"),
        ("generated 512x512 JPEG, XMP + IIM", with_rights(jpeg((512, 512))), "image/jpeg"),
        ("generated 1024x768 JPEG, XMP + IIM", with_rights(jpeg((1024, 768))), "image/jpeg"),
    ]
    for name in ("iptc_xmp/exiftool_XMP.jpg", "c2pa/adobe-20220124-C.jpg",
                 "c2pa/c2pa-rs_adobe_connected_identities.jpg"):
        path = FIXTURES / "images" / name
        if path.is_file():
            images.append((f"fixture {name}", path.read_bytes(), "image/jpeg"))
    print("per image: rights metadata (XMP+IIM+C2PA) vs full Pillow decode (baseline)")
    for label, data, mime in images:
        meta = rate(functools.partial(read_rights, data, mime), s)
        base = rate(functools.partial(decode, data), s)
        print(f"  {label:<52} metadata {meta:>9,.0f}/s  decode {base:>8,.0f}/s  "
              f"ratio {meta / base:6.2f}")

    html, _ = gallery()
    pages: list[tuple[str, str, str]] = [
        ("generated gallery, 20 images, JSON-LD + ccREL", html, "https://bench.example/g"),
        ("generated gallery, 20 images, rel=license only", plain(), "https://bench.example/p"),
    ]
    fixture_pages = sorted((FIXTURES / "html").glob("*.html"))
    for path in fixture_pages:
        pages.append((f"fixture {path.name}", path.read_text(), "http://example.com/gallery/"))
    print("per page: rights markup (extruct + ccREL + per-image matching), on the parsed page,"
          " vs the plain page parse (parsel + find_images + find_links)")
    for label, text, base_url in pages:
        meta = rate(page_rights(text, base_url), s)
        base = rate(functools.partial(page_parse, text, base_url), s)
        print(f"  {label:<52} metadata {meta:>9,.0f}/s  parse  {base:>8,.0f}/s  "
              f"ratio {meta / base:6.2f}")


if __name__ == "__main__":
    main()
