"""URL normalisation: the form ``url-*`` hash lists hash (and URL takedowns will match)."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit, urlunsplit

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
