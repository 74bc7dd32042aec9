"""Takedowns: what a person asked to be removed, as recorded in ``data/state.sqlite``.

A takedown names rows by one key (``kind``): a URL, a URL prefix, a sha256, a PDQ hash within a
distance, a creator or a whole source. This module holds the record and the validation of a
request; the records live in :class:`pipeline.registry.state.State` (added, listed, removed
with a reason, never deleted) and the matching over Arrow tables is
:mod:`pipeline.build.takedowns`, shared by the build and ``clearance impact``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pipeline.runs.schema import ItemRow

KINDS: tuple[str, ...] = ("url", "url-prefix", "sha256", "pdq", "creator", "source")
DEFAULT_PDQ_DISTANCE = 31
MAX_PDQ_DISTANCE = 256
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_ID = re.compile(r"^T-[0-9]{6,}$")


class TakedownError(ValueError):
    """A takedown request that cannot be recorded; ``flag`` names the CLI option at fault."""

    def __init__(self, flag: str, message: str):
        super().__init__(f"{flag}: {message}")
        self.flag = flag


@dataclass(frozen=True)
class Takedown:
    id: str
    kind: str
    value: str
    distance: int | None
    reason: str
    requested_by: str | None
    created_at: datetime
    removed_at: datetime | None = None
    removal_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.removed_at is None

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        for key in ("created_at", "removed_at"):
            doc[key] = None if doc[key] is None else doc[key].isoformat()
        doc["active"] = self.active
        return doc


def takedown_id(number: int) -> str:
    return f"T-{number:06d}"


def takedown_number(value: str) -> int | None:
    """The row number of a takedown id (``T-000012`` -> 12), None when it is not one."""
    return int(value[2:]) if _ID.match(value) else None


def flag_of(kind: str) -> str:
    return f"--{kind}"


def check_reason(reason: str | None, flag: str = "--reason") -> str:
    if reason is None or not reason.strip():
        raise TakedownError(flag, "must not be empty")
    return reason.strip()


def check_request(kind: str, value: str, distance: int | None = None) -> tuple[str, int | None]:
    """Validate one request: (value as stored, distance). Raises :class:`TakedownError`.

    The value is stored as asked (trimmed; hex lower-cased): URLs are normalised when matched,
    so a later change of the normalisation applies to old takedowns too.
    """
    if kind not in KINDS:
        raise TakedownError("--kind", f"unknown takedown kind {kind!r}; one of {', '.join(KINDS)}")
    flag = flag_of(kind)
    value = (value or "").strip()
    if not value:
        raise TakedownError(flag, "must not be empty")
    if distance is not None and kind != "pdq":
        raise TakedownError("--distance", "applies only to --pdq")
    if kind in ("sha256", "pdq"):
        if not _HEX64.match(value):
            what = "sha256" if kind == "sha256" else "PDQ hash"
            raise TakedownError(flag, f"expected a {what} of 64 hex digits, got {value!r}")
        value = value.lower()
    if kind == "pdq":
        distance = DEFAULT_PDQ_DISTANCE if distance is None else distance
        if not 0 <= distance <= MAX_PDQ_DISTANCE:
            raise TakedownError(
                "--distance", f"must be within 0..{MAX_PDQ_DISTANCE}, got {distance}"
            )
    if kind in ("url", "url-prefix"):
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise TakedownError(flag, f"expected an http(s) URL with a host, got {value!r}")
    return value, distance


# The item columns each kind matches on (the build and impact read only these).
MATCH_COLUMNS: dict[str, tuple[str, ...]] = {
    "url": ("url", "page_url"),
    "url-prefix": ("url", "page_url"),
    "sha256": ("sha256",),
    "pdq": ("pdq",),
    "creator": ("creator",),
    "source": ("source_id",),
}
assert all(c in ItemRow.model_fields for cols in MATCH_COLUMNS.values() for c in cols)
