"""URL credentials: a URL's user info (``user:password@``) never reaches a row, a rejection,
an incident record, a report or a log line.

The run writer applies :func:`redact_credentials` to every row it writes, the incident writer
to every record, the crawl's log redaction :func:`strip_credentials` to every log line. Here,
in the bottom package, because everything above it writes rows.
"""

from __future__ import annotations

import re
from typing import Any

# URL user info (RFC 3986 3.2.1): what lies between "//" and the last "@" of the authority.
# Redacted whole (user name too: tokens sit there, e.g. https://<token>@host/), as ``***``.
CREDENTIALS_MASK = "***"
# In free text an authority ends at "/", "?", "#", whitespace or a quote. A backslash opens one
# as "/" does (WHATWG parsing of http URLs) but does not end one (urlsplit reads
# http://u:p\@h/ as user "u", password "p\").
_TEXT_AUTHORITY = re.compile(r"[/\\]{2}([^/?#\s<>\"'`]*)")
# At the start of a URL: [scheme:]//, then everything up to the first "/", "?" or "#"
# (urlsplit's netloc: the tabs and newlines it removes do not end it).
_URL_AUTHORITY = re.compile(r"[\x00-\x20]*(?:[A-Za-z][A-Za-z0-9+.\t\n\r-]*:)?[\t\n\r]*"
                            r"[/\\][\t\n\r]*[/\\]([^/?#]*)")
# Row fields holding one URL (the row's identity): only that URL's own user info is redacted,
# so an item's `url` still names what it served; every other string is treated as text.
URL_FIELDS = frozenset({"url", "page_url"})


def _mask_authority(authority: str) -> str:
    userinfo, at, hostport = authority.rpartition("@")
    if not at or not userinfo:
        return authority
    return f"{CREDENTIALS_MASK}@{hostport}"


def redact_userinfo(url: str) -> str:
    """``url`` with its user info (``user:password@``) replaced by ``***@``; else unchanged.

    ``http://user:pw@host/p?q=a@b`` -> ``http://***@host/p?q=a@b``: only the URL's own
    authority is touched (an ``@`` in the path or query is not user info).
    """
    if "@" not in url:
        return url
    match = _URL_AUTHORITY.match(url)
    if match is None:
        return url
    start, end = match.span(1)
    masked = _mask_authority(match.group(1))
    return url if masked == match.group(1) else url[:start] + masked + url[end:]


def strip_credentials(text: str) -> str:
    """``text`` with the user info of every URL in it replaced by ``***@`` (with or without a
    scheme: ``//user:pw@host``); an ``@`` outside an authority is left alone."""
    if "@" not in text:
        return text
    return _TEXT_AUTHORITY.sub(
        lambda m: m.group(0)[:2] + _mask_authority(m.group(1)), text)


def redact_credentials(value: Any, url_fields: frozenset[str] = URL_FIELDS,
                       _key: str | None = None) -> Any:
    """A row (dict, list, str; nested) with no URL credentials: fields named in
    ``url_fields`` through :func:`redact_userinfo`, every other string through
    :func:`strip_credentials`. Returns a copy where anything changed."""
    if isinstance(value, str):
        if "@" not in value:
            return value
        return redact_userinfo(value) if _key in url_fields else strip_credentials(value)
    if isinstance(value, dict):
        return {k: redact_credentials(v, url_fields, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_credentials(v, url_fields, _key) for v in value]
    return value
