"""Opt-out signal parsers: pure functions from raw bytes/strings to a :class:`SignalResult`.

Each parser stores the raw value it decided on beside the decision, because these standards keep
changing and a curator must be able to re-read what we saw. A signal that cannot be read never
counts as permission: parse failures give ``decision="deny"`` with ``error`` set.
"""

from __future__ import annotations

from dataclasses import dataclass

ALLOW = "allow"  # the signal was read and permits use
DENY = "deny"  # the signal was read and refuses use (or could not be read: fail closed)
NONE = "none"  # nothing was declared (absent header, 404 policy file, no assertion)
OFF = "off"  # the check is switched off in clearance.yaml `signals:`


@dataclass(frozen=True)
class SignalResult:
    check: str  # switch name in clearance.yaml `signals:` (e.g. "tdmrep", "c2pa")
    decision: str  # ALLOW | DENY | NONE | OFF
    found: str | None = None  # raw evidence (header value, rule line, JSON entry, XMP value)
    reason: str | None = None  # reason code from pipeline.reasons when decision == DENY
    detail: str | None = None  # human-readable: where it was found, why, parse error
    error: bool = False  # True when DENY comes from a failure to read the signal

    @property
    def denies(self) -> bool:
        return self.decision == DENY

    def as_row(self) -> dict[str, object]:
        """The `signals` column entry (pipeline.schema.SignalCheck)."""
        return {
            "check": self.check,
            "ran": self.decision != OFF,
            "found": self.found,
            "decision": self.decision,
            "detail": self.detail,
        }
