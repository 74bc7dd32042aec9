"""Spawning's ``/ai.txt``: robots.txt grammar over file names and extensions.

Spawning's generator (site.spawning.ai) writes files such as::

    # Spawning AI
    # Prevent datasets from using the following file types
    User-Agent: *
    Disallow: *.jpg
    Disallow: *.png
    Disallow: /
    Disallow: *

i.e. robots.txt groups whose ``Allow``/``Disallow`` values are either robots.txt paths (starting
with ``/``, matched as prefixes of the URL path and query with ``*`` and ``$``) or file-name
patterns (anything else, e.g. ``*.jpg``, matched against the whole last path segment,
case-insensitively since ``.JPG`` is the same type as ``.jpg``). Wildcards are matched in linear
time (:mod:`crawler.signals.pathmatch`).

Group choice is robots.txt's: the groups naming our product token exactly (case-insensitive),
else the ``*`` groups. Among matching rules the longest pattern wins, as in RFC 9309; on a tie
``Disallow`` wins (RFC 9309 prefers Allow; opt-outs win here). When the response's content type
is known, the resource also counts as carrying that type's usual extensions, so
``Disallow: *.jpg`` covers ``/photo?id=3`` served as ``image/jpeg``.

A body that is binary raises :class:`AiTxtError` (the caller then reserves the host, as for any
per-host file that fails). Text without any group, such as a site's HTML page served for every
unknown URL, states nothing.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

from crawler.signals import ALLOW, DENY, NONE, SignalResult, clip, unreadable
from crawler.signals.pathmatch import PathPattern, normalise
from crawler.signals.robotsfile import MAX_CHARS, RobotsFile, decode
from pipeline.runs.reasons import AI_TXT_DISALLOWED

CHECK = "ai_txt"
PATH = "/ai.txt"

# Usual extensions per media type, so the answer does not depend on the host's mime.types.
_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "image/jpeg": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "image/png": (".png",),
    "image/gif": (".gif",),
    "image/webp": (".webp",),
    "image/avif": (".avif",),
    "image/tiff": (".tif", ".tiff"),
    "image/bmp": (".bmp",),
    "image/svg+xml": (".svg",),
    "image/x-icon": (".ico",),
    "image/vnd.microsoft.icon": (".ico",),
    "image/heic": (".heic",),
    "image/heif": (".heif",),
    "image/jxl": (".jxl",),
    "text/html": (".html", ".htm"),
    "application/xhtml+xml": (".xhtml", ".html", ".htm"),
    "text/plain": (".txt",),
    "application/pdf": (".pdf",),
}


class AiTxtError(ValueError):
    """An ai.txt body that is not text: the caller reserves the host."""


@dataclass(frozen=True)
class AiRule:
    allow: bool
    kind: Literal["path", "name"]
    pattern: PathPattern
    raw: str  # the line as written
    lineno: int

    @property
    def length(self) -> int:
        return self.pattern.length


def _extensions(content_type: str | None) -> tuple[str, ...]:
    if not content_type:
        return ()
    media = content_type.split(";", 1)[0].strip().lower()
    known = _EXTENSIONS.get(media, ())
    guessed = tuple(mimetypes.guess_all_extensions(media, strict=False))
    return tuple(dict.fromkeys(known + guessed))


@dataclass(frozen=True)
class AiTxt:
    robots: RobotsFile

    @classmethod
    def parse(cls, text: str | bytes) -> AiTxt:
        """Parse an ai.txt body; raises :class:`AiTxtError` if it is binary.

        A leading byte order mark is skipped by the shared robots-grammar decode.
        """
        if isinstance(text, bytes | bytearray):
            head = bytes(text[: MAX_CHARS * 4])
            if b"\x00" in head:
                raise AiTxtError("ai.txt is binary (contains NUL bytes), not a text file")
            text = decode(head)
        elif "\x00" in text[:MAX_CHARS]:
            raise AiTxtError("ai.txt is binary (contains NUL characters), not a text file")
        return cls(robots=RobotsFile.parse(text))

    def rules_for(self, token: str) -> tuple[str | None, list[AiRule]]:
        """The Allow/Disallow rules of the group chosen for ``token``, and its user-agent."""
        agent, lines = self.robots.select(token)
        rules: list[AiRule] = []
        for line in lines:
            if line.key not in ("allow", "disallow") or not line.value:
                continue
            allow, value = line.key == "allow", line.value
            if value.startswith("/"):
                rules.append(
                    AiRule(allow, "path", PathPattern.compile(value), line.raw, line.lineno)
                )
            else:
                # File names compare case-insensitively: IMG_1.JPG is as much a .jpg as img_1.jpg.
                pattern = PathPattern.compile(value.lower(), normalise_pattern=False)
                rules.append(AiRule(allow, "name", pattern, line.raw, line.lineno))
        return agent, rules

    def check(self, url: str, token: str, *, content_type: str | None = None) -> SignalResult:
        """Decide for one URL (or path) as fetched by ``token``."""
        agent, rules = self.rules_for(token)
        if agent is None:
            why = f"no group for {token} or *" if self.robots.groups else "no user-agent groups"
            note = "" if self.robots.groups else " (not an ai.txt?)"
            return SignalResult(CHECK, NONE, detail=f"ai.txt has {why}{note}")
        parts = urlsplit(url)
        path = parts.path or "/"
        target = normalise(f"{path}?{parts.query}" if parts.query else path)
        name = unquote(path.rsplit("/", 1)[-1]).lower()
        names = [name] + [name + ext for ext in _extensions(content_type)]
        matching = [rule for rule in rules if _matches(rule, target, names)]
        if not matching:
            return SignalResult(
                CHECK, NONE, detail=f"ai.txt group {agent!r}: no rule matches {path}"
            )
        best = max(rule.length for rule in matching)
        top = [rule for rule in matching if rule.length == best]
        winner = next((rule for rule in top if not rule.allow), top[0])
        where = f"ai.txt group {agent!r} line {winner.lineno}: {winner.raw!r} matches {path}"
        if winner.allow:
            return SignalResult(CHECK, ALLOW, found=clip(winner.raw), detail=where)
        return SignalResult(
            CHECK, DENY, found=clip(winner.raw), reason=AI_TXT_DISALLOWED, detail=where
        )


def _matches(rule: AiRule, target: str, names: list[str]) -> bool:
    """A path rule against the normalised path and query; a name rule against the file name."""
    if rule.kind == "path":
        return rule.pattern.matches(target)
    return any(rule.pattern.fullmatch(name) for name in names)


def file_unreadable(detail: str, found: str | None = None) -> SignalResult:
    """ai.txt failed (5xx, timeout, :class:`AiTxtError`): the host is reserved."""
    return unreadable(
        CHECK, AI_TXT_DISALLOWED, f"ai.txt unreadable, host reserved: {detail}", found=clip(found)
    )


def file_absent(detail: str = "no /ai.txt (4xx)") -> SignalResult:
    """The host has no ai.txt: it declares nothing."""
    return SignalResult(CHECK, NONE, detail=detail)
