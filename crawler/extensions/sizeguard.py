"""Size guard: `limits.max_bytes` enforced while streaming, with a reason the errback can read.

Scrapy's DOWNLOAD_MAXSIZE also stops oversized bodies, but a body without Content-Length that
grows past it ends in a bare ``DownloadCancelledError``. This guard stops the download itself
(``StopDownload``) as soon as the declared or received size passes the limit, and leaves the
explanation in ``request.meta`` so the exclusion is recorded as ``too_large`` with its figures.
DOWNLOAD_MAXSIZE stays on as the backstop (and bounds decompressed bodies).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.exceptions import StopDownload

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

from crawler.meta import META_RECEIVED, META_TOO_LARGE


class SizeGuard:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SizeGuard:
        guard = cls(crawler.settings.getint("DOWNLOAD_MAXSIZE"))
        crawler.signals.connect(guard.headers_received, signal=signals.headers_received)
        crawler.signals.connect(guard.bytes_received, signal=signals.bytes_received)
        return guard

    def _limit(self, request: Request) -> int:
        return int(request.meta.get("download_maxsize") or self.max_bytes)

    def headers_received(self, headers: Any, body_length: int | str | None, request: Request,
                         **kwargs: Any) -> None:
        limit = self._limit(request)
        try:  # some download handlers pass the Content-Length header as it was sent (a str)
            declared = None if body_length is None else int(body_length)
        except ValueError:
            declared = None  # a malformed length: bytes_received still bounds the body
        if limit and declared is not None and declared > limit:
            body_length = declared
            request.meta[META_TOO_LARGE] = (
                f"declared Content-Length {body_length} exceeds limits.max_bytes={limit}; "
                "download not started"
            )
            raise StopDownload(fail=True)

    def bytes_received(self, data: bytes, request: Request, **kwargs: Any) -> None:
        received = request.meta.get(META_RECEIVED, 0) + len(data)
        request.meta[META_RECEIVED] = received
        limit = self._limit(request)
        if limit and received > limit:
            request.meta[META_TOO_LARGE] = (
                f"received more than limits.max_bytes={limit} bytes; download stopped"
            )
            raise StopDownload(fail=True)
