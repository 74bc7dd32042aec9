"""``noai`` / ``noimageai`` in ``X-Robots-Tag`` headers and ``<meta name="robots">``.

The two directives were introduced by DeviantArt (2022) and are now widely emitted: ``noai``
asks that the content not be used for AI, ``noimageai`` that the images not be. So for a page
only ``noai`` refuses, and for an image both do. Where the image's own response carries no
directive, the page it was found on speaks for it: call with the page's headers or HTML and
``for_image=True`` (this module does not track which page an image came from).

Header syntax (Google's documented form, also followed by other crawlers): a response may carry
several ``X-Robots-Tag`` fields, each a comma-separated list of directives; a field may start
with ``<user-agent>:`` to scope the directives that follow it to that crawler. Scoped directives
count only when the user agent equals our product token (case-insensitive); other bots' scoped
directives are ignored. Directives with their own colon (``unavailable_after: <date>``,
``max-snippet:<n>``...) are not mistaken for scopes. Pass each field line separately (any mapping
that keeps repeated headers as a list does): a client that joins ``otherbot: noindex`` and
``noai`` into one line would scope ``noai`` to otherbot.

Meta: ``<meta name="robots">`` applies to every crawler and ``<meta name="<token>">`` to ours.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from crawler.signals import DENY, NONE, SignalResult, clip, header_values, unreadable
from crawler.signals.htmlmeta import meta_tags
from pipeline.runs.reasons import META_NOAI, X_ROBOTS_NOAI

HEADER_CHECK = "x_robots_tag"
META_CHECK = "meta_robots"
HEADER = "X-Robots-Tag"
NOAI = "noai"
NOIMAGEAI = "noimageai"
MAX_FIELD_CHARS = 16 * 1024

# Directives whose value follows a colon: "name: value" is then not a user-agent scope.
_COLON_DIRECTIVES = frozenset(
    {"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"}
)
_SCOPE = re.compile(r"^\s*([^\s:,]+)\s*:\s*(.*)$", re.DOTALL)


@dataclass(frozen=True)
class Directive:
    name: str  # lower-cased directive name, without any ":value"
    scope: str | None  # the user agent it is scoped to, or None for every crawler
    source: str  # the field line (or meta element) it came from


def parse_directives(value: str) -> list[Directive]:
    """The directives of one ``X-Robots-Tag`` field line or one meta ``content``."""
    directives: list[Directive] = []
    scope: str | None = None
    for part in value.split(","):
        item = part.strip()
        if not item:
            continue
        match = _SCOPE.match(item)
        if match and match.group(1).lower() not in _COLON_DIRECTIVES:
            scope, item = match.group(1), match.group(2).strip()
            if not item:
                continue
        name = item.split(":", 1)[0].strip().lower()
        if name:
            directives.append(Directive(name=name, scope=scope, source=value))
    return directives


def _refusing(for_image: bool) -> frozenset[str]:
    return frozenset({NOAI, NOIMAGEAI}) if for_image else frozenset({NOAI})


def _applies(directive: Directive, token: str) -> bool:
    return directive.scope is None or directive.scope.lower() in (token.lower(), "*")


def _too_long(values: list[str], check: str, reason: str, where: str) -> SignalResult | None:
    longest = max((len(v) for v in values), default=0)
    if longest <= MAX_FIELD_CHARS:
        return None
    return unreadable(
        check,
        reason,
        f"{where} value of {longest} characters is over the {MAX_FIELD_CHARS}-character limit "
        "and was not read",
        found=clip(max(values, key=len)),
    )


def _decide(
    directives: Iterable[Directive],
    token: str,
    for_image: bool,
    *,
    check: str,
    reason: str,
    where: str,
) -> SignalResult:
    mine = [d for d in directives if _applies(d, token)]
    refusing = _refusing(for_image)
    hits = [d for d in mine if d.name in refusing]
    target = "image" if for_image else "page"
    if hits:
        names = sorted({d.name for d in hits})
        scoped = sorted({d.scope for d in hits if d.scope})
        scope_note = f" scoped to {', '.join(scoped)}" if scoped else ""
        found = "\n".join(dict.fromkeys(d.source for d in hits))
        return SignalResult(
            check,
            DENY,
            found=clip(found),
            reason=reason,
            detail=f"{where}: {', '.join(names)}{scope_note} refuses AI use of this {target}",
        )
    if not mine:
        return SignalResult(check, NONE, detail=f"no {where} directives for us")
    found = "\n".join(dict.fromkeys(d.source for d in mine))
    note = ""
    if not for_image and any(d.name == NOIMAGEAI for d in mine):
        note = " (noimageai applies to the images on this page, not to the page)"
    return SignalResult(
        check,
        NONE,
        found=clip(found),
        detail=f"{where}: no noai{'/noimageai' if for_image else ''} directive{note}",
    )


def from_header_values(
    values: Iterable[str], token: str, *, for_image: bool = False
) -> SignalResult:
    """Decide from ``X-Robots-Tag`` field lines (one string per line)."""
    values = list(values)
    too_long = _too_long(values, HEADER_CHECK, X_ROBOTS_NOAI, HEADER)
    if too_long:
        return too_long
    directives = [d for value in values for d in parse_directives(value)]
    return _decide(
        directives, token, for_image, check=HEADER_CHECK, reason=X_ROBOTS_NOAI, where=HEADER
    )


def from_headers(
    headers: Mapping[Any, Any] | None, token: str, *, for_image: bool = False
) -> SignalResult:
    """Decide from a response's headers (any mapping; repeated fields as lists)."""
    return from_header_values(header_values(headers, HEADER), token, for_image=for_image)


def from_html_meta(html: bytes | str, token: str, *, for_image: bool = False) -> SignalResult:
    """Decide from ``<meta name="robots">`` and ``<meta name="<token>">`` in a page."""
    names = frozenset({"robots", token.strip().lower()})
    tags = meta_tags(html, names)
    too_long = _too_long([t.content for t in tags], META_CHECK, META_NOAI, "meta")
    if too_long:
        return too_long
    # The meta name already says whom it is for; a "bot:" prefix inside content is not part of
    # the syntax, so a directive written that way is read as addressed to us (fail closed).
    directives = [
        Directive(name=d.name, scope=None, source=tag.raw)
        for tag in tags
        for d in parse_directives(tag.content)
    ]
    return _decide(directives, token, for_image, check=META_CHECK, reason=META_NOAI, where="meta")
