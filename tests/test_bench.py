"""The crawl benchmark's parts: the synthetic site, bare Scrapy, the servers, error reporting.

Not timed: these check that the benchmark measures what it says, on small sites.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# bench/ is not an installed package; pytest puts only tests/ on sys.path.
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import crawl as bench_crawl  # noqa: E402
from bench.site import FANOUT, generate_bench_site, page_path  # noqa: E402

HREF = re.compile(r'<a href="([^"]+)">')
IMG = re.compile(r'<img src="([^"]+)"')


def test_bench_site_is_finite_linked_and_reachable(tmp_path: Path) -> None:
    site = generate_bench_site(tmp_path, pages=250)
    assert (site.pages, site.images) == (250, sum(i % 3 for i in range(250)))
    html = {i: (tmp_path / page_path(i).lstrip("/")).read_text() for i in range(250)}
    out_degree = [len(HREF.findall(text)) for text in html.values()]
    assert min(out_degree) >= FANOUT - 1 and max(out_degree) <= FANOUT + 1
    assert sum(out_degree) == site.links
    seen, queue = {"/index.html": 0}, ["/index.html"]
    for path in queue:
        text = (tmp_path / path.lstrip("/")).read_text()
        for href in HREF.findall(text):
            assert (tmp_path / href.lstrip("/")).is_file()
            if href not in seen:
                seen[href] = seen[path] + 1
                queue.append(href)
    assert len(seen) == 250 and max(seen.values()) <= 4
    images = [src for text in html.values() for src in IMG.findall(text)]
    digests = {hashlib.sha256((tmp_path / s.lstrip("/")).read_bytes()).digest() for s in images}
    assert len(images) == len(digests) == site.images
    assert "User-agent: *" in (tmp_path / "robots.txt").read_text()


def test_bare_scrapy_crawls_every_page_and_image(tmp_path: Path) -> None:
    site = generate_bench_site(tmp_path / "site", pages=60)
    server = bench_crawl.PythonServer(tmp_path / "site")
    try:
        measurement = bench_crawl.measure_bare(
            server, server.base_url + "/index.html", True, 16, tmp_path, timeout=120
        )
    finally:
        server.stop()
    assert (measurement.hits.pages, measurement.hits.images) == (60, site.images)
    assert measurement.hits.policy == 1  # robots.txt, once
    stats = json.loads((tmp_path / "bare-images-stats.json").read_text())
    assert stats["bench/pages"] == 60 and stats["bench/images"] == site.images
    assert stats["finish_reason"] == "finished"
    assert measurement.pages_per_s > 0 and measurement.crawl_s


def test_a_failing_clearance_cli_is_reported_with_its_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate_bench_site(tmp_path / "site", pages=3)
    failing = "import sys; sys.stderr.write('Traceback: the crawler broke\\n'); sys.exit(3)"
    monkeypatch.setattr(bench_crawl, "clearance_command", lambda: [sys.executable, "-c", failing])
    server = bench_crawl.PythonServer(tmp_path / "site")
    try:
        with pytest.raises(bench_crawl.BenchError) as raised:
            bench_crawl.measure_clearance(
                server, server.base_url + "/index.html", True, 8, tmp_path, 0, timeout=60
            )
    finally:
        server.stop()
    message = str(raised.value)
    assert "exited 3" in message and "the crawler broke" in message


def test_bench_configs_validate_with_signals_on_and_off(tmp_path: Path) -> None:
    from pipeline.registry.config import load_config

    base = "http://127.0.0.1:9"
    on = load_config(bench_crawl.write_bench_configs(tmp_path / "on", base + "/", base, True))
    off = load_config(bench_crawl.write_bench_configs(tmp_path / "off", base + "/", base, False))
    assert on.settings.signals.off() == []
    assert sorted(off.settings.signals.off()) == sorted(type(off.settings.signals).model_fields)
    source = on.sources["bench"]
    assert source.crawl.max_depth == 100 and source.allow_private_network
    assert on.settings.limits.max_pages_per_source == 100_000


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_server_serves_and_counts(tmp_path: Path) -> None:
    generate_bench_site(tmp_path / "site", pages=5)
    server = bench_crawl.NginxServer(tmp_path / "site", tmp_path / "nginx", shutil.which("nginx"))
    try:
        mark = server.mark()
        for path in ("/index.html", "/p/2.html", "/img/2-1.png", "/robots.txt", "/ai.txt"):
            subprocess.run(
                ["curl", "-sf", "-o", "/dev/null", server.base_url + path], timeout=10, check=False
            )
        hits = server.hits_since(mark)
    finally:
        server.stop()
    assert (hits.pages, hits.images, hits.policy, hits.errors) == (2, 1, 2, 1)
    assert server.proc.poll() is not None


def test_bench_end_to_end_on_a_small_site(tmp_path: Path) -> None:
    """Every row of the table on 40 pages, through the real `clearance crawl` CLI."""
    out = tmp_path / "bench.json"
    code = bench_crawl.main(
        ["--pages", "40", "--server", "python", "--signals", "both", "--concurrency", "16",
         "--timeout", "120", "--workdir", str(tmp_path / "work"), "--json", str(out)]
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert code == 0, report["failures"]
    assert set(report["results"]) == {
        "bare scrapy, links",
        "bare scrapy, links + images",
        "clearance, signals on",
        "clearance, signals off",
    }
    for name, row in report["results"].items():
        assert row["hits"]["pages"] == 40, name
    assert any("signals on / off" in line for line in report["ratios"])
