"""W3C TDM Reservation Protocol (TDMRep, CG final report): ``tdmrep.json``, headers, HTML meta.

Reference: the spec in ../shared/fixtures/tdmrep/w3c_tdmrep_spec_index.html (section ids quoted
below as ``#sec-...``).

* ``/.well-known/tdmrep.json`` is an array of rules ``{location, tdm-reservation, tdm-policy}``
  (#sec-tdm-file). ``location`` is matched against the URL path with robots.txt's ``*`` and ``$``
  (#sec-tdm-file-regexp; we match path plus query, as robots.txt does), case-sensitively, after
  decoding percent-escaped unreserved characters; "the most specific match is the first in
  sequence", so the FIRST matching rule decides. No match: reservation unset.
* ``tdm-reservation`` is 1 (reserved) or 0 (not reserved) (#sec-tdm-reservation); ``tdm-policy``
  is a URL kept as evidence of how to licence the content.
* Precedence (#sec-processing-priority): the file is checked first; a ``tdm-reservation`` header
  "supersede[s] any value inferred from a TDM file"; HTML meta values "supersede previous values";
  "the absence of tdm-reservation and tdm-policy MUST not reset current values".

Where Clearance is stricter than the spec, and why (DESIGN.md: a signal that cannot be read never
counts as permission; a per-host file that fails reserves the host):

* A file that is not a JSON array of rule objects with a string ``location`` and a
  ``tdm-reservation`` raises :class:`TdmRepError`; the caller reserves the whole host
  (:func:`file_unreadable`). The spec would read such a file as "not implementing the protocol".
* A ``tdm-reservation`` value other than 0/1 is a protocol error that the spec reads as "unset";
  we refuse with ``error`` set, since the publisher evidently tried to say something.
* :func:`decide` follows the spec's superseding order by default; ``most_restrictive=True`` makes
  any reservation win instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from crawler.signals import (
    ALLOW,
    DENY,
    NONE,
    SignalResult,
    clip,
    header_values,
    unreadable,
)
from crawler.signals.htmlmeta import meta_tags
from crawler.signals.pathmatch import PathPattern, normalise
from pipeline.runs.reasons import TDM_RESERVED

CHECK = "tdmrep"
WELL_KNOWN_PATH = "/.well-known/tdmrep.json"
MAX_FILE_BYTES = 1024 * 1024
RESERVATION = "tdm-reservation"
POLICY = "tdm-policy"


class TdmRepError(ValueError):
    """A tdmrep.json that cannot be read as the spec's array of rules: reserve the host."""


