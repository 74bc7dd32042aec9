"""Cost of the opt-out checks per page and per image, against a tuned bare Scrapy page budget.

The crawl benchmark (``bench/crawl.py --signals both``) gives the end-to-end ratio of pages/s
with every signal on vs off. This one isolates the checks themselves, in this process, on
realistic inputs: a gallery page with headers and meta tags, a plain JPEG, a JPEG with XMP, and
(when ../shared/fixtures is there) real C2PA files. It prints microseconds per call and the
share of a bare-Scrapy page's time budget (``--budget-pages-per-s``, measured by bench/crawl.py
on this machine) each one would take.

    .venv/bin/python -m bench.signals [--repeat 2000]
"""

from __future__ import annotations

import argparse
import io
import statistics
import struct
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from crawler.signals.agents import load_ai_agents
from crawler.signals.response import Verdict, embedded_checks, header_checks, page_verdict
from crawler.signals.robots import RobotsPolicy
from pipeline.registry.config import Settings

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"

SETTINGS = Settings.model_validate({
    "user_agent": "ClearanceBot/0.1",
    "robots_token": "ClearanceBot",
    "intended_use": "ai-training",
    "age_verification": {"accepted_methods": ["government-id"], "max_age_days": 730},
})

PAGE = (
    "<!doctype html><html><head><title>Gallery</title>"
    '<meta name="robots" content="index, follow">'
    '<meta name="tdm-reservation" content="0">'
    '<link rel="license" href="https://creativecommons.org/licenses/by/4.0/"></head><body>'
    + "".join(f'<figure><img src="/img/{i}.jpg" alt="work {i}"><figcaption>Work {i}'
              f'</figcaption></figure><a href="/p/{i}.html">next</a>' for i in range(20))
    + "</body></html>"
).encode()
HEADERS = {
    b"Content-Type": [b"text/html; charset=utf-8"],
    b"Content-Usage": [b"train-ai=y"],
    b"X-Robots-Tag": [b"index, follow"],
    b"Server": [b"nginx"],
}


def jpeg(size: tuple[int, int] = (512, 512)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (120, 60, 200)).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def with_xmp(data: bytes) -> bytes:
    packet = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        b'xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/" '
        b'plus:DataMining="http://ns.useplus.org/ldf/vocab/DMI-ALLOWED"/></rdf:RDF></x:xmpmeta>'
    )
    payload = b"http://ns.adobe.com/xap/1.0/\x00" + packet
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median microseconds per call over 5 batches."""
    batches = []
    per_batch = max(1, repeat // 5)
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(per_batch):
            fn()
        batches.append((time.perf_counter() - t0) / per_batch * 1e6)
    return statistics.median(batches)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--budget-pages-per-s", type=float, default=232.0,
                        help="bare Scrapy pages/s with images on this machine (bench/crawl.py)")
    args = parser.parse_args(argv)
    budget_us = 1e6 / args.budget_pages_per_s

    robots = RobotsPolicy(
        (FIXTURES / "robots" / "nytimes.com.txt").read_text()
        if (FIXTURES / "robots").is_dir() else "User-agent: *\nDisallow: /private/\n",
        "ClearanceBot", load_ai_agents(), "robots.txt",
    )
    counter = iter(range(10**9))
    plain, xmp = jpeg(), with_xmp(jpeg())
    cases: list[tuple[str, str, Callable[[], object]]] = [
        ("page", "headers + meta (page_verdict)", lambda: page_verdict(HEADERS, PAGE, SETTINGS)),
        ("page", "robots decision, new path (nytimes.com file)",
         lambda: robots.check(f"https://h/section/{next(counter)}.html")),
        ("image", "response headers", lambda: header_checks(HEADERS, SETTINGS, Verdict())),
        ("image", "embedded, plain 512px JPEG", lambda: embedded_checks(plain, "image/jpeg",
                                                                         SETTINGS)),
        ("image", "embedded, JPEG with XMP", lambda: embedded_checks(xmp, "image/jpeg",
                                                                      SETTINGS)),
    ]
    c2pa_file = FIXTURES / "images" / "c2pa" / "c2pa-c_for_trusted_read.jpg"
    if c2pa_file.is_file():
        c2pa_bytes = c2pa_file.read_bytes()
        cases.append(("image", "embedded, real C2PA JPEG (117 KB)",
                      lambda: embedded_checks(c2pa_bytes, "image/jpeg", SETTINGS)))
    print(f"budget: {budget_us:.0f} us per page at {args.budget_pages_per_s:.0f} pages/s "
          "(bare Scrapy, links + images)")
    print(f"{'per':<6} {'check':<48} {'us/call':>9} {'of budget':>10}")
    for per, name, fn in cases:
        repeat = args.repeat if "C2PA" not in name else max(50, args.repeat // 20)
        us = timed(fn, repeat)
        print(f"{per:<6} {name:<48} {us:>9.1f} {us / budget_us:>9.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
