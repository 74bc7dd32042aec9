"""The local HTTP server the integration tests stand on: routes, log, delays, gzip, shutdown."""

from __future__ import annotations

import gzip
import http.client
import json
import threading
import time
import zlib
from pathlib import Path
from urllib.request import Request, urlopen

import pytest
from mockserver import IncomingRequest, MockServer, Response, gzip_bomb_bytes

from crawler.demo.server import serve_directory


def _server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("localserver-")]


def _get(server: MockServer, path: str, method: str = "GET", **headers: str):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(method, path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response, body


def test_static_directory_index_404_and_no_escape(tmp_path: Path) -> None:
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<p>home</p>")
    (root / "sub" / "index.html").write_text("<p>sub</p>")
    (root / "pic.png").write_bytes(b"\x89PNG fake")
    (tmp_path / "secret.txt").write_text("outside the root")
    with MockServer(root) as server:
        response, body = _get(server, "/")
        assert (response.status, body) == (200, b"<p>home</p>")
        assert response.getheader("Content-Type") == "text/html; charset=utf-8"
        assert _get(server, "/sub/")[1] == b"<p>sub</p>"
        response, body = _get(server, "/pic.png")
        assert response.getheader("Content-Type") == "image/png" and body == b"\x89PNG fake"
        assert _get(server, "/missing.html")[0].status == 404
        assert _get(server, "/../secret.txt")[0].status == 404
        assert _get(server, "/%2e%2e/secret.txt")[0].status == 404


def test_access_log_records_method_path_query_headers_and_time(mockserver: MockServer) -> None:
    mockserver.route("/a", body="<p>a</p>")
    before = time.time()
    _get(mockserver, "/a?x=1&y=2", **{"User-Agent": "ClearanceBot/0.1"})
    _get(mockserver, "/a")
    _get(mockserver, "/nowhere", method="HEAD")
    method, path, headers, at = mockserver.requests[0]
    assert (method, path) == ("GET", "/a?x=1&y=2")
    assert headers["user-agent"] == "ClearanceBot/0.1"
    assert before <= at <= time.time()
    assert mockserver.paths() == ["/a?x=1&y=2", "/a", "/nowhere"]
    assert mockserver.count("/a") == 2 and mockserver.count("/a?x=1&y=2") == 1
    assert mockserver.was_requested("/nowhere", method="HEAD")
    assert not mockserver.was_requested("/nowhere", method="GET")
    assert not mockserver.was_requested("/b")
    mockserver.requests.clear()
    assert mockserver.paths() == []


def test_routes_status_headers_handlers_and_prefixes(mockserver: MockServer) -> None:
    mockserver.route(
        "/gone", status=410, body="gone", headers={"X-Robots-Tag": "noai"}, content_type="text/x"
    )
    mockserver.route("/files/", body="prefix", prefix=True)
    mockserver.route("/files/deep/", body="longer prefix", prefix=True)
    mockserver.route("/q?v=1", body="exact with query")

    def echo(request: IncomingRequest) -> Response:
        payload = {"method": request.method, "query": request.query, "body": request.body.decode()}
        return Response(201, json.dumps(payload).encode(), content_type="application/json")

    mockserver.route("/echo", handler=echo)
    response, body = _get(mockserver, "/gone")
    assert (response.status, body) == (410, b"gone")
    assert response.getheader("X-Robots-Tag") == "noai"
    assert response.getheader("Content-Type") == "text/x"
    assert _get(mockserver, "/files/a/b.html")[1] == b"prefix"
    assert _get(mockserver, "/files/deep/x")[1] == b"longer prefix"
    assert _get(mockserver, "/q?v=1")[1] == b"exact with query"
    assert _get(mockserver, "/q?v=2")[0].status == 404
    request = Request(mockserver.url("/echo?k=v"), data=b"hello", method="POST")
    with urlopen(request, timeout=10) as reply:
        assert reply.status == 201
        assert json.loads(reply.read()) == {"method": "POST", "query": "k=v", "body": "hello"}


def test_a_failing_handler_answers_500(mockserver: MockServer) -> None:
    def broken(request: IncomingRequest) -> Response:
        raise ValueError("boom")

    mockserver.route("/broken", handler=broken)
    response, body = _get(mockserver, "/broken")
    assert response.status == 500 and b"boom" in body


def test_redirects_are_logged_hop_by_hop(mockserver: MockServer) -> None:
    mockserver.redirect("/old", "/middle", status=301)
    mockserver.redirect("/middle", mockserver.url("/new"))
    mockserver.route("/new", body="arrived")
    response, _ = _get(mockserver, "/old")
    assert response.status == 301 and response.getheader("Location") == "/middle"
    mockserver.requests.clear()
    with urlopen(mockserver.url("/old"), timeout=10) as reply:
        assert reply.read() == b"arrived"
    assert mockserver.paths() == ["/old", "/middle", "/new"]


def test_delay_holds_the_answer_but_logs_the_request_on_arrival(mockserver: MockServer) -> None:
    mockserver.route("/robots.txt", body="User-agent: *\nAllow: /\n", delay=0.5)
    started = time.monotonic()
    done: list[float] = []
    worker = threading.Thread(
        target=lambda: (_get(mockserver, "/robots.txt"), done.append(time.monotonic()))
    )
    worker.start()
    assert mockserver.wait_for("/robots.txt", timeout=5)
    assert time.monotonic() - started < 0.4 and not done
    worker.join(10)
    assert done and done[0] - started >= 0.5


def test_gzip_and_a_compressed_bomb(mockserver: MockServer) -> None:
    mockserver.gzip("/page.html", "<p>compressed</p>")
    response, body = _get(mockserver, "/page.html", **{"Accept-Encoding": "gzip"})
    assert response.getheader("Content-Encoding") == "gzip"
    assert gzip.decompress(body) == b"<p>compressed</p>"

    size = 100 * 2**20
    mockserver.gzip_bomb("/bomb.html", expanded_size=size)
    response, body = _get(mockserver, "/bomb.html")
    assert response.getheader("Content-Encoding") == "gzip"
    assert len(body) < 200_000 and body == gzip_bomb_bytes(size)
    inflater, expanded, pending = zlib.decompressobj(31), 0, body
    while pending:  # bounded chunks: the test itself must not allocate the 100 MB
        expanded += len(inflater.decompress(pending, 1 << 20))
        pending = inflater.unconsumed_tail
    expanded += len(inflater.flush())
    assert expanded == size


def test_stream_without_content_length_and_head(mockserver: MockServer) -> None:
    mockserver.stream("/big.bin", 3_000_001, chunk_size=65_536, fill=b"ab")
    response, body = _get(mockserver, "/big.bin")
    assert response.getheader("Content-Length") is None
    assert len(body) == 3_000_001 and body[:4] == b"abab"
    mockserver.route("/page", body="x" * 1234)
    response, body = _get(mockserver, "/page", method="HEAD")
    assert response.getheader("Content-Length") == "1234" and body == b""


def test_lying_content_length_closes_the_connection(mockserver: MockServer) -> None:
    mockserver.route("/short", body="abc", headers={"Content-Length": "10"})
    conn = http.client.HTTPConnection("127.0.0.1", mockserver.port, timeout=10)
    conn.request("GET", "/short")
    with pytest.raises(http.client.IncompleteRead):
        conn.getresponse().read()
    conn.close()


def test_stop_joins_every_thread_despite_open_and_slow_connections(tmp_path: Path) -> None:
    assert _server_threads() == []
    server = MockServer().start()
    server.route("/slow", body="late", delay=30)
    server.route("/fast", body="ok")
    idle = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    idle.request("GET", "/fast")
    assert idle.getresponse().read() == b"ok"  # keep-alive: the handler thread waits on it
    slow = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    slow.request("GET", "/slow")
    assert server.wait_for("/slow")
    assert len(_server_threads()) >= 3
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 3
    assert _server_threads() == []
    idle.close()
    slow.close()
    server.stop()  # idempotent


def test_serve_directory_returns_url_stop_and_log(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("hi")
    base_url, stop, log = serve_directory(tmp_path)
    try:
        assert base_url.startswith("http://127.0.0.1:") and not base_url.endswith("/")
        with urlopen(base_url + "/", timeout=10) as reply:
            assert reply.read() == b"hi"
        assert [(r.method, r.path) for r in log] == [("GET", "/")]
    finally:
        stop()
    assert _server_threads() == []
