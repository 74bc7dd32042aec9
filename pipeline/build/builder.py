"""Manifest build: completed runs -> ``data/manifests/<name>/v<N>/``, atomic and reproducible.

The union of the chosen runs' items goes through :func:`pipeline.build.filters.default_filters`
(current consent, active takedowns from ``state.sqlite``, licence policy, dedupe); kept rows are
written as ``data/part-*.parquet``, every dropped row as ``audit/exclusions.parquet``, and
``manifest.json`` records inputs, counts, checksums and the rows removed since the previous
version, counted per reason (:mod:`pipeline.build.removals`). A version is assembled in a hidden
``.tmp-v<N>-<pid>`` directory under an exclusive lock and renamed into place, so readers see a
whole version or none.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import SCHEMA_VERSION
from pipeline.build import reuse
from pipeline.build.croissant import write_croissant
from pipeline.build.filters import BuildFilter, default_filters
from pipeline.build.latest import url_events
from pipeline.build.optouts import source_optouts
from pipeline.build.removals import Removals
from pipeline.build.stream import (
    BATCH_ROWS,
    KEY_ROWS,
    MEMORY_ROWS,
    PARQUET_OPTIONS,
    POS,
    ROW_GROUP_ROWS,
    SORT_ROWS,
    KeySample,
    PartWriter,
    RangeSorter,
    Spill,
    concat,
    read_batches,
    run_chain,
    sort_key,
)
from pipeline.build.takedowns import active_takedowns
from pipeline.build.versions import (
    AUDIT_DIR,
    DATA_DIR,
    EXCLUSIONS_FILE,
    MANIFEST_JSON,
    check_name,
    latest_version,
    manifest_root,
    resolve_manifest,
    sha256_file,
)
from pipeline.registry.config import Config
from pipeline.registry.eligibility import check
from pipeline.registry.takedowns import Takedown
from pipeline.runs import reasons
from pipeline.runs.schema import EXCLUSIONS_SCHEMA, ITEMS_SCHEMA
from pipeline.runs.writer import RunInfo, completed_runs, fsync_dir, write_json_atomic

__all__ = [
    "BuildError",
    "BuildResult",
    "Tuning",
    "build_manifest",
    "latest_version",
    "resolve_manifest",
    "sha256_file",
    "write_parquet",
]

logger = logging.getLogger(__name__)

PART_ROWS = 1_000_000
CRASH_ENV = "CLEARANCE_TEST_CRASH_BUILD"  # "after_parts": exit right after the part files
_KEPT_ORDER = ("source_id", "url", "row_id", "run_id")
_EXCLUSION_ORDER = ("reason", "url", "row_id", "run_id")
# Read for the decisions besides what the filters declare: what exclusion rows, the counts,
# consent_changed and the published order need.
_KEY_COLUMNS = ("row_id", "url", "page_url", "source_id", "consent_id", "consent_sha256",
                "fetched_at", "licence", "licence_source", "run_id")
_REUSE_SCHEMA = pa.schema([*(pa.field(c, pa.string()) for c in _KEPT_ORDER),
                           pa.field(POS, pa.int64())])
SPILL_DIR = ".spill"  # inside the version's hidden tmp dir; removed before the rename


class _Clock:
    """Debug log lines of how long each step of a build took."""

    def __init__(self, name: str):
        self.name, self.start = name, time.perf_counter()
        self.last = self.start

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        logger.debug("build %s: %s in %.2f s (%.2f s in all)", self.name, step, now - self.last,
                     now - self.start)
        self.last = now


class BuildError(RuntimeError):
    """A build that must not commit (e.g. the conservation check failed)."""


@dataclass(frozen=True)
class BuildResult:
    name: str
    version: int
    path: Path
    counts: dict[str, Any]


@dataclass(frozen=True)
class Tuning:
    """How much a build holds at once: rows per record batch read, key-column rows per spilled
    partition of a global filter, candidates below which key columns and exclusions are not
    spilled, full rows per bucket of the published order. Any values give the same bytes; the
    defaults keep a 10M-row build under 1 GB."""

    batch_rows: int = BATCH_ROWS
    key_rows: int = KEY_ROWS
    memory_rows: int = MEMORY_ROWS
    sort_rows: int = SORT_ROWS


def build_manifest(
    config: Config,
    data_dir: Path,
    name: str,
    run_ids: list[str] | None = None,
    today: date | None = None,
    suspended: frozenset[str] | set[str] = frozenset(),
    *,
    part_rows: int = PART_ROWS,
    takedowns: list[Takedown] | None = None,
    tuning: Tuning | None = None,
) -> BuildResult:
    """Build and commit the next version of manifest ``name`` from completed runs.

    ``takedowns`` default: the active ones in the data dir's ``state.sqlite``."""
    check_name(name)
    if part_rows < 1:
        raise ValueError(f"part_rows must be positive, got {part_rows}")
    data_dir = Path(data_dir)
    today = today or datetime.now(UTC).date()
    tuning = tuning or Tuning()
    runs = completed_runs(data_dir, run_ids)
    if takedowns is None:
        takedowns = active_takedowns(data_dir)
    filters = default_filters(config, today, suspended, takedowns, events=url_events(runs),
                              optouts=source_optouts(config, runs))

    root = manifest_root(data_dir, name)
    root.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(root / ".lock"):
        _remove_stale_tmp(root)
        previous = latest_version(data_dir, name)
        version = (previous or 0) + 1
        tmp = root / f".tmp-v{version}-{os.getpid()}"
        tmp.mkdir()
        try:
            spill = tmp / SPILL_DIR
            clock = _Clock(name)
            previous_dir = None if previous is None else root / f"v{previous}"
            inputs = [_input_record(run) for run in runs]
            # The previous version's rows' candidate positions, when recorded and still true:
            # re-use then needs no order key of every candidate (pipeline.build.reuse).
            positions = (None if previous_dir is None
                         else reuse.previous_positions(previous_dir, inputs))
            decided = _decide(runs, filters, spill, tuning, previous_dir,
                              {s.id: s.consent_sha256 for s in config.sources.values()},
                              candidate_keys=positions is None)
            clock.lap("decided")
            counts = decided.counts(len(runs))
            if counts["candidates"] != counts["kept"] + counts["excluded"]:
                raise BuildError(
                    f"conservation check failed: {counts['candidates']} candidates != "
                    f"{counts['kept']} kept + {counts['excluded']} excluded; nothing was "
                    "committed"
                )
            manifest = _manifest(name, config, today, suspended, runs, filters, decided, counts,
                                 inputs)
            clock.lap("manifest facts")
            # Counts only: which rows left is a map of what was removed (DESIGN "No removal map").
            manifest["previous_version"] = previous
            # Key columns held in memory (no spills): the part files are written on a thread
            # of their own while this one counts the removals and writes the exclusions (the
            # work of each is mostly Arrow's, outside the GIL). Spilled builds do one at a
            # time, so their memory stays bounded.
            with ThreadPoolExecutor(1, thread_name_prefix="kept-parts") as pool:
                kept_parts = pool.submit(_write_kept, tmp / DATA_DIR, runs, decided, part_rows,
                                         tuning, previous_dir, inputs, positions)
                if not decided.in_memory:
                    kept_parts.result()
                    clock.lap("parts written")
                manifest["removed_since_previous"] = (
                    {} if decided.removals is None else decided.removals.counts()
                )
                clock.lap("removed since previous")
                (tmp / AUDIT_DIR).mkdir()
                _write_exclusions(tmp / AUDIT_DIR, decided, tuning)
                fsync_dir(tmp / AUDIT_DIR)
                clock.lap("exclusions written")
                counts["parts"], published = kept_parts.result()
                if decided.in_memory:
                    clock.lap("parts written (alongside)")
            if os.environ.get(CRASH_ENV) == "after_parts":
                os._exit(1)
            shutil.rmtree(spill, ignore_errors=True)
            manifest.update(version=version,
                            created_at=datetime.now(UTC).isoformat(timespec="seconds"))
            write_croissant(tmp, manifest, data_dir)  # before the checksums, which cover it
            manifest["files"] = checksums(tmp)
            write_json_atomic(tmp / MANIFEST_JSON, manifest)
            fsync_dir(tmp)
            final = root / f"v{version}"
            if published is None:
                reuse.positions_path(final).unlink(missing_ok=True)  # none stale left
            else:
                reuse.write_positions(final, published, inputs, manifest["files"])
            os.rename(tmp, final)
            fsync_dir(root)
            clock.lap("committed")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return BuildResult(name=name, version=version, path=final, counts=counts)


