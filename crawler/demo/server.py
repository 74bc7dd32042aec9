"""A small real HTTP server on 127.0.0.1: a static directory plus programmable routes.

It serves the demo site (``clearance demo``) and is the core of the integration-test mock
server (``tests/mockserver.py``) and of the benchmark's fallback server. It speaks HTTP/1.1
with keep-alive (as Scrapy expects), binds port 0, runs one daemon thread per connection,
records every request it receives *before* answering it (so a test can assert what was never
asked for), and stops cleanly: open keep-alive connections are shut down and every handler
thread is joined, so no thread outlives :meth:`LocalServer.stop`.

Run ``python -m crawler.demo.server --port 8000`` to serve a freshly generated demo site for
the example ``configs/`` at the repository root.
"""

from __future__ import annotations

import mimetypes
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

HOST = "127.0.0.1"


class AccessRecord(NamedTuple):
    """One request as the server received it; header names are lower-cased."""

    method: str
    path: str  # path with query string, exactly as sent on the request line
    headers: dict[str, str]
    time: float  # time.time() when the request line and headers had been read


class AccessLog:
    """A thread-safe, append-only list of :class:`AccessRecord` (``clear()`` aside)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[AccessRecord] = []

    def append(self, record: AccessRecord) -> None:
        with self._lock:
            self._records.append(record)

    def snapshot(self) -> list[AccessRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def __iter__(self) -> Iterator[AccessRecord]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def __getitem__(self, index: int) -> AccessRecord:
        with self._lock:
            return self._records[index]

    def __repr__(self) -> str:
        return f"AccessLog({self.snapshot()!r})"


@dataclass(frozen=True)
class IncomingRequest:
    """What a route handler is given."""

    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


@dataclass(frozen=True)
class Response:
    """A canned answer. ``stream``, when set, is called per request for the body chunks, which
    are sent without Content-Length, the connection closing to end the body. A ``Content-Length``
    in ``headers`` overrides the computed one (to lie about the length, say)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = "text/html; charset=utf-8"
    delay: float = 0.0  # seconds before the status line is sent
    stream: Callable[[], Iterable[bytes]] | None = None


Handler = Callable[[IncomingRequest], Response]

_TEXT_TYPES = {".html": "text/html; charset=utf-8", ".txt": "text/plain; charset=utf-8"}