def _reservation(value: Any) -> int | None:
    """1 or 0 for the spec's values (also JSON booleans and the strings "1"/"0"), else None."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return int(value.strip())
    return None


@dataclass(frozen=True)
class TdmRule:
    index: int  # position in the file, from 0
    location: str
    reservation: int | None  # None: a protocol-error value (kept in ``raw``)
    policy: str | None
    raw: str  # the rule as JSON, the evidence stored with a decision
    pattern: PathPattern


def _target(path_or_url: str) -> str:
    """The path (and query) of a URL, or the argument itself if it is already a path."""
    if "://" in path_or_url[:16]:
        parts = urlsplit(path_or_url)
        path = parts.path or "/"
        return f"{path}?{parts.query}" if parts.query else path
    return path_or_url or "/"


@dataclass(frozen=True)
class TdmRepFile:
    rules: tuple[TdmRule, ...]

    @classmethod
    def parse(cls, body: bytes | str) -> TdmRepFile:
        """Parse a tdmrep.json body; raises :class:`TdmRepError` if it is not one."""
        if isinstance(body, str):
            body = body.encode("utf-8")
        if len(body) > MAX_FILE_BYTES:
            raise TdmRepError(f"tdmrep.json is {len(body)} bytes, over {MAX_FILE_BYTES}")
        try:
            # utf-8-sig skips a leading byte order mark (a str's U+FEFF is encoded to one above).
            data = json.loads(body.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise TdmRepError(f"tdmrep.json is not JSON: {exc}") from None
        if not isinstance(data, list):
            raise TdmRepError(
                f"tdmrep.json must be a JSON array of rules, found a JSON {type(data).__name__}"
            )
        rules: list[TdmRule] = []
        for index, entry in enumerate(data):
            if not isinstance(entry, dict):
                raise TdmRepError(f"rule {index} is a JSON {type(entry).__name__}, not an object")
            location = entry.get("location")
            if not isinstance(location, str) or not location:
                raise TdmRepError(f"rule {index} has no string 'location'")
            if RESERVATION not in entry:
                raise TdmRepError(f"rule {index} ({location}) has no '{RESERVATION}'")
            policy = entry.get(POLICY)
            rules.append(
                TdmRule(
                    index=index,
                    location=location,
                    reservation=_reservation(entry[RESERVATION]),
                    policy=policy if isinstance(policy, str) else None,
                    raw=json.dumps(entry, ensure_ascii=False, sort_keys=True),
                    pattern=PathPattern.compile(location),
                )
            )
        return cls(rules=tuple(rules))

    def rule_for(self, path_or_url: str) -> TdmRule | None:
        """The first rule whose location matches (the spec's "most specific match")."""
        target = normalise(_target(path_or_url))
        for rule in self.rules:
            if rule.pattern.matches(target):
                return rule
        return None

    def match(self, path_or_url: str) -> SignalResult:
        """The file's decision for one URL (or its path)."""
        rule = self.rule_for(path_or_url)
        if rule is None:
            return SignalResult(
                CHECK, NONE, detail=f"tdmrep.json: no rule matches {_target(path_or_url)}"
            )
        where = f"tdmrep.json rule {rule.index} (location {rule.location!r})"
        return _decision(rule.reservation, rule.raw, rule.policy, where)


def _decision(reservation: int | None, found: str, policy: str | None, where: str) -> SignalResult:
    policy_note = f"; tdm-policy {policy}" if policy else ""
    if reservation == 1:
        return SignalResult(
            CHECK,
            DENY,
            found=clip(found),
            reason=TDM_RESERVED,
            detail=f"{where}: tdm-reservation 1, TDM rights reserved{policy_note}",
        )
    if reservation == 0:
        return SignalResult(
            CHECK, ALLOW, found=clip(found), detail=f"{where}: tdm-reservation 0, not reserved"
        )
    return unreadable(
        CHECK,
        TDM_RESERVED,
        f"{where}: tdm-reservation is neither 0 nor 1 (a protocol error, 'unset' in the spec; "
        f"Clearance does not read it as permission){policy_note}",
        found=clip(found),
    )


def file_absent(detail: str = "no /.well-known/tdmrep.json (4xx)") -> SignalResult:
    """The host has no tdmrep.json: it declares nothing."""
    return SignalResult(CHECK, NONE, detail=detail)


def file_unreadable(detail: str, found: str | None = None) -> SignalResult:
    """tdmrep.json failed (5xx, timeout, :class:`TdmRepError`): the host is reserved."""
    return unreadable(
        CHECK, TDM_RESERVED, f"tdmrep.json unreadable, host reserved: {detail}", found=clip(found)
    )


def _values(raw_values: list[str]) -> list[str]:
    # A repeated header may arrive joined with commas by a client; each part is one value.
    return [part.strip() for value in raw_values for part in value.split(",") if part.strip()]


def _combine(reservations: list[str], policies: list[str], where: str, found: str) -> SignalResult:
    if not reservations:
        detail = f"no {RESERVATION} in {where}"
        if policies:
            detail += f" ({POLICY} {policies[0]} without a reservation)"
        return SignalResult(CHECK, NONE, found=clip(found) if policies else None, detail=detail)
    parsed = [_reservation(value) for value in reservations]
    policy = policies[0] if policies else None
    if 1 in parsed:
        return _decision(1, found, policy, where)
    if None in parsed:
        return _decision(None, found, policy, where)
    return _decision(0, found, policy, where)


def from_headers(headers: Mapping[Any, Any] | None) -> SignalResult:
    """``tdm-reservation`` / ``tdm-policy`` response headers (#sec-tdm-header)."""
    reservations = _values(header_values(headers, RESERVATION))
    policies = [v.strip() for v in header_values(headers, POLICY) if v.strip()]
    found = "\n".join(
        [f"{RESERVATION}: {v}" for v in reservations] + [f"{POLICY}: {v}" for v in policies]
    )
    return _combine(reservations, policies, "response headers", found)


def from_html_meta(html: bytes | str) -> SignalResult:
    """``<meta name="tdm-reservation">`` / ``<meta name="tdm-policy">`` (#sec-tdm-html-meta)."""
    tags = meta_tags(html, frozenset({RESERVATION, POLICY}))
    reservations = [t.content for t in tags if t.name == RESERVATION]
    policies = [t.content for t in tags if t.name == POLICY and t.content]
    found = "\n".join(t.raw for t in tags)
    return _combine(reservations, policies, "HTML meta", found)


def decide(
    file_result: SignalResult | None,
    header_result: SignalResult | None = None,
    meta_result: SignalResult | None = None,
    *,
    most_restrictive: bool = False,
) -> SignalResult:
    """One TDMRep decision for a resource from its three sources (#sec-processing-priority).

    Later sources supersede earlier ones when they state a reservation (0 or 1); a source that
    states nothing leaves the current value alone. An unreadable source refuses whatever the
    others say. With ``most_restrictive`` any reservation wins over a later 0.
    """
    steps = [r for r in (file_result, header_result, meta_result) if r is not None]
    for result in steps:
        if result.error:
            return result
    stated = [r for r in steps if r.decision in (ALLOW, DENY)]
    if not stated:
        details = "; ".join(r.detail for r in steps if r.detail) or "no TDMRep signal"
        return SignalResult(CHECK, NONE, detail=details)
    if most_restrictive:
        winner = next((r for r in stated if r.decision == DENY), stated[-1])
    else:
        winner = stated[-1]
    overridden = [r for r in stated if r is not winner and r.decision != winner.decision]
    if not overridden:
        return winner
    if most_restrictive:
        note = "; overrides (most restrictive wins) " + "; ".join(str(r.detail) for r in overridden)
    else:
        note = "; supersedes " + "; ".join(str(r.detail) for r in overridden)
        note += " (TDMRep processing priority: headers over tdmrep.json, HTML meta over both)"
    return SignalResult(
        CHECK,
        winner.decision,
        found=winner.found,
        reason=winner.reason,
        detail=f"{winner.detail}{note}",
        error=winner.error,
    )
