"""Promise 1 end to end: nothing outside consent is requested, checked on the server's log."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.parquet as pq
import pytest
from crawlkit import CRAWL_TIMEOUT_S, image_bytes, local_source, page, run_crawl_cli, write_settings
from mockserver import MockServer

from pipeline.runs import reasons
from pipeline.safety.incidents import read_incidents
from pipeline.safety.urls import normalise_url


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



SECRET = "s3cret"


def _files_holding(root: Path, secret: str) -> list[str]:
    """Files under ``root`` that hold ``secret``: in their raw bytes (Parquet footers keep
    column statistics uncompressed) or, for Parquet, in the decompressed rows."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("latin-1")
        if path.suffix == ".parquet":
            text += repr(pq.read_table(path).to_pylist())
        if secret in text:
            found.append(str(path.relative_to(root)))
    return found


def _crawl_verbose(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The crawl at debug level (-vv), so every log line a secret could reach is printed."""
    cmd = [sys.executable, "-m", "pipeline.cli", "-vv", "--config", str(tmp_path / "configs"),
           "--data", str(tmp_path / "data"), "crawl", "--no-progress", "--json"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=CRAWL_TIMEOUT_S,
                          check=False)


def _assert_secret_nowhere(proc: subprocess.CompletedProcess[str], data: Path) -> None:
    assert SECRET not in proc.stdout
    assert SECRET not in proc.stderr, [ln for ln in proc.stderr.splitlines() if SECRET in ln]
    assert _files_holding(data, SECRET) == []


def test_urls_with_credentials_are_never_sent_nor_written(server: MockServer, tmp_path: Path):
    """Links and redirects to URLs carrying ``user:password@``, in scope and out of it: none is
    requested, each is refused with a reason, and the password is in no file of the data dir,
    no line of the crawl's output and no request either server received."""
    with MockServer() as other:
        other.route("/robots.txt", body="User-agent: *\nAllow: /\n", content_type="text/plain")
        other.route("/landing.html", body=page("must not be fetched"))
        a = urlsplit(server.url("/")).netloc
        b = urlsplit(other.url("/")).netloc
        out_of_scope = f"http://user:{SECRET}@{b}/landing.html"
        in_scope = f"http://user:{SECRET}@{a}/site/target.html"
        encoded = f"http://user:{SECRET}%2F%40x@{a}/site/target2.html"
        linked = f"http://user:{SECRET}@{a}/site/linked.html"
        user_only = f"http://{SECRET}@{a}/site/token.html"  # a token in the user name
        image = f"http://user:{SECRET}@{a}/site/img.jpg"
        server.route("/site/", body=page(
            '<a href="/site/hop-out">o</a> <a href="/site/hop-in">i</a>'
            f'<a href="/site/hop-enc">e</a> <a href="{linked}">l</a> <a href="{user_only}">u</a>'
            f'<img src="{image}" alt="a"> <img src="/site/ok.jpg" alt="mirror: {in_scope}">'))
        server.redirect("/site/hop-out", out_of_scope)
        server.redirect("/site/hop-in", in_scope)
        server.redirect("/site/hop-enc", encoded)
        for path in ("target.html", "target2.html", "linked.html", "token.html"):
            server.route(f"/site/{path}", body=page("must not be fetched"))
        server.route("/site/img.jpg", body=image_bytes(), content_type="image/jpeg")
        server.route("/site/ok.jpg", body=image_bytes((10, 200, 10)), content_type="image/jpeg")
        write_settings(tmp_path / "configs", [local_source("site", server.url("/site/"))])
        proc = _crawl_verbose(tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        other_requests = list(other.requests)

    # Nothing was sent with credentials, to either origin, in any form.
    assert other_requests == []
    requested = server.paths()
    assert server.was_requested("/site/hop-in") and server.was_requested("/site/ok.jpg")
    for path in ("target.html", "target2.html", "linked.html", "token.html", "img.jpg"):
        assert not server.was_requested(f"/site/{path}"), requested
    for record in server.requests:
        assert "authorization" not in record.headers, record
        assert SECRET not in record.path and SECRET not in repr(record.headers), record

    # Each is refused at the consent gate with a reason; the row shows it had user info.
    run = json.loads(proc.stdout)
    run_dir = tmp_path / "data" / "runs" / run["run_id"]
    by_url = {r["url"]: r for r in pq.read_table(run_dir / "rejections.parquet").to_pylist()}
    for url in (out_of_scope, in_scope, encoded, linked, user_only, image):
        redacted = "http://***@" + url.split("@", 1)[1]
        assert redacted in by_url, sorted(by_url)
        row = by_url[redacted]
        assert (row["reason"], row["stage"]) == (reasons.OUT_OF_SCOPE, reasons.STAGE_CONSENT)
        assert "URL carries credentials" in row["detail"], row
    hop = by_url["http://***@" + out_of_scope.split("@", 1)[1]]
    assert hop["detail"].endswith("(redirected from " + server.url("/site/hop-out") + ")")
    item = pq.read_table(run_dir / "items.parquet").to_pylist()
    assert [row["url"] for row in item] == [server.url("/site/ok.jpg")]
    assert item[0]["caption"] == "mirror: http://***@" + in_scope.split("@", 1)[1]

    _assert_secret_nowhere(proc, tmp_path / "data")


def test_a_listed_url_with_credentials_leaves_an_incident_without_them(
        server: MockServer, tmp_path: Path):
    """A URL-list hit is checked before the credentials (it must not get a row); its incident
    record keeps the URL and the redirect hops, without the password."""
    listed = f"http://user:{SECRET}@{urlsplit(server.url('/')).netloc}/site/listed.html"
    server.route("/site/", body=page('<a href="/site/hop">x</a>'))
    server.redirect("/site/hop", listed)
    server.route("/site/listed.html", body=page("must not be fetched"))
    config = tmp_path / "configs"
    (config / "blocklists").mkdir(parents=True)
    lst = config / "blocklists" / "urls.txt"
    lst.write_text(hashlib.sha256(normalise_url(listed).encode()).hexdigest() + "\n")
    lst.chmod(0o600)
    write_settings(config, [local_source("site", server.url("/site/"))], blocklists=[
        {"id": "test-urls", "kind": "url-sha256", "path": "blocklists/urls.txt"}])
    proc = _crawl_verbose(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]

    assert not server.was_requested("/site/listed.html")
    assert all("authorization" not in r.headers for r in server.requests)
    (record,) = read_incidents(tmp_path / "data")
    assert record["content"]["url"] == "http://***@" + listed.split("@", 1)[1]
    assert record["content"]["redirect_chain"] == [server.url("/site/hop")]
    run_dir = tmp_path / "data" / "runs" / json.loads(proc.stdout)["run_id"]
    rows = pq.read_table(run_dir / "rejections.parquet").to_pylist()
    assert not [r for r in rows if "listed" in r["url"] or "listed" in (r["detail"] or "")]
    _assert_secret_nowhere(proc, tmp_path / "data")
