"""Promise 1 end to end: nothing outside consent is requested, checked on the server's log."""

from __future__ import annotations

from pathlib import Path

import pytest
from crawlkit import local_source, page, run_crawl_cli, write_settings
from mockserver import MockServer

from pipeline.runs import reasons


@pytest.fixture
def server():
    with MockServer() as srv:
        srv.route("/robots.txt", body="User-agent: *\nAllow: /\n", content_type="text/plain")
        yield srv


def test_out_of_scope_links_and_redirects_are_never_requested(server: MockServer, tmp_path: Path):
    server.route("/site/", body=page(
        '<a href="/site/a.html">a</a> <a href="/outside/secret.html">secret</a>'
        '<a href="https://example.invalid/x">external</a>'
        '<a href="/site/hop">hop</a>'))
    server.route("/site/a.html", body=page("a"))
    server.redirect("/site/hop", "/outside/landing.html")
    server.redirect("/site/start", server.url("/outside/from-start.html"))
    server.route("/outside/secret.html", body=page("must not be fetched"))
    server.route("/outside/landing.html", body=page("must not be fetched"))
    server.route("/outside/from-start.html", body=page("must not be fetched"))
    base = server.url("/site/")
    write_settings(tmp_path / "configs", [
        local_source("site", base, start_urls=[base, server.url("/site/start")]),
    ])
    result = run_crawl_cli(tmp_path)
    assert result.returncode == 0, result.stderr

    assert server.was_requested("/site/a.html")
    assert server.was_requested("/site/hop") and server.was_requested("/site/start")
    requested = server.paths()
    assert not [p for p in requested if p.startswith("/outside/")], requested
    assert result.reasons_for(server.url("/outside/secret.html")) == [reasons.OUT_OF_SCOPE]
    assert result.reasons_for("https://example.invalid/x") == [reasons.OUT_OF_SCOPE]
    hop = result.rejection(server.url("/outside/landing.html"))
    assert hop["reason"] == reasons.OUT_OF_SCOPE
    assert "redirected from" in hop["detail"] and hop["detail"].endswith("/site/hop)")
    start = result.rejection(server.url("/outside/from-start.html"))
    assert start["reason"] == reasons.OUT_OF_SCOPE and "/site/start" in start["detail"]


def test_ineligible_sources_get_no_request_of_any_kind(server: MockServer, tmp_path: Path):
    server.route("/lapsed/", body=page("lapsed"))
    server.route("/revoked/", body=page("revoked"))
    server.route("/noav/", body=page("no age verification"))
    server.route("/ok/", body=page("fine"))
    write_settings(tmp_path / "configs", [
        local_source("lapsed", server.url("/lapsed/"), consent_expires_in=-3),
        local_source("revoked", server.url("/revoked/"), status="revoked"),
        local_source("noav", server.url("/noav/"), age_verified=False),
        local_source("ok", server.url("/ok/")),
    ])
    result = run_crawl_cli(tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(server.paths()) == ["/.well-known/tdmrep.json", "/ok/", "/robots.txt"]
    sources = result.run["sources"]
    assert sources["lapsed"]["status"] == "skipped"
    assert sources["lapsed"]["reason"] == reasons.CONSENT_INACTIVE
    assert "expired" in sources["lapsed"]["message"]
    assert sources["revoked"]["reason"] == reasons.REVOKED
    assert sources["noav"]["reason"] == reasons.AGE_UNVERIFIED
    assert result.reasons_for(server.url("/lapsed/")) == [reasons.CONSENT_INACTIVE]


def test_only_ineligible_sources_means_no_traffic_at_all(server: MockServer, tmp_path: Path):
    server.route("/lapsed/", body=page("lapsed"))
    write_settings(tmp_path / "configs", [
        local_source("lapsed", server.url("/lapsed/"), consent_expires_in=-1),
    ])
    result = run_crawl_cli(tmp_path)
    assert result.returncode == 0, result.stderr
    assert server.paths() == []
    assert "skipped lapsed" not in result.stdout  # --json keeps stdout machine-readable
    assert result.run["counts"]["items"] == 0


def test_private_address_refused_without_opt_in(server: MockServer, tmp_path: Path):
    server.route("/site/", body=page("private"))
    write_settings(tmp_path / "configs", [
        local_source("site", server.url("/site/"), allow_private_network=False),
    ])
    result = run_crawl_cli(tmp_path)
    assert result.returncode == 0, result.stderr
    assert server.paths() == []  # not even robots.txt
    rejection = result.rejection(server.url("/site/"))
    assert rejection["reason"] == reasons.PRIVATE_ADDRESS
    assert "127.0.0.1" in rejection["detail"] and "loopback" in rejection["detail"]


def test_redirect_loop_is_bounded_and_recorded(server: MockServer, tmp_path: Path):
    server.redirect("/site/", "/site/loop-a")
    server.redirect("/site/loop-a", "/site/loop-b")
    server.redirect("/site/loop-b", "/site/loop-a")
    write_settings(tmp_path / "configs", [local_source("site", server.url("/site/"))])
    result = run_crawl_cli(tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(server.requests) < 30
    assert any(r["reason"] == reasons.FETCH_FAILED for r in result.rejections)
