"""URL normalisation: the form ``url-*`` hash lists hash (and URL takedowns will match)."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Characters left as they are in a path or query (RFC 3986 pchar / query, minus '%').
_KEEP = _UNRESERVED | frozenset("!$&'()*+,;=:@/?")
_ESCAPE = re.compile(r"%([0-9a-fA-F]{2})")


def _normalise_component(part: str) -> str:
    def unescape(m: re.Match[str]) -> str:
        ch = chr(int(m.group(1), 16))
        return ch if ch in _UNRESERVED else "%" + m.group(1).upper()

    part = _ESCAPE.sub(unescape, part)
    out = []
    for i, ch in enumerate(part):
        if ch in _KEEP:
            out.append(ch)
        elif ch == "%" and _ESCAPE.match(part, i):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def _remove_dot_segments(path: str) -> str:
    out: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    tail = "/" if path.endswith(("/.", "/..")) else ""
    return "/" + "/".join(out) + tail


def normalise_url(url: str) -> str:
    """The URL form that ``url-*`` lists hash (documented in the README, "Hash lists").

    Surrounding whitespace stripped; scheme and host lower-cased; host IDNA-encoded, trailing
    dot dropped; user info dropped; the scheme's default port dropped; empty path becomes
    ``/``; ``.``/``..`` segments removed; in path and query, percent-escapes of unreserved
    characters decoded, other escapes upper-cased, and characters outside RFC 3986 encoded as
    UTF-8 escapes; an empty query (``?``) and the fragment dropped. Query order is kept.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    host = host.lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    path = _remove_dot_segments(_normalise_component(parts.path or "/"))
    query = _normalise_component(parts.query)
    return urlunsplit((scheme, netloc, path, query, ""))


def url_digest(url: str, algorithm: str) -> bytes:
    return hashlib.new(algorithm, normalise_url(url).encode("utf-8")).digest()


# URLs that normalise_url leaves as they are: lower-case http(s) scheme and ASCII host (no user
# info, port or trailing dot), a path of RFC 3986 characters without '%', an optional non-empty
# query of the same, no fragment; and no dot segment (_DOT_SEGMENT_RE; RE2 has no lookahead).
# tests/test_impact_index.py holds the pattern to normalise_url on URLs built to break it.
_PCHARS = r"A-Za-z0-9\-._~!$&'()*+,;=:@"
_LABEL = r"[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?"
_NORMAL_URL_RE = rf"^https?://{_LABEL}(?:\.{_LABEL})*(?:/[{_PCHARS}]*)+(?:\?[{_PCHARS}/?]+)?$"
_DOT_SEGMENT_RE = r"/\.\.?(?:/|\?|$)"


def is_normal(column: pa.Array) -> pa.Array:
    """Which URLs :func:`normalise_url` certainly leaves as they are (vectorised; False for
    null)."""
    shaped = pc.fill_null(pc.match_substring_regex(column, _NORMAL_URL_RE), False)
    dotted = pc.fill_null(pc.match_substring_regex(column, _DOT_SEGMENT_RE), True)
    return pc.and_(shaped, pc.invert(dotted))


def normalise_urls(column: pa.Array) -> pa.Array:
    """:func:`normalise_url` of every non-null URL of a column (nulls stay null): a URL already
    in normal form (the usual case, :func:`is_normal`) is its own normalisation; only the
    others go through :func:`normalise_url`, one by one. A URL it cannot parse (``ValueError``:
    an unbalanced IPv6 bracket, say) stays as it is: it can equal only itself."""
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    odd = np.flatnonzero(~is_normal(column).to_numpy(zero_copy_only=False) & valid)
    if not len(odd):
        return column
    fixed = [_normalised_or_raw(u) for u in column.take(pa.array(odd)).to_pylist()]
    out = column.to_numpy(zero_copy_only=False).astype(object)
    out[odd] = fixed
    return pa.array(out, pa.string())


def _normalised_or_raw(url: str) -> str:
    try:
        return normalise_url(url)
    except ValueError:
        return url