@dataclass
class _Decided:
    """What the decisions left: the kept positions and what to count, publish and order."""

    candidates: int
    kept: np.ndarray  # bool per candidate position
    kept_sample: KeySample
    excluded: Spill  # exclusion rows (with _pos), unsorted
    excluded_sample: KeySample
    removals: Removals | None
    sources: set[str] = field(default_factory=set)
    by_reason: Counter[str] = field(default_factory=Counter)
    by_source: Counter[str] = field(default_factory=Counter)
    by_licence: Counter[str] = field(default_factory=Counter)
    by_licence_source: Counter[str] = field(default_factory=Counter)
    consent: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    kept_rows: int = 0
    # With a previous version and up to Tuning.memory_rows candidates: the order keys of the
    # kept rows and of every candidate, to re-use the previous parts (pipeline.build.reuse).
    reuse_kept: list[pa.Table] | None = None
    reuse_candidates: list[pa.Array] | None = None
    in_memory: bool = False  # key columns not spilled: the version's row positions are kept

    def counts(self, runs: int) -> dict[str, Any]:
        kept = self.kept_rows
        excluded = sum(self.by_reason.values())
        return {
            "runs": runs,
            "candidates": self.candidates,
            "kept": kept,
            "excluded": excluded,
            "excluded_by_reason": _sorted(self.by_reason),
            "kept_by_source": _sorted(self.by_source),
            "kept_by_licence": _sorted(self.by_licence),
            "kept_by_licence_source": _sorted(self.by_licence_source),
        }


