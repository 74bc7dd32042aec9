"""Build-stage filters: current consent, takedowns, licence policy and de-duplication over
Arrow tables.

Each filter implements only :meth:`BuildFilter.filter` (one row in, keep or ``(False, reason,
detail)`` out); the base class materialises just the columns a filter declares, counts
total/kept/dropped per reason and turns every dropped row into an exclusion row
(``EXCLUSIONS_SCHEMA``), because exclusions are audit evidence and are always written. A filter
that can decide a whole table with Arrow compute also overrides :meth:`BuildFilter.decide`
(the takedown filter does). The same functions can later run per batch on a distributed engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from datetime import date
from typing import Any, ClassVar, Literal

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.build.takedowns import TakedownMatcher
from pipeline.registry.config import Config
from pipeline.registry.eligibility import Eligibility, check
from pipeline.registry.licences import effective_allow, is_allowed
from pipeline.registry.spdx import LicenceError, is_licence_ref
from pipeline.registry.takedowns import Takedown
from pipeline.runs import reasons
from pipeline.runs.schema import EXCLUSIONS_SCHEMA, ITEMS_SCHEMA

Keep = Literal[True]
Drop = tuple[Literal[False], str, str | None]
Verdict = Keep | Drop


class BuildFilter(ABC):
    """Base of every build step: subclasses set ``name``/``columns`` and implement ``filter``."""

    name: ClassVar[str] = "filter"
    columns: ClassVar[tuple[str, ...]] = ()
    # False: the exclusion rows leave url and page_url null (takedowns: no map of removed URLs).
    audit_urls: ClassVar[bool] = True

    def __init__(self) -> None:
        self.stats: Counter[str] = Counter()

    def prepare(self, table: pa.Table) -> pa.Table:
        """Reorder the input if the filter needs it (dedupe sorts); the default keeps it."""
        return table

    @abstractmethod
    def filter(self, row: dict[str, Any]) -> Verdict:
        """Keep (``True``) or drop (``(False, reason, detail)``) one row."""

    def decide(self, table: pa.Table) -> tuple[pa.Array, list[str], list[str | None]]:
        """(keep mask, then the reason and detail of each dropped row in table order) for a
        prepared table; by default :meth:`filter` decides row by row."""
        keep: list[bool] = []
        dropped_reasons: list[str] = []
        details: list[str | None] = []
        for row in table.select(list(self.columns)).to_pylist():
            verdict = self.filter(row)
            if verdict is True:
                keep.append(True)
                continue
            ok, reason, detail = verdict
            if ok or reason not in reasons.ALL:
                raise ValueError(f"{self.name}: bad verdict {verdict!r}")
            keep.append(False)
            dropped_reasons.append(reason)
            details.append(detail)
        return pa.array(keep, pa.bool_()), dropped_reasons, details

    def __call__(self, table: pa.Table) -> tuple[pa.Table, pa.Table]:
        """Return (kept rows, exclusion rows) for one table."""
        table = self.prepare(table)
        mask, dropped_reasons, details = self.decide(table)
        unknown = set(dropped_reasons) - reasons.ALL
        if unknown:
            raise ValueError(f"{self.name}: bad verdict, reason codes {sorted(unknown)}")
        self.stats.update(f"dropped_{reason}" for reason in dropped_reasons)
        self.stats["total"] += table.num_rows
        self.stats["kept"] += table.num_rows - len(dropped_reasons)
        excluded = table.filter(pc.invert(mask))
        return table.filter(mask), exclusion_rows(
            excluded, dropped_reasons, details, urls=self.audit_urls
        )

    def summary(self) -> dict[str, Any]:
        dropped = {
            key.removeprefix("dropped_"): n
            for key, n in sorted(self.stats.items())
            if key.startswith("dropped_")
        }
        return {
            "name": self.name,
            "total": self.stats["total"],
            "kept": self.stats["kept"],
            "dropped": dropped,
        }


def exclusion_rows(
    items: pa.Table, reason_codes: list[str], details: list[str | None], *, urls: bool = True
) -> pa.Table:
    """Exclusion rows for dropped item rows; ``at`` is the row's own fetch time, so the same
    inputs always give the same bytes. ``urls=False`` leaves url and page_url null."""
    n = items.num_rows
    no_url = pa.nulls(n, pa.string())
    return pa.table(
        {
            "url": items["url"] if urls else no_url,
            "page_url": items["page_url"] if urls else no_url,
            "source_id": items["source_id"],
            "stage": pa.array([reasons.STAGE_BUILD] * n, pa.string()),
            "reason": pa.array(reason_codes, pa.string()),
            "detail": pa.array(details, pa.string()),
            "at": items["fetched_at"],
            "row_id": items["row_id"],
            "run_id": items["run_id"],
        },
        schema=EXCLUSIONS_SCHEMA,
    )


class ConsentFilter(BuildFilter):
    """Re-applies the *current* consent and age verification of each row's source.

    A row crawled under a consent record that has since changed (different hash) is kept when
    the current record is eligible; the build records such rows in manifest.json.
    """

    name = "consent"
    columns = ("source_id",)

    def __init__(self, config: Config, today: date, suspended: frozenset[str] | set[str]):
        super().__init__()
        self.config = config
        self.today = today
        self.suspended = frozenset(suspended)
        self.eligibility: dict[str, Eligibility | None] = {}

    def current(self, source_id: str) -> Eligibility | None:
        if source_id not in self.eligibility:
            source = self.config.sources.get(source_id)
            self.eligibility[source_id] = (
                None
                if source is None
                else check(source, self.config.settings, self.today, source_id in self.suspended)
            )
        return self.eligibility[source_id]

    def filter(self, row: dict[str, Any]) -> Verdict:
        source_id = row["source_id"]
        verdict = self.current(source_id)
        if verdict is None:
            return (
                False,
                reasons.CONSENT_INACTIVE,
                f"source {source_id!r} is not in the current config; its consent cannot be checked",
            )
        if not verdict.eligible:
            return False, verdict.reason or reasons.CONSENT_INACTIVE, verdict.message
        return True


class TakedownFilter(BuildFilter):
    """Excludes every row an active takedown names (``takedown``), decided for the whole table
    at once by :class:`pipeline.build.takedowns.TakedownMatcher`.

    The exclusion row carries the takedown id (``detail``: ``takedown T-000001``) and the
    ``row_id``, never the URL: its url and page_url stay null.
    """

    name = "takedown"
    columns = ("url", "page_url", "sha256", "pdq", "creator", "source_id")
    audit_urls = False

    def __init__(self, takedowns: Sequence[Takedown]):
        super().__init__()
        self.matcher = TakedownMatcher([t for t in takedowns if t.active])

    def decide(self, table: pa.Table) -> tuple[pa.Array, list[str], list[str | None]]:
        positions = self.matcher.positions(table)
        hit = positions >= 0
        ids = [self.matcher.takedowns[p].id for p in positions[hit].tolist()]
        return (
            pa.array(~hit, pa.bool_()),
            [reasons.TAKEDOWN] * len(ids),
            [f"takedown {i}" for i in ids],
        )

    def filter(self, row: dict[str, Any]) -> Verdict:
        schema = pa.schema([ITEMS_SCHEMA.field(c) for c in self.columns])
        one = pa.Table.from_pylist([{c: row.get(c) for c in self.columns}], schema=schema)
        _, _, details = self.decide(one)
        return (False, reasons.TAKEDOWN, details[0]) if details else True


class LicenceFilter(BuildFilter):
    """Keeps rows whose SPDX expression can be used under the effective allow list
    (``settings.licences.effective``: ``allow`` plus the expanded presets).

    No licence at all, or only ``LicenseRef-`` ids the allow list does not name, is
    ``no_licence``; an SPDX licence outside the policy is ``licence_not_allowed``.
    """

    name = "licence"
    columns = ("licence",)

    def __init__(self, allow: list[str] | tuple[str, ...], presets: tuple[str, ...] = ()):
        super().__init__()
        self.allow = list(allow)
        self.presets = tuple(presets)
        self.verdicts: dict[str | None, Verdict] = {}

    def filter(self, row: dict[str, Any]) -> Verdict:
        licence = row["licence"]
        if licence not in self.verdicts:
            self.verdicts[licence] = self._decide(licence)
        return self.verdicts[licence]

    def policy(self) -> str:
        """The policy in words, for exclusion details."""
        named = list(self.presets)
        listed = [a for a in self.allow if not named or a not in _preset_ids(named)]
        parts = [f"preset {', '.join(named)}"] if named else []
        if listed or not named:
            parts.append(f"allow list: {', '.join(listed) or '(empty)'}")
        return "; ".join(parts)

    def _decide(self, licence: str | None) -> Verdict:
        if licence is None or not licence.strip():
            return False, reasons.NO_LICENCE, f"no licence ({self.policy()})"
        try:
            allowed = is_allowed(licence, self.allow)
        except LicenceError as exc:
            return False, reasons.LICENCE_NOT_ALLOWED, f"invalid SPDX expression: {exc}"
        if allowed:
            return True
        if is_licence_ref(licence):
            return (
                False,
                reasons.NO_LICENCE,
                f"{licence} is no SPDX-listed licence and the policy does not name it "
                f"({self.policy()})",
            )
        return (
            False,
            reasons.LICENCE_NOT_ALLOWED,
            f"{licence} is not allowed ({self.policy()})",
        )


def _preset_ids(names: list[str]) -> frozenset[str]:
    return frozenset(effective_allow((), tuple(names)))


class DedupeFilter(BuildFilter):
    """Keeps one row per ``sha256``: the one with the smallest (source_id, url).

    Ties (the same URL crawled in two runs) go to the earliest run, then the earliest fetch, so
    the choice never depends on input order.
    """

    name = "dedupe"
    columns = ("sha256", "source_id", "url", "row_id", "run_id")
    _ORDER = ("sha256", "source_id", "url", "run_id", "fetched_at", "row_id")

    def __init__(self) -> None:
        super().__init__()
        self._kept: dict[str, Any] | None = None

    def prepare(self, table: pa.Table) -> pa.Table:
        return table.sort_by([(column, "ascending") for column in self._ORDER])

    def filter(self, row: dict[str, Any]) -> Verdict:
        kept = self._kept
        if kept is not None and kept["sha256"] == row["sha256"]:
            return (
                False,
                reasons.DUPLICATE,
                f"same sha256 as kept row_id {kept['row_id']} "
                f"({kept['source_id']} {kept['url']}, run {kept['run_id']})",
            )
        self._kept = row
        return True


def default_filters(
    config: Config,
    today: date,
    suspended: frozenset[str] | set[str],
    takedowns: Sequence[Takedown] = (),
) -> list[BuildFilter]:
    """The build chain, in order. Dedupe runs last so that a duplicate of a row excluded for
    consent, takedown or licence reasons never displaces an admissible one; a row taken down
    counts as ``takedown`` whatever its licence."""
    return [
        ConsentFilter(config, today, suspended),
        TakedownFilter(takedowns),
        LicenceFilter(config.settings.licences.effective, tuple(config.settings.licences.preset)),
        DedupeFilter(),
    ]
