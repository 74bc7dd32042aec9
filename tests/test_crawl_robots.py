"""The robots gate against a real server: races, failures and hostile files (access-log checks)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from crawlkit import image_bytes, local_source, page, run_crawl_cli, write_settings
from mockserver import MockServer

from pipeline.runs import reasons

DISALLOWED = [f"/site/private/p{i}.html" for i in range(6)]


@pytest.fixture
def server():
    with MockServer() as srv:
        srv.route("/site/", body=page('<a href="/site/ok.html">ok</a>'))
        srv.route("/site/ok.html", body=page("ok"))
        for path in DISALLOWED:
            srv.route(path, body=page("private"))
        yield srv


def _config(server: MockServer, tmp_path: Path, start_urls: list[str] | None = None) -> None:
    base = server.url("/site/")
    write_settings(tmp_path / "configs", [
        local_source("site", base, start_urls=start_urls or [base]),
    ])


def test_concurrent_first_requests_wait_for_a_slow_robots_txt(server: MockServer, tmp_path):
    server.route("/robots.txt", body="User-agent: ClearanceBot\nDisallow: /site/private/\n",
                 content_type="text/plain", delay=1.5)
    _config(server, tmp_path, [server.url(p) for p in DISALLOWED] + [server.url("/site/")])
    result = run_crawl_cli(tmp_path)
    assert result.returncode == 0, result.stderr
    assert server.count("/robots.txt") == 1
    assert not [p for p in server.paths() if p.startswith("/site/private/")]
    assert server.was_requested("/site/ok.html")
    for path in DISALLOWED:
        rejection = result.rejection(server.url(path))
        assert rejection["reason"] == reasons.ROBOTS_DISALLOWED
        assert "Disallow: /site/private/" in rejection["detail"]


@pytest.mark.parametrize("status", [500, 503])
def test_robots_5xx_fails_closed(server: MockServer, tmp_path, status: int):
    server.route("/robots.txt", status=status, body="User-agent: *\nAllow: /\n",
                 content_type="text/plain")
    _config(server, tmp_path, [server.url(p) for p in DISALLOWED[:5]] + [server.url("/site/")])
    result = run_crawl_cli(tmp_path)
    assert result.returncode == 0, result.stderr
    assert set(server.paths()) == {"/robots.txt"}  # a 5xx body is never read as rules
    assert result.reasons_for(server.url("/site/")) == [reasons.ROBOTS_UNREACHABLE]
    assert f"HTTP {status}" in result.rejection(server.url("/site/"))["detail"]


def test_robots_404_allows_all(server: MockServer, tmp_path):
    server.route("/robots.txt", status=404, body="nope", content_type="text/plain")
    _config(server, tmp_path)
    result = run_crawl_cli(tmp_path)
    assert result.returncode == 0, result.stderr
    assert server.was_requested("/site/ok.html")


def test_robots_redirect_outside_consent_is_not_followed(server: MockServer, tmp_path):
    server.redirect("/robots.txt", "/elsewhere/robots.txt")
    server.route("/elsewhere/robots.txt", body="User-agent: *\nAllow: /\n",
                 content_type="text/plain")
    _config(server, tmp_path)
    result = run_crawl_cli(tmp_path)
    assert result.returncode == 0, result.stderr
    assert not server.was_requested("/elsewhere/robots.txt")
    assert not server.was_requested("/site/")
    assert result.reasons_for(server.url("/site/")) == [reasons.ROBOTS_UNREACHABLE]


def test_robots_group_is_chosen_by_exact_token(server: MockServer, tmp_path):
    # Both parsers would give the "Clearance" group to ClearanceBot; RFC 9309 does not.
    server.route("/robots.txt", body=(
        "User-agent: Clearance\nDisallow: /\n\n"
        "User-agent: ClearanceBot\nDisallow: /site/private/\n"), content_type="text/plain")
    _config(server, tmp_path)
    result = run_crawl_cli(tmp_path)
    assert result.returncode == 0, result.stderr
    assert server.was_requested("/site/ok.html")


def test_hostile_wildcard_pattern_does_not_stall_the_crawl(server: MockServer, tmp_path):
    server.route("/robots.txt", body="User-agent: *\nDisallow: /*a*a*a*a*a$\n",
                 content_type="text/plain")
    long_path = "/site/" + "a" * 200 + "b.html"
    server.route(long_path, body=page("long"))
    server.route("/site/", body=page(f'<a href="{long_path}">long</a>'))
    _config(server, tmp_path)
    started = time.monotonic()
    result = run_crawl_cli(tmp_path)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    # The decision timed out and was refused (fail closed) rather than stalling for seconds.
    rejection = result.rejection(server.url(long_path))
    assert rejection["reason"] == reasons.ROBOTS_DISALLOWED
    assert "exceeded" in rejection["detail"]
    assert not server.was_requested(long_path)


def test_disallowed_image_is_not_fetched(server: MockServer, tmp_path):
    server.route("/robots.txt", body="User-agent: ClearanceBot\nDisallow: /site/img/secret\n",
                 content_type="text/plain")
    server.route("/site/", body=page(
        '<img src="/site/img/ok.jpg" alt="ok"><img src="/site/img/secret.jpg" alt="no">'))
    server.route("/site/img/ok.jpg", body=image_bytes(), content_type="image/jpeg")
    server.route("/site/img/secret.jpg", body=image_bytes((0, 0, 0)), content_type="image/jpeg")
    _config(server, tmp_path)
    result = run_crawl_cli(tmp_path)
    assert result.returncode == 0, result.stderr
    assert not server.was_requested("/site/img/secret.jpg")
    assert result.reasons_for(server.url("/site/img/secret.jpg")) == [reasons.ROBOTS_DISALLOWED]
    item = result.item(server.url("/site/img/ok.jpg"))
    robots = [s for s in item["signals"] if s["check"] == "robots"]
    assert robots and robots[0]["decision"] == "allow" and robots[0]["ran"]


def test_ai_agent_block_is_an_opt_out_even_where_our_group_allows(server: MockServer, tmp_path):
    server.route("/robots.txt", body=(
        "User-agent: ClearanceBot\nAllow: /\n\n"
        "User-agent: GPTBot\nUser-agent: CCBot\nDisallow: /site/private/\n"),
        content_type="text/plain")
    _config(server, tmp_path, [server.url(DISALLOWED[0]), server.url("/site/")])
    result = run_crawl_cli(tmp_path)
    assert result.returncode == 0, result.stderr
    assert not server.was_requested(DISALLOWED[0])
    rejection = result.rejection(server.url(DISALLOWED[0]))
    assert rejection["reason"] == reasons.ROBOTS_AI_OPTOUT
    assert "Disallow: /site/private/" in rejection["detail"] and "gptbot" in rejection["detail"]


def test_crawl_delay_spaces_requests_to_the_host(server: MockServer, tmp_path):
    server.route("/robots.txt", body="User-agent: *\nCrawl-delay: 0.6\n", content_type="text/plain")
    server.route("/site/", body=page("".join(f'<a href="/site/p{i}.html">p</a>' for i in range(3))))
    for i in range(3):
        server.route(f"/site/p{i}.html", body=page("p"))
    _config(server, tmp_path)
    result = run_crawl_cli(tmp_path)
    assert result.returncode == 0, result.stderr
    times = sorted(r.time for r in server.requests if r.path.startswith("/site/p"))
    assert len(times) == 3
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.55, gaps  # a minimum: Scrapy's 0.5x-1.5x jitter must not undercut it


def test_robots_redirect_inside_consent_is_followed(server: MockServer, tmp_path):
    server.redirect("/robots.txt", "/site/robots-real.txt")
    server.route("/site/robots-real.txt", body="User-agent: *\nDisallow: /site/private/\n",
                 content_type="text/plain")
    _config(server, tmp_path, [server.url(DISALLOWED[0]), server.url("/site/")])
    result = run_crawl_cli(tmp_path)
    assert result.returncode == 0, result.stderr
    assert server.was_requested("/site/robots-real.txt") and server.was_requested("/site/ok.html")
    assert not server.was_requested(DISALLOWED[0])
    assert "robots-real.txt" in result.rejection(server.url(DISALLOWED[0]))["detail"]


def test_robots_txt_with_a_leading_bom_is_obeyed(server: MockServer, tmp_path):
    """A UTF-8 BOM before the first user-agent line must not hide our group (RFC 9309 parsers
    skip it): the disallowed page is never requested, the allowed one is."""
    server.route("/robots.txt", body=b"\xef\xbb\xbfUser-agent: ClearanceBot\nDisallow: /bom/\n",
                 content_type="text/plain")
    server.route("/bom/p", body=page("bom"))
    server.route("/site/", body=page('<a href="/site/ok.html">ok</a><a href="/bom/p">b</a>'))
    base = server.url("/")
    write_settings(tmp_path / "configs", [
        local_source("site", base, start_urls=[server.url("/site/")]),
    ])
    result = run_crawl_cli(tmp_path)
    assert result.returncode == 0, result.stderr
    assert server.was_requested("/site/ok.html")
    assert not server.was_requested("/bom/p")
    rejection = result.rejection(server.url("/bom/p"))
    assert rejection["reason"] == reasons.ROBOTS_DISALLOWED
    assert "Disallow: /bom/" in rejection["detail"]
