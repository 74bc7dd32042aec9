"""robots.txt evaluation: our token's group chosen exactly, two parsers, bounded time, AI blocks.

Why not just hand the file to a parser (DESIGN.md "Signals honoured"):

* robotexclusionrulesparser is first-match and picks groups by substring; Protego (RFC 9309)
  is longest-match. We refuse if *either* refuses.
* Both apply a ``User-agent: Clearance`` group to ``ClearanceBot``; RFC 9309 matches the product
  token exactly. So we pick the group ourselves (exact, case-insensitive token, else ``*``),
  merge groups that name the same agent, and give each parser only those rules.
* robotexclusionrulesparser compiles wildcards to backtracking regexes: ``/*a*a*a*a*a$`` takes
  seconds. Every decision runs under a deadline and a timeout refuses (fail closed).
* Groups that name a well-known AI-training agent (never ``*``) are an opt-out for the paths they
  disallow, even where our own group allows them (``robots_ai_optout``).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import unquote, urlsplit

from protego import Protego
from robotexclusionrulesparser import RobotExclusionRulesParser

from crawler.signals import pathmatch
from crawler.signals.robotsfile import RobotsFile, product_token
from pipeline.runs import reasons

logger = logging.getLogger(__name__)

DECISION_DEADLINE_S = 0.25
ROBOTS_MAX_BYTES = 1024 * 1024  # parsed whole; a larger file reserves the host (fail closed)


@dataclass(frozen=True)
class Rule:
    allow: bool
    pattern: str
    line: int
    raw: str


@dataclass
class Group:
    agents: list[str]
    rules: list[Rule] = field(default_factory=list)
    crawl_delay: float | None = None
    extras: list[tuple[str, str, int]] = field(default_factory=list)  # other (key, value, line)


@dataclass(frozen=True)
class RobotsDecision:
    allowed: bool
    reason: str | None = None
    found: str | None = None  # the rule line that decided, or a note
    detail: str | None = None
    timed_out: bool = False  # refused because the rules could not be evaluated in time


def parse_groups(text: str | RobotsFile) -> tuple[list[Group], list[tuple[str, str, int]]]:
    """Allow/Disallow rules, Crawl-delay and other lines of each RFC 9309 group.

    The grouping itself is :class:`~crawler.signals.robotsfile.RobotsFile`'s (shared with the
    Content-Usage and ai.txt parsers). Returns the groups and the lines outside any group other
    than Allow/Disallow (which apply to no one), in file order.
    """
    parsed = text if isinstance(text, RobotsFile) else RobotsFile.parse(text)
    groups: list[Group] = []
    for found in parsed.groups:
        group = Group(agents=list(found.agents))
        for line in found.lines:
            if line.key in ("allow", "disallow"):
                if line.key == "disallow" and not line.value:
                    continue  # "Disallow:" with no path allows everything: no rule
                group.rules.append(Rule(line.key == "allow", line.value, line.lineno, line.raw))
            elif line.key == "crawl-delay":
                try:
                    group.crawl_delay = max(0.0, float(line.value))
                except ValueError:
                    pass
            else:
                group.extras.append((line.key, line.value, line.lineno))
        groups.append(group)
    toplevel = sorted(
        ((line.key, line.value, line.lineno)
         for line in (*parsed.toplevel, *parsed.sitemaps)
         if line.key not in ("allow", "disallow")),
        key=lambda entry: entry[2],
    )
    return groups, toplevel


@lru_cache(maxsize=8192)
def glob_match(pattern: str, path: str) -> bool:
    """RFC 9309 pattern match (prefix, ``*`` any run, trailing ``$`` end), linear time.

    The matcher every robots-grammar parser here shares (:mod:`crawler.signals.pathmatch`),
    with percent-encodings normalised on both sides.
    """
    return pathmatch.glob_match(pattern, path)


def longest_match(rules: list[Rule], path: str) -> Rule | None:
    """The RFC 9309 deciding rule: longest matching pattern; allow wins a tie."""
    best: Rule | None = None
    for rule in rules:
        if glob_match(rule.pattern, path):
            if (
                best is None
                or len(rule.pattern) > len(best.pattern)
                or (len(rule.pattern) == len(best.pattern) and rule.allow and not best.allow)
            ):
                best = rule
    return best


class DecisionTimeout(Exception):
    pass


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Interrupt a runaway regex after `seconds` (SIGALRM; `re` checks signals while matching).

    Only the main thread can receive signals; elsewhere the rule set was screened instead.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _expired(signum: int, frame: object) -> None:
        raise DecisionTimeout()

    previous = signal.signal(signal.SIGALRM, _expired)
    started = time.monotonic()
    outer, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:
            # Put back an outer alarm (pytest-timeout, say), less the time spent here.
            remaining = max(outer - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, remaining, outer_interval)


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class RobotsPolicy:
    """One host's robots.txt, evaluated for one product token and the AI-agent list."""

    def __init__(self, text: str, token: str, ai_agents: frozenset[str], source_url: str = ""):
        from crawler.signals.aipref import parse_robots_content_usage

        self.source_url = source_url
        # aipref `Content-Usage: [path] prefs` lines for our token (else `*`) and top level.
        parsed = RobotsFile.parse(text)
        self.content_usage = parse_robots_content_usage(parsed, token)
        self.token = token.lower()
        self.groups, self.toplevel = parse_groups(parsed)
        ours = [g for g in self.groups if any(product_token(a) == self.token for a in g.agents)]
        self.group_label = token
        if not ours:
            ours = [g for g in self.groups if any(a.strip() == "*" for a in g.agents)]
            self.group_label = "*"
        self.our_groups = ours
        self.rules: list[Rule] = [r for g in ours for r in g.rules]
        delays = [g.crawl_delay for g in ours if g.crawl_delay is not None]
        self.crawl_delay: float | None = max(delays) if delays else None
        self.ai_groups = [
            (g, sorted({product_token(a) for a in g.agents} & ai_agents))
            for g in self.groups
            if {product_token(a) for a in g.agents} & ai_agents
        ]
        self._dangerous = any(r.pattern.count("*") >= 3 for r in self.rules)
        synthesized = "User-agent: *\n" + "\n".join(
            f"{'Allow' if r.allow else 'Disallow'}: {r.pattern}" for r in self.rules
        )
        self._protego = Protego.parse(synthesized)
        self._heads = [(_head(r.pattern), _head(unquote(r.pattern))) for r in self.rules]
        self._rerp_by_subset: dict[tuple[int, ...], RobotExclusionRulesParser] = {}
        self._cache: dict[str, RobotsDecision] = {}

    @classmethod
    def allow_all(cls, why: str, token: str) -> RobotsPolicy:
        policy = cls("", token, frozenset())
        policy.source_url = why
        return policy

    def _candidates(self, path: str) -> tuple[int, ...]:
        """Indices of the rules whose literal head the path starts with (raw or decoded)."""
        decoded = unquote(path)
        return tuple(
            i for i, (raw, dec) in enumerate(self._heads)
            if path.startswith(raw) or decoded.startswith(dec)
        )

    def _rerp_for(self, subset: tuple[int, ...]) -> RobotExclusionRulesParser:
        """robotexclusionrulesparser over only the rules that can match `path`, in file order.

        It is first-match, so rules that cannot match never change its answer; dropping them
        turns its 0.2-0.5 ms per decision on a large file into a few microseconds, and paths of
        one section share one parser (cached by rule subset).
        """
        parser = self._rerp_by_subset.get(subset)
        if parser is None:
            parser = RobotExclusionRulesParser()
            parser.parse("User-agent: *\n" + "\n".join(
                f"{'Allow' if self.rules[i].allow else 'Disallow'}: {self.rules[i].pattern}"
                for i in subset
            ))
            if len(self._rerp_by_subset) < 4096:
                self._rerp_by_subset[subset] = parser
        return parser

    def check(self, url: str, ai_optout: bool = True) -> RobotsDecision:
        path = _path_of(url)
        key = f"{int(ai_optout)}{path}"
        cached = self._cache.get(key)
        if cached is None:
            cached = self._decide(url, path, ai_optout)
            if len(self._cache) < 100_000:
                self._cache[key] = cached
        return cached

    def _decide(self, url: str, path: str, ai_optout: bool) -> RobotsDecision:
        subset = self._candidates(path) if self.rules else ()
        candidates = [self.rules[i] for i in subset]
        if candidates:
            deciding = longest_match(candidates, path)
            try:
                with deadline(DECISION_DEADLINE_S) if self._dangerous else _nullcontext():
                    ok_protego = self._protego.can_fetch(url, self.token)
                    ok_rerp = self._rerp_for(subset).is_allowed(self.token, url)
            except DecisionTimeout:
                return RobotsDecision(
                    False,
                    reasons.ROBOTS_DISALLOWED,
                    f"line {deciding.line}: {deciding.raw}" if deciding else None,
                    f"rule evaluation exceeded {DECISION_DEADLINE_S}s on {self.source_url}; "
                    "refused (fail closed)",
                    timed_out=True,
                )
            if not (ok_protego and ok_rerp):
                refusers = [n for n, ok in (("protego", ok_protego), ("rerp", ok_rerp)) if not ok]
                if deciding is None or deciding.allow:
                    # Only the first-match parser refused: show the first disallow that matches.
                    deciding = next(
                        (r for r in candidates if not r.allow and glob_match(r.pattern, path)),
                        deciding,
                    )
                found = (
                    f"line {deciding.line}: {deciding.raw}" if deciding else "(parser-specific)"
                )
                return RobotsDecision(
                    False,
                    reasons.ROBOTS_DISALLOWED,
                    found,
                    f"{self.source_url} group User-agent: {self.group_label}; "
                    f"refused by {', '.join(refusers)}",
                )
        if ai_optout:
            for group, names in self.ai_groups:
                if not _may_match(_prefixes(group.rules), path):
                    continue
                rule = longest_match(group.rules, path)
                if rule is not None and not rule.allow:
                    return RobotsDecision(
                        False,
                        reasons.ROBOTS_AI_OPTOUT,
                        f"line {rule.line}: {rule.raw}",
                        f"{self.source_url} blocks AI-training agent(s) "
                        f"{', '.join(names)} for this path",
                    )
        deciding = longest_match(candidates, path) if candidates else None
        return RobotsDecision(
            True,
            None,
            f"line {deciding.line}: {deciding.raw}" if deciding else None,
            f"{self.source_url} group User-agent: {self.group_label}",
        )