def guess_content_type(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in _TEXT_TYPES:
        return _TEXT_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ClearanceDemo/0.1"
    timeout = 30  # an idle keep-alive connection ends on its own
    server: _ThreadingServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silenced: the structured access log replaces the stderr lines."""

    def _serve(self) -> None:
        owner = self.server.owner
        headers = {name.lower(): value for name, value in self.headers.items()}
        owner.requests.append(AccessRecord(self.command, self.path, headers, time.time()))
        length = int(headers.get("content-length", "0") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        parts = urlsplit(self.path)
        request = IncomingRequest(self.command, parts.path, parts.query, headers, body)
        try:
            response = owner.respond(request)
        except Exception as exc:  # a broken test handler must not hang the client
            response = Response(500, f"handler failed: {exc!r}".encode(), content_type="text/plain")
        if response.delay > 0 and owner.stopping.wait(response.delay):
            self.close_connection = True
            return
        self._send(response)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = _serve

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        given = {name.lower() for name in response.headers}
        if response.content_type is not None and "content-type" not in given:
            self.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.stream is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        elif "content-length" not in given:
            self.send_header("Content-Length", str(len(response.body)))
        elif _declared_length(response) != len(response.body):
            self.close_connection = True  # the client cannot find the next response otherwise
        self.end_headers()
        if self.command == "HEAD":
            return
        if response.stream is not None:
            for chunk in response.stream():
                if self.server.owner.stopping.is_set():
                    break
                self.wfile.write(chunk)
        else:
            self.wfile.write(response.body)


def _declared_length(response: Response) -> int | None:
    for name, value in response.headers.items():
        if name.lower() == "content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class _ThreadingServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # LocalServer.stop joins the handler threads itself
    allow_reuse_address = True

    def __init__(self, owner: LocalServer) -> None:
        self.owner = owner
        super().__init__((owner.host, owner.wanted_port), _RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"localserver-{self.server_address[1]}-conn",
            daemon=True,
        )
        self.owner._track(thread, request)
        thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.owner._untrack(threading.current_thread(), request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # client went away, or we shut the socket on stop
            return
        super().handle_error(request, client_address)


class LocalServer:
    """Serve ``root`` (optional) and programmable routes on 127.0.0.1, port 0 by default.

    Routes win over files: an exact path with its query, then an exact path, then the longest
    prefix route; then the static directory (a directory serves its ``index.html``; no
    listings); then 404. A route is a :class:`Response` or a handler returning one.
    """

    def __init__(self, root: str | Path | None = None, host: str = HOST, port: int = 0) -> None:
        self.root = Path(root).resolve() if root is not None else None
        self.host = host
        self.wanted_port = port  # 0: any free port (tests); fixed only for the command line
        self.requests = AccessLog()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._routes: dict[str, Response | Handler] = {}
        self._prefixes: dict[str, Response | Handler] = {}
        self._threads: set[threading.Thread] = set()
        self._sockets: set[socket.socket] = set()
        self._httpd: _ThreadingServer | None = None
        self._serve_thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> LocalServer:
        if self._httpd is not None:
            raise RuntimeError("server already started")
        self.stopping.clear()
        self._httpd = _ThreadingServer(self)
        self._serve_thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"localserver-{self.port}",
            daemon=True,
        )
        self._serve_thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, cut open connections, join every thread; raise if one hangs."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        if self._serve_thread is not None:
            self._serve_thread.join(timeout)
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t for t in threads if t.is_alive()]
        if alive:
            raise RuntimeError(f"{len(alive)} server thread(s) did not stop within {timeout}s")

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _track(self, thread: threading.Thread, sock: socket.socket) -> None:
        with self._lock:
            self._threads.add(thread)
            self._sockets.add(sock)

    def _untrack(self, thread: threading.Thread, sock: socket.socket) -> None:
        with self._lock:
            self._threads.discard(thread)
            self._sockets.discard(sock)

    # ------------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``, without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    # ------------------------------------------------------------------ routes

    def add_route(self, path: str, answer: Response | Handler, prefix: bool = False) -> None:
        """Answer ``path`` (with ``?query`` to match it exactly, or as a prefix) with ``answer``."""
        if not path.startswith("/"):
            raise ValueError(f"route paths start with '/': {path!r}")
        with self._lock:
            (self._prefixes if prefix else self._routes)[path] = answer

    def remove_route(self, path: str) -> None:
        with self._lock:
            self._routes.pop(path, None)
            self._prefixes.pop(path, None)

    def respond(self, request: IncomingRequest) -> Response:
        full = request.path + ("?" + request.query if request.query else "")
        with self._lock:
            answer = self._routes.get(full) or self._routes.get(request.path)
            if answer is None:
                matches = [p for p in self._prefixes if full.startswith(p)]
                if matches:
                    answer = self._prefixes[max(matches, key=len)]
        if answer is None:
            return self._static(request.path)
        return answer if isinstance(answer, Response) else answer(request)

    def _static(self, path: str) -> Response:
        not_found = Response(404, b"not found\n", content_type="text/plain; charset=utf-8")
        if self.root is None:
            return not_found
        relative = unquote(path).lstrip("/")
        if "\x00" in relative or any(part == ".." for part in relative.split("/")):
            return not_found
        target = (self.root / relative).resolve()
        if not target.is_relative_to(self.root):
            return not_found
        if target.is_dir():
            target = target / "index.html"
        try:
            body = target.read_bytes()
        except OSError:
            return not_found
        return Response(200, body, content_type=guess_content_type(target))


def serve_directory(root: str | Path) -> tuple[str, Callable[[], None], AccessLog]:
    """Serve ``root`` on 127.0.0.1 (port 0) in daemon threads.

    Returns ``(base_url, stop, access_log)``; ``base_url`` has no trailing slash and
    ``stop()`` joins every thread the server started.
    """
    server = LocalServer(root).start()
    return server.base_url, server.stop, server.requests


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """``python -m crawler.demo.server [--port 8000] [--root DIR]``: serve the demo site."""
    import argparse
    import signal
    import tempfile

    from crawler.demo.site import generate_site

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any)")
    parser.add_argument("--root", type=Path, help="a generated site (default: generate one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="clearance-demo-site-") as tmp:
        root = args.root or Path(tmp)
        if args.root is None:
            generate_site(root)
        server = LocalServer(root, port=args.port).start()
        print(f"serving {root} at {server.base_url}/ (Ctrl-C to stop)", flush=True)
        signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as cleanly as Ctrl-C
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
