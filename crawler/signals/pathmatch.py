"""Linear-time matching of robots.txt-style path patterns (``*`` wildcard, ``$`` end anchor).

robots.txt (RFC 9309 section 2.2.3), the Content-Usage rule of draft-ietf-aipref-attach,
TDMRep's ``location`` and Spawning's ai.txt all use the same two special characters. Translating
them into regular expressions invites catastrophic backtracking (``/*a*a*a*a*a$`` took 17 s on a
200-character URL in robotexclusionrulesparser), so a pattern is split on ``*`` into literal
pieces instead: the first piece must be a prefix, each following piece is found at its leftmost
position after the previous one (leftmost placement is always optimal when the only operator is
``*``), and a ``$``-anchored last piece must be a suffix that starts after them. Each ``str.find``
resumes where the previous one stopped, so a match costs time linear in the text plus pattern.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")


def normalise(path: str) -> str:
    """Canonical form for comparing a URL path with a pattern (RFC 9309 section 2.2.2, TDMRep).

    Percent-encoded unreserved characters are decoded, other escapes are upper-cased, and
    characters outside US-ASCII are percent-encoded as UTF-8, so ``/%7Efoo``, ``/~foo`` and
    ``/caf%C3%A9`` versus ``/café`` compare equal whichever side wrote them which way.
    """

    def _unescape(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    decoded = _PERCENT.sub(_unescape, path)
    if decoded.isascii():
        return decoded
    return "".join(
        c if c.isascii() else "".join(f"%{b:02X}" for b in c.encode("utf-8")) for c in decoded
    )


@dataclass(frozen=True)
class PathPattern:
    """A compiled pattern: literal pieces between ``*``s, and whether ``$`` anchors the end."""

    raw: str
    pieces: tuple[str, ...]
    anchored: bool
    length: int  # specificity for longest-match: octets of the normalised pattern

    @classmethod
    def compile(cls, pattern: str, *, normalise_pattern: bool = True) -> PathPattern:
        text = normalise(pattern) if normalise_pattern else pattern
        length = len(text.encode("utf-8"))
        anchored = text.endswith("$")
        if anchored:
            text = text[:-1]
        # A '$' anywhere but the end is an ordinary character (Google's reading of RFC 9309).
        return cls(raw=pattern, pieces=tuple(text.split("*")), anchored=anchored, length=length)

    def matches(self, text: str) -> bool:
        """True if ``text`` matches from its start (prefix match unless ``$``-anchored)."""
        pieces = self.pieces
        first = pieces[0]
        if not text.startswith(first):
            return False
        pos = len(first)
        if len(pieces) == 1:
            return pos == len(text) if self.anchored else True
        for piece in pieces[1:-1]:
            if not piece:
                continue
            found = text.find(piece, pos)
            if found < 0:
                return False
            pos = found + len(piece)
        last = pieces[-1]
        if self.anchored:
            return len(text) - len(last) >= pos and text.endswith(last)
        return not last or text.find(last, pos) >= 0

    def fullmatch(self, text: str) -> bool:
        """True if the whole of ``text`` matches (as if the pattern ended with ``$``)."""
        if self.anchored:
            return self.matches(text)
        return PathPattern(self.raw, self.pieces, True, self.length).matches(text)


def glob_match(pattern: str, text: str) -> bool:
    """One-off prefix match of ``text`` against a robots-style ``pattern`` (both normalised)."""
    return PathPattern.compile(pattern).matches(normalise(text))
