"""Opt-out signal parsers: pure functions from raw bytes/strings to a :class:`SignalResult`.

Each parser stores the raw value it decided on beside the decision, because these standards keep
changing and a curator must be able to re-read what we saw. A signal that cannot be read never
counts as permission: parse failures give ``decision="deny"`` with ``error`` set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

ALLOW = "allow"  # the signal was read and permits use
DENY = "deny"  # the signal was read and refuses use (or could not be read: fail closed)
NONE = "none"  # nothing was declared (absent header, 404 policy file, no assertion)
OFF = "off"  # the check is switched off in clearance.yaml `signals:`


@dataclass(frozen=True)
class SignalResult:
    check: str  # switch name in clearance.yaml `signals:` (e.g. "tdmrep", "c2pa")
    decision: str  # ALLOW | DENY | NONE | OFF
    found: str | None = None  # raw evidence (header value, rule line, JSON entry, XMP value)
    reason: str | None = None  # reason code from pipeline.runs.reasons when decision == DENY
    detail: str | None = None  # human-readable: where it was found, why, parse error
    error: bool = False  # True when DENY comes from a failure to read the signal

    @property
    def denies(self) -> bool:
        return self.decision == DENY

    def as_row(self) -> dict[str, object]:
        """The `signals` column entry (pipeline.runs.schema.SignalCheck)."""
        return {
            "check": self.check,
            "ran": self.decision != OFF,
            "found": self.found,
            "decision": self.decision,
            "detail": self.detail,
        }


def header_values(headers: Mapping[Any, Any] | None, name: str) -> list[str]:
    """Every value of header ``name`` (case-insensitive), in order, decoded as latin-1 text.

    Accepts a plain ``dict[str, str]``, bytes keys or values, and list values (Scrapy's
    ``Headers.items()`` and ``getlist()`` shape), so a parser sees each field line separately
    instead of one value that a client has already joined or truncated to the last line.
    """
    if not headers:
        return []
    wanted = name.lower()
    found: list[str] = []
    for key, value in headers.items():
        key_text = key.decode("latin-1") if isinstance(key, bytes | bytearray) else str(key)
        if key_text.strip().lower() != wanted:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if item is None:
                continue
            found.append(
                item.decode("latin-1") if isinstance(item, bytes | bytearray) else str(item)
            )
    return found


def unreadable(check: str, reason: str, detail: str, found: str | None = None) -> SignalResult:
    """A signal that could not be read: refuse, and say why (never counts as permission)."""
    return SignalResult(check, DENY, found=found, reason=reason, detail=detail, error=True)


def clip(text: str | None, limit: int = 500) -> str | None:
    """Evidence stored in a row is bounded: long raw values keep their head and their length."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text)} chars]"


def evidence(result: SignalResult) -> str:
    """A rejection's `detail`: the raw value found, then where and why."""
    parts = [p for p in (result.found, result.detail) if p]
    return "; ".join(parts) or result.decision


def located(result: SignalResult, where: str) -> SignalResult:
    """Prefix a result's detail with the policy file it came from (evidence of where)."""
    if result.decision == NONE or not where:
        return result
    return replace(result, detail=f"{where}: {result.detail}" if result.detail else where)