def _decide(runs: list[RunInfo], filters: list[BuildFilter], spill: Path, tuning: Tuning,
            previous_dir: Path | None, consent_now: dict[str, str], *,
            candidate_keys: bool = True) -> _Decided:
    """Run the filter chain over the key columns of every candidate, batch by batch;
    ``consent_now``: each configured source's current consent sha256; ``candidate_keys``:
    keep every candidate's order key for re-use (not needed when the previous version's row
    positions are known)."""
    known = pa.array(list(consent_now), pa.string())
    current = pa.array(list(consent_now.values()), pa.string())
    paths = [run.items_path for run in runs]
    total = sum(pq.read_metadata(p).num_rows for p in paths)
    wanted = {*_KEY_COLUMNS, *(c for f in filters for c in f.columns)}
    key_schema = pa.schema([f for f in ITEMS_SCHEMA if f.name in wanted])
    big = total > tuning.memory_rows
    parts = -(-total // tuning.key_rows) if big else 1
    decided = _Decided(
        candidates=total,
        kept=np.zeros(total, dtype=bool),
        kept_sample=KeySample(total),
        excluded=Spill(spill / "excluded" if big else None, 1, "excluded"),
        excluded_sample=KeySample(total),
        removals=None if previous_dir is None else Removals(
            previous_dir, parts, spill / "removals"),
    )
    decided.in_memory = not big
    if previous_dir is not None and not big:
        decided.reuse_kept = []
        if candidate_keys:
            decided.reuse_candidates = []

    def candidates() -> Iterator[pa.Table]:
        for table in read_batches(paths, key_schema, tuning.batch_rows):
            decided.sources.update(pc.unique(table["source_id"]).to_pylist())
            if decided.reuse_candidates is not None:
                decided.reuse_candidates.append(sort_key(table, _KEPT_ORDER))
            yield table

    def on_excluded(index: int, rows: pa.Table) -> None:
        if not rows.num_rows:
            return
        if POS not in rows.column_names:  # a filter that builds its own exclusion rows
            rows = rows.append_column(POS, pa.array(np.full(rows.num_rows, -1, np.int64)))
        decided.by_reason.update(_value_counts(rows["reason"]))
        decided.excluded_sample.add(rows, _EXCLUSION_ORDER[:2])
        decided.excluded.add(rows)
        if decided.removals is not None:
            decided.removals.excluded(rows, index)

    kept_stream = run_chain(
        candidates(), filters, total_rows=total, key_rows=tuning.key_rows,
        memory_rows=tuning.memory_rows, spill_dir=spill, keep_columns=_KEY_COLUMNS,
        on_excluded=on_excluded,
    )
    for table in kept_stream:
        pos = table[POS].to_numpy()
        decided.kept[pos] = True
        decided.kept_rows += table.num_rows
        if decided.reuse_kept is not None:
            decided.reuse_kept.append(table.select([*_KEPT_ORDER, POS]))
        decided.kept_sample.add(table, _KEPT_ORDER[:2])
        decided.by_source.update(_value_counts(table["source_id"]))
        decided.by_licence.update(_value_counts(table["licence"]))
        decided.by_licence_source.update(_value_counts(table["licence_source"]))
        # Counted only where the consent record differs from the current one (consent_changed).
        now = current.take(pc.index_in(table["source_id"], value_set=known))
        changed = table.filter(pc.fill_null(pc.not_equal(table["consent_sha256"], now), True))
        keys = ["source_id", "consent_id", "consent_sha256"]
        for group in changed.group_by(keys).aggregate([([], "count_all")]).to_pylist():
            decided.consent[tuple(group[k] for k in keys)] += group["count_all"]
        if decided.removals is not None:
            decided.removals.kept(table["row_id"])
    return decided


def _write_kept(folder: Path, runs: list[RunInfo], decided: _Decided, part_rows: int,
                tuning: Tuning, previous_dir: Path | None, inputs: list[dict[str, Any]],
                positions: np.ndarray | None) -> tuple[int, np.ndarray | None]:
    """The full rows of the kept positions, in the published order, as part files: from the
    previous version's parts where that is certain to give the same bytes, else from the runs
    through range buckets. Returns the number of parts and, for a build that holds its key
    columns in memory, the candidate position of each published row in order (None above).
    ``positions``: the previous version's (:func:`pipeline.build.reuse.previous_positions`)."""
    folder.mkdir()
    writer = PartWriter(folder, ITEMS_SCHEMA, part_rows, lambda i: f"part-{i:05d}.parquet")
    paths = [run.items_path for run in runs]
    published: list[np.ndarray] | None = [] if decided.in_memory else None
    if (previous_dir is not None and decided.reuse_kept is not None
            and reuse.reusable(previous_dir, inputs)):
        keys = concat(decided.reuse_kept, _REUSE_SCHEMA)
        found = None
        if positions is not None:
            found = reuse.plan_from_positions(previous_dir, _KEPT_ORDER, keys,
                                              decided.candidates, positions)
        elif decided.reuse_candidates is not None:
            candidates = pa.chunked_array(decided.reuse_candidates, pa.binary())
            found = reuse.plan(previous_dir, _KEPT_ORDER, keys, candidates)
        if found is not None:
            logger.debug("build: re-using the rows of %s (%d new rows%s)", previous_dir.name,
                         found[2].num_rows,
                         ", by its recorded row positions" if positions is not None else "")
            for table in reuse.rows(*found, paths, _KEPT_ORDER, published):
                writer.write(table)
            parts = writer.close()
            fsync_dir(folder)
            return parts, _joined(published)
    bounds = decided.kept_sample.bounds(decided.kept_rows, tuning.sort_rows)
    sorter = RangeSorter(folder.parent / SPILL_DIR / "kept", _KEPT_ORDER, _KEPT_ORDER[:2],
                         bounds, "kept")
    # Full rows are wide (the signals list): read them in smaller batches than the keys.
    batch_rows = max(1, tuning.batch_rows // 4)
    for table in read_batches(paths, ITEMS_SCHEMA, batch_rows):
        sorter.add(table, np.flatnonzero(decided.kept[table[POS].to_numpy()]))
    for table in sorter.sorted_tables(published):
        writer.write(table)
    parts = writer.close()
    fsync_dir(folder)
    return parts, _joined(published)


def _joined(arrays: list[np.ndarray] | None) -> np.ndarray | None:
    if arrays is None:
        return None
    return np.concatenate(arrays) if arrays else np.zeros(0, np.int64)


def _write_exclusions(folder: Path, decided: _Decided, tuning: Tuning) -> None:
    rows = sum(decided.by_reason.values())
    # Held in memory anyway (no spills): one sort of them all, no range buckets (any bucket
    # size gives the same bytes).
    bounds = (pa.array([], pa.binary()) if decided.in_memory
              else decided.excluded_sample.bounds(rows, tuning.sort_rows))
    sorter = RangeSorter(folder.parent / SPILL_DIR / "exclusions", _EXCLUSION_ORDER,
                         _EXCLUSION_ORDER[:2], bounds, "exclusions")
    for table in decided.excluded.stream():
        sorter.add(table)
    writer = PartWriter(folder, EXCLUSIONS_SCHEMA, None, lambda i: EXCLUSIONS_FILE)
    for table in sorter.sorted_tables():
        writer.write(table.select(EXCLUSIONS_SCHEMA.names).cast(EXCLUSIONS_SCHEMA))
    writer.close()


def write_parquet(table: pa.Table, path: Path) -> None:
    """Deterministic Parquet: fixed codec, level, row groups and statistics; no pandas or
    wall-clock metadata; fsynced."""
    pq.write_table(
        table.replace_schema_metadata(None),
        path,
        row_group_size=ROW_GROUP_ROWS,
        **PARQUET_OPTIONS,
    )
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _value_counts(column: pa.ChunkedArray | pa.Array) -> dict[str, int]:
    if not len(column):
        return {}
    return {str(c["values"]): c["counts"] for c in pc.value_counts(column).to_pylist()}


def _sorted(counts: Counter[str]) -> dict[str, int]:
    return {key: counts[key] for key in sorted(counts)}


def _manifest(name: str, config: Config, today: date, suspended: frozenset[str] | set[str],
              runs: list[RunInfo], filters: list[BuildFilter], decided: _Decided,
              counts: dict[str, Any], inputs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "schema_version": SCHEMA_VERSION,
        "inputs": inputs,
        "config_sha256": config.sha256,
        "policy": {
            "today": today.isoformat(),
            "intended_use": config.settings.intended_use,
            "licences_allow": list(config.settings.licences.allow),
            "licences_preset": list(config.settings.licences.preset),
            # What was actually applied: allow plus every preset's ids, so the manifest states
            # its policy in full even if a preset's definition changes in a later release.
            "licences_effective": list(config.settings.licences.effective),
        },
        "counts": counts,
        "filters": [f.summary() for f in filters],
        "sources": _sources(config, today, suspended, runs, decided.sources),
        "consent_changed": _consent_changed(config, decided.consent),
        "notes": [] if runs else ["no completed runs were given: this version has no rows"],
    }


def tally(table: pa.Table, column: str) -> dict[str, int]:
    if table.num_rows == 0:
        return {}
    counts = pc.value_counts(table[column]).to_pylist()
    return {str(c["values"]): c["counts"] for c in sorted(counts, key=lambda c: str(c["values"]))}


def checksums(folder: Path) -> dict[str, dict[str, Any]]:
    return {
        path.relative_to(folder).as_posix(): {
            "sha256": sha256_file(path),
            "bytes": path.stat().st_size,
        }
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST_JSON
    }


def _input_record(run: RunInfo) -> dict[str, Any]:
    rejections = run.rejections_path
    return {
        "run_id": run.run_id,
        "items_sha256": sha256_file(run.items_path),
        "items": pq.read_metadata(run.items_path).num_rows,
        "rejections_sha256": sha256_file(rejections) if rejections.is_file() else None,
    }


def _sources(
    config: Config,
    today: date,
    suspended: frozenset[str] | set[str],
    runs: list[RunInfo],
    candidate_sources: set[str],
) -> dict[str, Any]:
    """Consent and age-verification records, as they stand now, of every source that has
    candidate rows or crawl rejections in the inputs."""
    ids = set(candidate_sources)
    for run in runs:
        if run.rejections_path.is_file():
            column = pq.read_table(run.rejections_path, columns=["source_id"])["source_id"]
            ids.update(s for s in pc.unique(column).to_pylist() if s)
    out: dict[str, Any] = {}
    for source_id in sorted(ids):
        source = config.sources.get(source_id)
        if source is None:
            out[source_id] = {
                "in_config": False,
                "consent": None,
                "age_verification": None,
                "eligibility": {
                    "eligible": False,
                    "reason": reasons.CONSENT_INACTIVE,
                    "message": "source is not in the current config",
                },
            }
            continue
        verdict = check(source, config.settings, today, source_id in suspended)
        av = source.age_verification
        out[source_id] = {
            "in_config": True,
            "name": source.name,
            "consent": source.consent.model_dump(mode="json"),
            "consent_sha256": source.consent_sha256,
            "age_verification": None if av is None else av.model_dump(mode="json"),
            "age_verification_sha256": source.age_verification_sha256,
            "eligibility": {
                "eligible": verdict.eligible,
                "reason": verdict.reason,
                "message": verdict.message,
            },
        }
    return out


def _consent_changed(
    config: Config, kept: Counter[tuple[str, str, str]]
) -> list[dict[str, Any]]:
    """Kept rows crawled under a consent record other than the current one (still eligible);
    ``kept`` counts the kept rows per (source_id, consent_id, consent_sha256)."""
    keys = ["source_id", "consent_id", "consent_sha256"]
    groups: list[dict[str, Any]] = [
        {**dict(zip(keys, key, strict=True)), "count_all": n} for key, n in kept.items()
    ]
    seen: dict[str, list[dict[str, Any]]] = {}
    for group in sorted(groups, key=lambda g: tuple(g[k] for k in keys)):
        current = config.sources[group["source_id"]]
        if group["consent_sha256"] != current.consent_sha256:
            seen.setdefault(group["source_id"], []).append(
                {
                    "consent_id": group["consent_id"],
                    "consent_sha256": group["consent_sha256"],
                    "rows": group["count_all"],
                }
            )
    return [
        {
            "source_id": source_id,
            "rows": sum(u["rows"] for u in under),
            "current": {
                "consent_id": config.sources[source_id].consent.id,
                "consent_sha256": config.sources[source_id].consent_sha256,
            },
            "crawled_under": under,
        }
        for source_id, under in sorted(seen.items())
    ]


def _remove_stale_tmp(root: Path) -> None:
    """Leftovers of crashed builds; only called while holding the lock, so none is live."""
    for entry in root.iterdir():
        if entry.name.startswith(".tmp-") and entry.is_dir():
            shutil.rmtree(entry)


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
