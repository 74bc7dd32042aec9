"""Groups and rules of a robots.txt-grammar file (RFC 9309 section 2.2), for the signal parsers.

Only what the opt-out signals need: which lines belong to the group that applies to our product
token. robots.txt itself (Allow/Disallow for our token and the AI-agent opt-out) is decided
elsewhere; the Content-Usage rule (draft-ietf-aipref-attach section 3) and Spawning's ai.txt reuse
this grouping.

Group choice follows RFC 9309 section 2.2.1: a group applies when one of its ``user-agent``
lines equals the product token, compared case-insensitively and exactly (not as a prefix or
substring, unlike robotexclusionrulesparser and Protego, which would give a ``User-agent:
Clearance`` group to ClearanceBot). All groups that name the token are merged; only when none
does are the ``*`` groups merged instead. Lines before the first ``user-agent`` line belong to
no group; they are returned separately so each caller can say what it does with them.
``Sitemap`` lines belong to no group either (RFC 9309 section 2.3.5 treats them as independent
of user-agent groups) and neither close nor continue a run of ``user-agent`` lines.

This is the one grouping of robots-grammar files: :mod:`crawler.signals.robots` (Allow/Disallow,
Crawl-delay), the Content-Usage rules and ai.txt all read it.
"""

from __future__ import annotations

from dataclasses import dataclass

# RFC 9309 section 2.5: crawlers MUST parse at least 500 KiB. robots.txt is fetched up to 1 MiB
# (a larger one reserves the host), so the whole of any accepted file is read.
MAX_CHARS = 1024 * 1024

_USER_AGENT_KEYS = frozenset({"user-agent", "useragent", "user agent"})
_NOT_A_GROUP_MEMBER = frozenset({"sitemap"})
BOM = "\ufeff"


def decode(text: str | bytes) -> str:
    """A robots-grammar body as text, without a leading byte order mark.

    Bytes are read as UTF-8 (RFC 9309 section 2.3), at most ``MAX_CHARS * 4`` of them. A leading
    BOM, as the bytes ``EF BB BF`` or an already decoded U+FEFF, is an encoding mark, not part of
    the first line: RFC 9309 parsers (Google's among them) skip it, and left in place it would
    turn ``User-agent: ClearanceBot`` on line 1 into an unknown key, hiding the whole group.
    """
    if isinstance(text, bytes | bytearray):
        text = bytes(text[: MAX_CHARS * 4]).decode("utf-8", errors="replace")
    return text.removeprefix(BOM)


def product_token(agent: str) -> str:
    """A user-agent line's product token, lower-cased: ``ClearanceBot/1.0`` -> ``clearancebot``.

    RFC 9309 matches the product token exactly (case-insensitively); a version after ``/`` is
    not part of it.
    """
    return agent.split("/", 1)[0].strip().lower()


@dataclass(frozen=True)
class Line:
    """One ``key: value`` line: the key lower-cased, the value stripped, the line as written."""

    key: str
    value: str
    raw: str
    lineno: int


@dataclass(frozen=True)
class Group:
    agents: tuple[str, ...]
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class RobotsFile:
    groups: tuple[Group, ...]
    toplevel: tuple[Line, ...]  # rule lines before any user-agent line
    truncated: bool  # the text was longer than MAX_CHARS and its tail was not read
    sitemaps: tuple[Line, ...] = ()  # sitemap lines, wherever they are

    @classmethod
    def parse(cls, text: str | bytes) -> RobotsFile:
        text = decode(text)
        truncated = len(text) > MAX_CHARS
        if truncated:
            text = text[:MAX_CHARS]
        groups: list[Group] = []
        toplevel: list[Line] = []
        sitemaps: list[Line] = []
        agents: list[str] = []
        lines: list[Line] = []
        collecting_agents = False
        for lineno, raw in enumerate(text.splitlines(), start=1):
            content = raw.split("#", 1)[0]
            key, sep, value = content.partition(":")
            if not sep:
                continue
            key = " ".join(key.split()).lower()
            line = Line(key=key, value=value.strip(), raw=raw.strip(), lineno=lineno)
            if key in _USER_AGENT_KEYS:
                if not collecting_agents and agents:
                    groups.append(Group(tuple(agents), tuple(lines)))
                    agents, lines = [], []
                agents.append(line.value)
                collecting_agents = True
            elif key in _NOT_A_GROUP_MEMBER:
                sitemaps.append(line)
            elif agents:
                lines.append(line)
                collecting_agents = False
            else:
                toplevel.append(line)
        if agents:
            groups.append(Group(tuple(agents), tuple(lines)))
        return cls(
            groups=tuple(groups),
            toplevel=tuple(toplevel),
            truncated=truncated,
            sitemaps=tuple(sitemaps),
        )

    def select(self, token: str) -> tuple[str | None, tuple[Line, ...]]:
        """The lines of the groups that apply to ``token``, and which agent matched.

        Returns ``(token_as_written, lines)`` when a group names the token, ``("*", lines)``
        when only the ``*`` groups apply, and ``(None, ())`` when no group applies.
        """
        wanted = product_token(token)
        for label in (wanted, "*"):
            chosen = [g for g in self.groups if any(product_token(a) == label for a in g.agents)]
            if chosen:
                matched = next(a.strip() for a in chosen[0].agents if product_token(a) == label)
                return matched, tuple(line for g in chosen for line in g.lines)
        return None, ()
