"""The baseline: bare, tuned Scrapy following every in-site link (and, optionally, images).

Tuning as in DESIGN.md "Performance facts": 64 concurrent requests (also per domain: the whole
site is one host), ``CONCURRENT_ITEMS=8`` (Scrapy's default 100 starts 100 tasks per response,
upstream #5182), robots.txt obeyed, ``LOG_LEVEL=INFO``, telnet console and remote control off.
No item pipelines, no feed export. One item per page and per image, as a crawler that records
rows would yield.

``python bench/bare_spider.py --url http://127.0.0.1:PORT/ --out stats.json [--images]`` runs
one crawl in this process and writes Scrapy's stats (plus ``bench/pages``, ``bench/images``)
as JSON.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.http import Response, TextResponse
from scrapy.linkextractors import LinkExtractor

STAT_PAGES = "bench/pages"
STAT_IMAGES = "bench/images"


class BareSpider(scrapy.Spider):
    """Follow every link inside the start URL's host; fetch ``img src`` too if asked."""

    name = "bare"

    def __init__(self, url: str, images: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_url = url
        self.fetch_images = images
        # allow_domains does not match IP hosts such as 127.0.0.1; a URL-prefix regex does.
        parts = urlsplit(url)
        self.links = LinkExtractor(allow=[re.escape(f"{parts.scheme}://{parts.netloc}/")])

    async def start(self) -> AsyncIterator[scrapy.Request]:
        yield scrapy.Request(self.start_url, callback=self.parse)

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value(STAT_PAGES)
        if not isinstance(response, TextResponse):
            return
        for link in self.links.extract_links(response):
            yield scrapy.Request(link.url, callback=self.parse)
        if self.fetch_images:
            for src in response.css("img::attr(src)").getall():
                yield response.follow(src, callback=self.parse_image)
        yield {"url": response.url, "status": response.status}

    def parse_image(self, response: Response) -> Iterator[dict[str, Any]]:
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value(STAT_IMAGES)
        yield {"url": response.url, "bytes": len(response.body)}


def settings(concurrency: int = 64, concurrent_items: int = 8) -> dict[str, Any]:
    return {
        "BOT_NAME": "barebench",
        "USER_AGENT": "BareBench/1.0 (+https://example.org/clearance-bench)",
        "ROBOTSTXT_OBEY": True,
        "CONCURRENT_REQUESTS": concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
        "CONCURRENT_ITEMS": concurrent_items,
        "LOG_LEVEL": "INFO",
        "TELNETCONSOLE_ENABLED": False,
        "REMOTE_CONTROL_ENABLED": False,
    }


def crawl(url: str, images: bool, concurrency: int, concurrent_items: int) -> dict[str, Any]:
    """Run one crawl to completion in this process; return its stats (JSON-ready)."""
    process = CrawlerProcess(settings(concurrency, concurrent_items), install_root_handler=True)
    crawler = process.create_crawler(BareSpider)
    process.crawl(crawler, url=url, images=images)
    process.start()
    assert crawler.stats is not None
    return {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in crawler.stats.get_stats().items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="start URL, e.g. http://127.0.0.1:8080/")
    parser.add_argument("--out", type=Path, required=True, help="where to write the stats JSON")
    parser.add_argument("--images", action="store_true", help="also download every img src")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--concurrent-items", type=int, default=8)
    args = parser.parse_args(argv)
    stats = crawl(args.url, args.images, args.concurrency, args.concurrent_items)
    args.out.write_text(json.dumps(stats, indent=2, sort_keys=True, default=str), encoding="utf-8")
    return 0 if stats.get("finish_reason") == "finished" else 1


if __name__ == "__main__":
    raise SystemExit(main())
