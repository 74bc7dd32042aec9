"""Log redaction: image URLs, listed URLs and URL credentials never reach a log line, item dumps
never do.

Scrapy logs "Crawled (200) <GET url>" before any callback could know the image is a blocklist
hit, so every record is redacted as it is made (:meth:`RedactImageUrls.factory`); item log
lines name only the item's source (:class:`QuietItems`). The same factory replaces the user
info of every URL in a message or a traceback with ``***`` (``pipeline.safety.urls``), so a
password in a link or a redirect hop ("Redirecting (302) to <GET http://u:pw@host/>") is never
logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from scrapy.logformatter import LogFormatter, LogFormatterResult

from crawler.screening import CrawlScreen
from pipeline.runs.credentials import strip_credentials

_URL_RE = re.compile(r"https?://[^\s<>'\"]+")
_TRAILING = ".,;:)]}"


class RedactImageUrls(logging.Filter):
    """Replace image URLs (and URL-listed URLs) in log records with ``<image URL>``, and the
    user info of any URL with ``***``.

    Installed as the log record factory for the crawl (:meth:`factory`). Image URLs stay in
    items/rejections; logs are not the place for them, since a line may be written before the
    image is screened.
    """

    def __init__(self, screen: CrawlScreen):
        super().__init__()
        self.screen = screen

    def factory(self, inner: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
        """A log record factory that redacts each record as it is made."""

        root = logging.getLogger()

        def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = inner(*args, **kwargs)
            # Scrapy leaves loggers at DEBUG and filters in its root handler: a record no
            # handler will emit is not worth a regex (most of a crawl's records).
            if not root.handlers or any(record.levelno >= h.level for h in root.handlers) \
                    or logging.getLogger(record.name).handlers:
                self.filter(record)
            return record

        return make

    def _hidden(self, url: str) -> bool:
        screen = self.screen
        if url in screen.image_urls or url in screen.withheld_urls:
            return True
        return screen.screener.has_url_lists and screen.screener.match_url(url) is not None

    def _learn(self, args: Any) -> None:
        """Requests passed as log arguments (e.g. a redirect's target, logged before it
        reaches the consent gate) tell which URLs are images."""
        values = args.values() if isinstance(args, dict) else args if isinstance(
            args, tuple) else ()
        for value in values:
            meta = getattr(value, "meta", None)
            if isinstance(meta, dict) and meta.get("clearance_kind") == "image":
                self.screen.image_urls.add(value.url)

    def filter(self, record: logging.LogRecord) -> bool:
        self._learn(record.args)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is left to logging itself
            return True
        changed = False

        def replace(match: re.Match[str]) -> str:
            nonlocal changed
            url = match.group(0)
            core = url.rstrip(_TRAILING)
            if self._hidden(url) or self._hidden(core):
                changed = True
                return "<image URL>" + url[len(core):]
            return url

        redacted = _URL_RE.sub(replace, message) if "://" in message else message
        redacted = strip_credentials(redacted)
        if redacted != message:
            record.msg = redacted
            record.args = None
        if record.exc_info and record.exc_text is None:
            if changed:
                record.exc_info = None  # a traceback could repeat the image URL
            else:
                # A download error may quote a URL with its credentials; formatted once here,
                # the handlers' formatters reuse exc_text.
                text = logging.Formatter().formatException(record.exc_info)
                record.exc_text = strip_credentials(text)
        return True


def _item_ref(item: Any) -> str:
    """An item as log lines may name it: its source only (an item may be withdrawn later as a
    hit's neighbour, and its hashes must then appear nowhere but in the incident)."""
    if isinstance(item, dict):
        source = item.get("source_id")
    else:  # a crawler.items.FetchedImage between stages
        source = getattr(getattr(item, "source", None), "id", None)
    return f"an item of source {source}" if source else "an item"


class QuietItems(LogFormatter):
    """Scrapy's log lines for items without the item (its URL and hashes stay in the run)."""

    def scraped(self, item: Any, response: Any, spider: Any) -> LogFormatterResult:
        return {"level": logging.DEBUG, "msg": "Scraped %(item)s",
                "args": {"item": _item_ref(item)}}

    def dropped(self, item: Any, exception: BaseException, response: Any,
                spider: Any) -> LogFormatterResult:
        result = super().dropped(item, exception, response, spider)
        result["args"] = {"exception": exception, "item": _item_ref(item)}
        return result

    def item_error(self, item: Any, exception: BaseException, response: Any,
                   spider: Any) -> LogFormatterResult:
        return {"level": logging.ERROR, "msg": "Error processing %(item)s",
                "args": {"item": _item_ref(item)}}
