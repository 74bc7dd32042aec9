"""Run the real crawler (the `clearance` CLI in a child process) against a local MockServer.

Scrapy's reactor starts once per process, so every crawl in the tests is a child process with a
hard timeout; the parent keeps the server and reads its access log afterwards.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from helpers_config import settings_doc, source_doc, write_config
from PIL import Image

CRAWL_TIMEOUT_S = 90


@dataclass
class CrawlResult:
    returncode: int
    stdout: str
    stderr: str
    run: dict[str, Any] | None
    items: list[dict[str, Any]]
    rejections: list[dict[str, Any]]

    def reasons_for(self, url: str) -> list[str]:
        return [r["reason"] for r in self.rejections if r["url"] == url]

    def rejection(self, url: str) -> dict[str, Any]:
        matches = [r for r in self.rejections if r["url"] == url]
        assert matches, f"no rejection for {url}; have {[r['url'] for r in self.rejections]}"
        return matches[0]

    def rejections_of(self, url: str) -> list[tuple[str, str]]:
        return [(r["reason"], r["detail"]) for r in self.rejections if r["url"] == url]

    def item(self, url: str) -> dict[str, Any]:
        matches = [r for r in self.items if r["url"] == url]
        assert matches, (f"no item for {url}; have {[r['url'] for r in self.items]}; "
                         f"rejected: {self.rejections_of(url)}; stderr: {self.stderr[-3000:]}")
        return matches[0]


def local_source(source_id: str, base_url: str, **overrides: Any) -> dict[str, Any]:
    """A source doc for a site on the mock server: scope = base_url, private network allowed."""
    doc = source_doc(source_id, default_licence=overrides.pop("default_licence", "CC-BY-4.0"),
                     **{k: overrides.pop(k) for k in list(overrides) if k in _SOURCE_DOC_ARGS})
    doc["start_urls"] = overrides.pop("start_urls", [base_url])
    doc["scope"] = overrides.pop("scope", [base_url])
    doc["allow_private_network"] = overrides.pop("allow_private_network", True)
    doc["crawl"].update(overrides.pop("crawl", {}))
    doc.update(overrides)
    return doc


_SOURCE_DOC_ARGS = {"status", "consent_expires_in", "uses", "age_verified", "av_method",
                    "av_expires_in", "schedule", "consent_id"}


def write_settings(config_dir: Path, sources: list[dict[str, Any]], **settings: Any) -> None:
    doc = settings_doc()
    for key, value in settings.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    write_config(config_dir, sources, doc)


def run_crawl_cli(tmp: Path, *args: str, timeout: float = CRAWL_TIMEOUT_S) -> CrawlResult:
    config_dir, data_dir = tmp / "configs", tmp / "data"
    cmd = [sys.executable, "-m", "pipeline.cli", "--config", str(config_dir),
           "--data", str(data_dir), "crawl", "--json", "--no-progress", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    run = None
    items: list[dict[str, Any]] = []
    rejections: list[dict[str, Any]] = []
    if proc.returncode == 0:
        run = json.loads(proc.stdout)
        run_dir = data_dir / "runs" / run["run_id"]
        items = pq.read_table(run_dir / "items.parquet").to_pylist()
        rejections = pq.read_table(run_dir / "rejections.parquet").to_pylist()
    return CrawlResult(proc.returncode, proc.stdout, proc.stderr, run, items, rejections)


def image_bytes(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (32, 24),
                fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return buf.getvalue()


def page(body: str, title: str = "page", head: str = "") -> str:
    return (f"<!doctype html><html><head><title>{title}</title>{head}</head>"
            f"<body>{body}</body></html>")
