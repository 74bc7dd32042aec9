"""A real local HTTP server for integration tests, built on :mod:`crawler.demo.server`.

Start it with ``with MockServer() as server:`` (or the ``mockserver`` fixture), program it with
:meth:`MockServer.route`, :meth:`~MockServer.redirect`, :meth:`~MockServer.gzip`,
:meth:`~MockServer.gzip_bomb` and :meth:`~MockServer.stream`, point the crawler at
``server.url("/...")``, then read ``server.requests`` to assert what was (not) requested.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from crawler.demo.server import (
    AccessLog,
    AccessRecord,
    Handler,
    IncomingRequest,
    LocalServer,
    Response,
)

__all__ = [
    "AccessLog",
    "AccessRecord",
    "IncomingRequest",
    "MockServer",
    "Response",
    "gzip_bomb_bytes",
    "gzip_bytes",
]

HTML = "text/html; charset=utf-8"
_MIB = 1 << 20


def gzip_bytes(data: bytes) -> bytes:
    """gzip ``data`` deterministically (zero mtime, no file name)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


@lru_cache(maxsize=4)
def gzip_bomb_bytes(expanded_size: int = 100 * _MIB) -> bytes:
    """A gzip stream of ``expanded_size`` zero bytes (100 MiB -> ~100 KB), built a MiB at a time."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(min(_MIB, expanded_size))
    chunks, left = [], expanded_size
    while left > 0:
        piece = block if left >= len(block) else block[:left]
        chunks.append(compressor.compress(piece))
        left -= len(piece)
    chunks.append(compressor.flush())
    return b"".join(chunks)


class MockServer(LocalServer):
    """:class:`~crawler.demo.server.LocalServer` with test-friendly helpers.

    Route helpers return the route's absolute URL. Header names in the access log are
    lower-cased; ``path`` there includes the query string.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        super().__init__(root)

    def __enter__(self) -> MockServer:
        self.start()
        return self

    # ------------------------------------------------------------------ programming

    def route(
        self,
        path: str,
        status: int = 200,
        body: bytes | str = b"",
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        content_type: str | None = HTML,
        handler: Handler | None = None,
        prefix: bool = False,
    ) -> str:
        """Answer ``path`` with a canned response, or with ``handler(request) -> Response``.

        ``delay`` holds the status line back that many seconds (a slow robots.txt, say);
        ``prefix=True`` answers every path starting with ``path`` (longest prefix wins).
        """
        if handler is not None:
            self.add_route(path, handler, prefix=prefix)
        else:
            data = body.encode("utf-8") if isinstance(body, str) else body
            response = Response(status, data, dict(headers or {}), content_type, delay)
            self.add_route(path, response, prefix=prefix)
        return self.url(path)

    def redirect(self, path: str, location: str, status: int = 302, delay: float = 0.0) -> str:
        """Redirect ``path`` to ``location`` (absolute, or a path on this server)."""
        body = f'<a href="{location}">moved</a>'.encode()
        return self.route(path, status, body, {"Location": location}, delay)

    def gzip(
        self,
        path: str,
        data: bytes | str,
        content_type: str | None = HTML,
        headers: dict[str, str] | None = None,
    ) -> str:
        """Serve ``data`` gzip-compressed with ``Content-Encoding: gzip``."""
        raw = data.encode("utf-8") if isinstance(data, str) else data
        return self.route(
            path,
            body=gzip_bytes(raw),
            headers={"Content-Encoding": "gzip", **(headers or {})},
            content_type=content_type,
        )

    def gzip_bomb(
        self, path: str, expanded_size: int = 100 * _MIB, content_type: str | None = HTML
    ) -> str:
        """Serve a small gzip body (``Content-Encoding: gzip``) expanding to ``expanded_size``."""
        return self.route(
            path,
            body=gzip_bomb_bytes(expanded_size),
            headers={"Content-Encoding": "gzip"},
            content_type=content_type,
        )

    def stream(
        self,
        path: str,
        size: int,
        content_type: str | None = "application/octet-stream",
        chunk_size: int = 64 * 1024,
        fill: bytes = b"\0",
        delay: float = 0.0,
    ) -> str:
        """Send ``size`` bytes without Content-Length; closing the connection ends the body."""
        chunk = (fill * (chunk_size // len(fill) + 1))[:chunk_size]

        def chunks() -> Iterator[bytes]:
            left = size
            while left > 0:
                piece = chunk if left >= len(chunk) else chunk[:left]
                left -= len(piece)
                yield piece

        response = Response(200, b"", {}, content_type, delay, stream=chunks)
        self.add_route(path, response)
        return self.url(path)

    # ------------------------------------------------------------------ the access log

    def paths(self) -> list[str]:
        """Every requested path (with its query), in arrival order."""
        return [record.path for record in self.requests]

    def _matches(self, record: AccessRecord, path: str) -> bool:
        return record.path == path if "?" in path else record.path.split("?", 1)[0] == path

    def count(self, path: str, method: str | None = None) -> int:
        """How many requests were for ``path`` (query ignored unless ``path`` has one)."""
        return sum(
            1
            for record in self.requests
            if self._matches(record, path) and (method is None or record.method == method)
        )

    def was_requested(self, path: str, method: str | None = None) -> bool:
        return self.count(path, method) > 0

    def wait_for(self, path: str, timeout: float = 5.0) -> bool:
        """Block until ``path`` has been requested (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while not self.was_requested(path):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True
