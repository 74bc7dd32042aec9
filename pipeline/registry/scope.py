"""Consent scope: URL-prefix matching that cannot be fooled by look-alike URLs.

A scope entry is an absolute URL prefix. A URL is inside it when scheme and host are equal
(case-insensitive), the effective port is equal, and the path starts with the prefix's path
on a segment boundary when the prefix path ends with ``/``. ``https://a.example/gallery/`` does
not cover ``https://a.example.evil.test/gallery/``, ``https://a.example/gallery-private/`` or
``https://user@a.example/...`` tricks, because we compare parsed parts, not strings.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}

# Fixed per-host policy files: inside consent for every origin a source's scope names, because
# honouring a host's opt-outs requires reading them (DESIGN.md "Signals honoured").
POLICY_PATHS: tuple[str, ...] = ("/robots.txt", "/ai.txt", "/.well-known/tdmrep.json")


class _Parsed(NamedTuple):
    scheme: str
    host: str
    port: int
    path: str


@lru_cache(maxsize=65536)
def _parse(url: str) -> _Parsed | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username or parts.password:
        return None
    path = unquote(parts.path or "/")
    if "/../" in path + "/" or "/./" in path + "/":
        # Dot segments are normalised by servers; refuse to reason about them.
        return None
    return _Parsed(scheme, parts.hostname.lower().rstrip("."), port or _DEFAULT_PORTS[scheme], path)


def origin(url: str) -> str | None:
    parsed = _parse(url)
    if parsed is None:
        return None
    return f"{parsed.scheme}://{parsed.host}:{parsed.port}"


def url_in_prefix(url: str, prefix: str) -> bool:
    u, p = _parse(url), _parse(prefix)
    if u is None or p is None:
        return False
    if (u.scheme, u.host, u.port) != (p.scheme, p.host, p.port):
        return False
    if p.path in ("", "/"):
        return True
    if p.path.endswith("/"):
        return u.path.startswith(p.path)
    return u.path == p.path or u.path.startswith(p.path + "/")


def url_in_prefixes(url: str, prefixes: Iterable[str]) -> bool:
    return any(url_in_prefix(url, prefix) for prefix in prefixes)


def is_policy_url(url: str, prefixes: Iterable[str]) -> bool:
    """True for /robots.txt, /ai.txt or /.well-known/tdmrep.json of an origin in scope."""
    u = _parse(url)
    if u is None or u.path not in POLICY_PATHS:
        return False
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        return False
    return any(origin(prefix) == origin(url) for prefix in prefixes)
