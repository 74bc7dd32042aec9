"""Build-stage filters: current consent, takedowns, licence policy and de-duplication over
Arrow tables.

Each filter implements only :meth:`BuildFilter.filter` (one row in, keep or ``(False, reason,
detail)`` out); the base class materialises just the columns a filter declares, counts
total/kept/dropped per reason and turns every dropped row into an exclusion row
(``EXCLUSIONS_SCHEMA``), because exclusions are audit evidence and are always written. A filter
that can decide a whole table with Arrow compute also overrides :meth:`BuildFilter.decide`
(every filter here does; its ``filter`` stays as the row-by-row statement of the rule, and
tests hold the two to the same verdicts).

The build streams (:mod:`pipeline.build.stream`): ``partition_by`` says which rows a verdict may
depend on, so the build knows how it may split the input. ``None``: the row alone (consent,
takedown, licence; any record batch will do). A tuple of columns: only rows equal in them
(dedupe: ``sha256``), so the build hands the filter one hash partition of the key columns at a
time. ``()``, the default: the whole table at once (right for any filter, but held in memory).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any, ClassVar, Literal, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.build.latest import EVENTS_SCHEMA, latest_verdicts
from pipeline.build.optouts import SourceOptouts, optout_verdicts
from pipeline.build.stream import sort_key
from pipeline.build.takedowns import TakedownMatcher
from pipeline.registry.config import Config
from pipeline.registry.eligibility import Eligibility, check
from pipeline.registry.licences import effective_allow, is_allowed
from pipeline.registry.spdx import LicenceError, is_licence_ref
from pipeline.registry.takedowns import Takedown
from pipeline.runs import reasons
from pipeline.runs.schema import EXCLUSIONS_SCHEMA, ITEMS_SCHEMA

POS = "_pos"  # the build's candidate position (pipeline.build.stream), carried to exclusions

Keep = Literal[True]
Drop = tuple[Literal[False], str, str | None]
Verdict = Keep | Drop
# What decide returns for the dropped rows: lists, or string arrays (vectorised filters).
Reasons: TypeAlias = "list[str] | pa.Array | pa.ChunkedArray"
Details: TypeAlias = "list[str | None] | pa.Array | pa.ChunkedArray"


class BuildFilter(ABC):
    """Base of every build step: subclasses set ``name``/``columns`` and implement ``filter``."""

    name: ClassVar[str] = "filter"
    columns: ClassVar[tuple[str, ...]] = ()
    # False: the exclusion rows leave url and page_url null (takedowns: no map of removed URLs).
    audit_urls: ClassVar[bool] = True
    # Which rows a verdict may depend on (see the module docstring): None the row alone, a
    # tuple of columns the rows equal in them, () the whole table.
    partition_by: ClassVar[tuple[str, ...] | None] = ()

    def __init__(self) -> None:
        self.stats: Counter[str] = Counter()

    def prepare(self, table: pa.Table) -> pa.Table:
        """Reorder the input if the filter needs it (dedupe sorts); the default keeps it."""
        return table

    @abstractmethod
    def filter(self, row: dict[str, Any]) -> Verdict:
        """Keep (``True``) or drop (``(False, reason, detail)``) one row."""

    def decide(self, table: pa.Table) -> tuple[pa.Array, Reasons, Details]:
        """(keep mask, then the reason and detail of each dropped row in table order, as lists
        or string arrays) for a prepared table; by default :meth:`filter` decides row by row."""
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
        prepared, mask, rows = self.split(table)
        # Nothing dropped: the table itself, not a copy (most batches of most filters).
        return (prepared if mask is None else prepared.filter(mask)), rows

    # The build (pipeline.build.stream) calls split instead when __call__ is this one.
    __call__.uses_split = True  # type: ignore[attr-defined]

    def split(self, table: pa.Table) -> tuple[pa.Table, pa.Array | None, pa.Table]:
        """(the prepared table, its keep mask or None when every row is kept, exclusion rows):
        what :meth:`__call__` returns before it copies the kept rows, for a caller that only
        needs to know which they are (the build takes them from its own wider table)."""
        table = self.prepare(table)
        mask, dropped_reasons, details = self.decide(table)
        codes = _strings(dropped_reasons)
        counts = pc.value_counts(codes).to_pylist() if len(codes) else []
        unknown = {c["values"] for c in counts} - reasons.ALL
        if unknown:
            raise ValueError(f"{self.name}: bad verdict, reason codes {sorted(map(str, unknown))}")
        for c in counts:
            self.stats[f"dropped_{c['values']}"] += c["counts"]
        self.stats["total"] += table.num_rows
        self.stats["kept"] += table.num_rows - len(codes)
        excluded = table.filter(pc.invert(mask))
        rows = exclusion_rows(excluded, codes, details, urls=self.audit_urls)
        if POS in table.column_names:
            rows = rows.append_column(POS, excluded[POS])
        return table, (mask if len(codes) else None), rows

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


def _strings(values: Reasons | Details) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values if values.type == pa.string() else values.cast(pa.string())
    return pa.array(values, pa.string())


def exclusion_rows(
    items: pa.Table, reason_codes: Reasons, details: Details, *, urls: bool = True
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
            "reason": _strings(reason_codes),
            "detail": _strings(details),
            "at": items["fetched_at"],
            "row_id": items["row_id"],
            "run_id": items["run_id"],
        },
        schema=EXCLUSIONS_SCHEMA,
    )


def decide_per_value(
    column: pa.Array | pa.ChunkedArray, verdict: Callable[[Any], Verdict]
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Decide each distinct value of ``column`` once (``verdict``), then map every row through
    the dictionary: (keep mask, reasons and details of the dropped rows in row order)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = pc.dictionary_encode(column, null_encoding="encode")
    verdicts = [verdict(value) for value in encoded.dictionary.to_pylist()]
    keep = np.array([v is True for v in verdicts], dtype=bool)
    codes = pa.array([None if v is True else v[1] for v in verdicts], pa.string())
    texts = pa.array([None if v is True else v[2] for v in verdicts], pa.string())
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    mask = keep[indices] if len(keep) else np.ones(len(indices), dtype=bool)
    dropped = pa.array(indices[~mask])
    return pa.array(mask, pa.bool_()), codes.take(dropped), texts.take(dropped)


class ConsentFilter(BuildFilter):
    """Re-applies the *current* consent and age verification of each row's source: a source no
    longer eligible (consent revoked, suspended or expired, age verification lapsed, a
    blocklist suspension) has all its rows excluded ``revoked``.

    A row crawled under a consent record that has since changed (different hash) is kept when
    the current record is eligible; the build records such rows in manifest.json.
    """

    name = "consent"
    columns = ("source_id",)
    partition_by = None

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

    def decide(self, table: pa.Table) -> tuple[pa.Array, Reasons, Details]:
        return decide_per_value(table["source_id"], lambda s: self.filter({"source_id": s}))

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
            # At build time any lapse is a revocation of what the rows were admitted under
            # (DESIGN "Revocation"); the detail says which (revoked, suspended, expired, age
            # verification lapsed), and manifest.json's sources keep the eligibility reason.
            return False, reasons.REVOKED, verdict.message
        return True


def url_keys(table: pa.Table) -> pa.Array:
    """One binary value per (source_id, url) of a table."""
    if not table.num_rows:
        return pa.array([], pa.binary())
    return sort_key(table, ("source_id", "url"))


class LatestFetchFilter(BuildFilter):
    """Keeps only each URL's latest fetch: earlier item rows of a URL fetched again are
    ``superseded``, and every row of a URL whose latest event says gone (404/410) or opted out
    leaves with that reason (:mod:`pipeline.build.latest`)."""

    name = "latest"
    columns = ("source_id", "url", "fetched_at", "run_id")
    partition_by = ("source_id", "url")

    def __init__(self, events: pa.Table | None = None):
        super().__init__()
        self.events = EVENTS_SCHEMA.empty_table() if events is None else events
        self._event_keys = url_keys(self.events)

    def decide(self, table: pa.Table) -> tuple[pa.Array, Reasons, Details]:
        # Only a URL fetched more than once, or named by an event, can lose a row: the joins of
        # latest_verdicts run on those rows alone (a few percent of a build), the rest stay.
        keys = url_keys(table)
        counts = pc.value_counts(keys)
        again = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
        named = pc.is_in(keys, value_set=pa.concat_arrays([again, self._event_keys]))
        rows = np.flatnonzero(named.to_numpy(zero_copy_only=False))
        if len(rows) == table.num_rows:
            return latest_verdicts(table, self.events)
        mask = np.ones(table.num_rows, dtype=bool)
        if not len(rows):
            return pa.array(mask), [], []
        sub_mask, dropped, details = latest_verdicts(table.take(pa.array(rows)), self.events)
        mask[rows] = sub_mask.to_numpy(zero_copy_only=False)
        return pa.array(mask), dropped, details

    def filter(self, row: dict[str, Any]) -> Verdict:
        schema = pa.schema([ITEMS_SCHEMA.field(c) for c in self.columns])
        one = pa.Table.from_pylist([{c: row.get(c) for c in self.columns}], schema=schema)
        _, dropped, details = self.decide(one)
        return (False, str(dropped[0]), str(details[0])) if len(dropped) else True


class TakedownFilter(BuildFilter):
    """Excludes every row an active takedown names (``takedown``), decided for the whole table
    at once by :class:`pipeline.build.takedowns.TakedownMatcher`.

    The exclusion row carries the takedown id (``detail``: ``takedown T-000001``) and the
    ``row_id``, never the URL: its url and page_url stay null.
    """

    name = "takedown"
    columns = ("url", "page_url", "sha256", "pdq", "creator", "source_id")
    audit_urls = False
    partition_by = None

    def __init__(self, takedowns: Sequence[Takedown]):
        super().__init__()
        self.matcher = TakedownMatcher([t for t in takedowns if t.active])
        # Only what the active takedowns match on is read (no pdq column without a pdq one).
        self.columns = tuple(self.matcher.columns)  # type: ignore[misc,assignment]

    def decide(self, table: pa.Table) -> tuple[pa.Array, list[str], list[str | None]]:
        positions = self.matcher.positions(table)
        hit = positions >= 0
        texts = pa.array([f"takedown {t.id}" for t in self.matcher.takedowns], pa.string())
        details = texts.take(pa.array(positions[hit]))
        return (
            pa.array(~hit, pa.bool_()),
            pa.repeat(pa.scalar(reasons.TAKEDOWN, pa.string()), len(details)),
            details,
        )

    def filter(self, row: dict[str, Any]) -> Verdict:
        schema = pa.schema([ITEMS_SCHEMA.field(c) for c in self.columns])
        one = pa.Table.from_pylist([{c: row.get(c) for c in self.columns}], schema=schema)
        _, _, details = self.decide(one)
        texts = _strings(details).to_pylist()
        return (False, reasons.TAKEDOWN, texts[0]) if texts else True


class OptoutFilter(BuildFilter):
    """Excludes the rows of creators on their source's opt-out lists (``takedown``; detail names
    the list, never the creator; no URL in the audit row), and every row of a source whose
    declared list cannot be read (:mod:`pipeline.build.optouts`)."""

    name = "optouts"
    columns = ("source_id", "creator")
    audit_urls = False
    partition_by = None

    def __init__(self, optouts: SourceOptouts | None = None):
        super().__init__()
        self.optouts = optouts or SourceOptouts()

    def decide(self, table: pa.Table) -> tuple[pa.Array, Reasons, Details]:
        return optout_verdicts(table, self.optouts)

    def summary(self) -> dict[str, Any]:
        """Adds which lists were applied (where from, sha256, how many names; no names)."""
        return {**super().summary(), "lists": self.optouts.summary()}

    def filter(self, row: dict[str, Any]) -> Verdict:
        schema = pa.schema([ITEMS_SCHEMA.field(c) for c in self.columns])
        one = pa.Table.from_pylist([{c: row.get(c) for c in self.columns}], schema=schema)
        _, dropped, details = self.decide(one)
        return (False, str(dropped[0]), str(details[0])) if len(dropped) else True


class LicenceFilter(BuildFilter):
    """Keeps rows whose SPDX expression can be used under the effective allow list
    (``settings.licences.effective``: ``allow`` plus the expanded presets).

    No licence at all, or only ``LicenseRef-`` ids the allow list does not name, is
    ``no_licence``; an SPDX licence outside the policy is ``licence_not_allowed``.
    """

    name = "licence"
    columns = ("licence",)
    partition_by = None

    def __init__(self, allow: list[str] | tuple[str, ...], presets: tuple[str, ...] = ()):
        super().__init__()
        self.allow = list(allow)
        self.presets = tuple(presets)
        self.verdicts: dict[str | None, Verdict] = {}

    def decide(self, table: pa.Table) -> tuple[pa.Array, Reasons, Details]:
        return decide_per_value(table["licence"], lambda v: self.filter({"licence": v}))

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
    columns = ("sha256", "source_id", "url", "row_id", "run_id", "fetched_at")
    partition_by = ("sha256",)
    _ORDER = ("sha256", "source_id", "url", "run_id", "fetched_at", "row_id")

    def __init__(self) -> None:
        super().__init__()
        self._kept: dict[str, Any] | None = None

    def prepare(self, table: pa.Table) -> pa.Table:
        # Rows equal in every ordered column: the earlier candidate first, however split.
        order = [*self._ORDER, POS] if POS in table.column_names else self._ORDER
        return table.sort_by([(column, "ascending") for column in order])

    def decide(self, table: pa.Table) -> tuple[pa.Array, Reasons, Details]:
        """Sorted by sha256, a row is kept when its sha256 differs from the row before; a
        dropped row names the first row of its run of equal hashes."""
        n = table.num_rows
        sha = table["sha256"].combine_chunks()
        first = np.ones(n, dtype=bool)
        if n > 1:
            before, after = sha.slice(0, n - 1), sha.slice(1)
            same = pc.fill_null(pc.equal(after, before), False)
            both_null = pc.and_(pc.is_null(after), pc.is_null(before))
            first[1:] = ~pc.or_(same, both_null).to_numpy(zero_copy_only=False)
        starts = np.flatnonzero(first)
        kept_of = starts[np.cumsum(first) - 1][~first]
        kept = table.select(["row_id", "source_id", "url", "run_id"]).take(pa.array(kept_of))
        details = pc.binary_join_element_wise(
            "same sha256 as kept row_id ", _text(kept["row_id"]), " (", _text(kept["source_id"]),
            " ", _text(kept["url"]), ", run ", _text(kept["run_id"]), ")", "",
        )
        return (
            pa.array(first, pa.bool_()),
            pa.repeat(pa.scalar(reasons.DUPLICATE, pa.string()), len(kept_of)),
            details,
        )

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


def _text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Strings as an f-string shows them (a null as ``None``)."""
    return pc.fill_null(column.cast(pa.string()), "None")


def default_filters(
    config: Config,
    today: date,
    suspended: frozenset[str] | set[str],
    takedowns: Sequence[Takedown] = (),
    events: pa.Table | None = None,
    optouts: SourceOptouts | None = None,
    **_: Any,
) -> list[BuildFilter]:
    """The build chain, in order. Dedupe runs last so that a duplicate of a row excluded for
    consent, takedown or licence reasons never displaces an admissible one; a row taken down
    counts as ``takedown`` whatever its licence. ``events``: the runs' ending rejections
    (:func:`pipeline.build.latest.url_events`), so only each URL's latest fetch stays.
    ``optouts``: the sources' contributor opt-out lists (:mod:`pipeline.build.optouts`)."""
    return [
        ConsentFilter(config, today, suspended),
        LatestFetchFilter(events),
        TakedownFilter(takedowns),
        OptoutFilter(optouts),
        LicenceFilter(config.settings.licences.effective, tuple(config.settings.licences.preset)),
        DedupeFilter(),
    ]