def _head(pattern: str) -> str:
    """A pattern's literal head (before any wildcard); "/" when it cannot be trusted."""
    if not pattern.startswith("/"):
        return "/"
    return pattern.split("*", 1)[0].split("$", 1)[0] or "/"


@lru_cache(maxsize=1024)
def _prefixes_of(patterns: tuple[str, ...]) -> tuple[str, ...]:
    out = set()
    for pattern in patterns:
        literal = pattern.split("*", 1)[0].split("$", 1)[0] or "/"
        out.add(literal)
        out.add(unquote(literal))
    return tuple(sorted(out))


def _prefixes(rules: list[Rule]) -> tuple[str, ...]:
    """Literal heads of the rules' patterns (raw and percent-decoded)."""
    return _prefixes_of(tuple(r.pattern for r in rules))


def _may_match(prefixes: tuple[str, ...], path: str) -> bool:
    """False only when no rule can match: both parsers then allow, so neither is asked.

    Every pattern matches from the start of the path, so a path that begins with none of the
    rules' literal heads (compared raw and percent-decoded, as the parsers normalise) matches
    no rule. This keeps the 0.5 ms robotexclusionrulesparser decision off most image URLs.
    """
    return path.startswith(prefixes) or unquote(path).startswith(prefixes)


@contextmanager
def _nullcontext() -> Iterator[None]:
    yield
