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
import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import SCHEMA_VERSION
from pipeline.build.filters import BuildFilter, default_filters
from pipeline.build.latest import url_events
from pipeline.build.removals import removed_since
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
    "build_manifest",
    "latest_version",
    "resolve_manifest",
    "sha256_file",
    "write_parquet",
]

PART_ROWS = 1_000_000
ROW_GROUP_ROWS = 100_000
CRASH_ENV = "CLEARANCE_TEST_CRASH_BUILD"  # "after_parts": exit right after the part files
_KEPT_ORDER = [(c, "ascending") for c in ("source_id", "url", "row_id", "run_id")]
_EXCLUSION_ORDER = [(c, "ascending") for c in ("reason", "url", "row_id", "run_id")]


class BuildError(RuntimeError):
    """A build that must not commit (e.g. the conservation check failed)."""


@dataclass(frozen=True)
class BuildResult:
    name: str
    version: int
    path: Path
    counts: dict[str, Any]


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
) -> BuildResult:
    """Build and commit the next version of manifest ``name`` from completed runs.

    ``takedowns`` default: the active ones in the data dir's ``state.sqlite``."""
    check_name(name)
    data_dir = Path(data_dir)
    today = today or datetime.now(UTC).date()
    runs = completed_runs(data_dir, run_ids)
    candidates = read_items(runs)
    if takedowns is None:
        takedowns = active_takedowns(data_dir)
    filters = default_filters(config, today, suspended, takedowns, events=url_events(runs))
    kept, excluded = run_filters(candidates, filters)
    kept = kept.sort_by(_KEPT_ORDER)
    exclusions = excluded.sort_by(_EXCLUSION_ORDER)

    counts = {
        "runs": len(runs),
        "candidates": candidates.num_rows,
        "kept": kept.num_rows,
        "excluded": exclusions.num_rows,
        "excluded_by_reason": tally(exclusions, "reason"),
        "kept_by_source": tally(kept, "source_id"),
        "kept_by_licence": tally(kept, "licence"),
        "kept_by_licence_source": tally(kept, "licence_source"),
    }
    if counts["candidates"] != counts["kept"] + counts["excluded"]:
        raise BuildError(
            f"conservation check failed: {counts['candidates']} candidates != "
            f"{counts['kept']} kept + {counts['excluded']} excluded; nothing was committed"
        )
    manifest: dict[str, Any] = {
        "name": name,
        "schema_version": SCHEMA_VERSION,
        "inputs": [_input_record(run) for run in runs],
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
        "sources": _sources(config, today, suspended, runs, candidates),
        "consent_changed": _consent_changed(config, kept),
        "notes": [] if runs else ["no completed runs were given: this version has no rows"],
    }

    root = manifest_root(data_dir, name)
    root.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(root / ".lock"):
        _remove_stale_tmp(root)
        previous = latest_version(data_dir, name)
        version = (previous or 0) + 1
        # Counts only: which rows left is a map of what was removed (DESIGN "No removal map").
        manifest["previous_version"] = previous
        manifest["removed_since_previous"] = (
            {} if previous is None else removed_since(root / f"v{previous}", kept, excluded)
        )
        tmp = root / f".tmp-v{version}-{os.getpid()}"
        tmp.mkdir()
        try:
            counts["parts"] = _write_parts(tmp / DATA_DIR, kept, part_rows)
            if os.environ.get(CRASH_ENV) == "after_parts":
                os._exit(1)
            (tmp / AUDIT_DIR).mkdir()
            write_parquet(exclusions, tmp / AUDIT_DIR / EXCLUSIONS_FILE)
            fsync_dir(tmp / AUDIT_DIR)
            manifest.update(
                version=version,
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                files=checksums(tmp),
            )
            write_json_atomic(tmp / MANIFEST_JSON, manifest)
            fsync_dir(tmp)
            final = root / f"v{version}"
            os.rename(tmp, final)
            fsync_dir(root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return BuildResult(name=name, version=version, path=final, counts=counts)


def read_items(runs: list[RunInfo]) -> pa.Table:
    """The union of the runs' items, read with the explicit schema (never inferred)."""
    tables = [pq.read_table(run.items_path, schema=ITEMS_SCHEMA) for run in runs]
    if not tables:
        return ITEMS_SCHEMA.empty_table()
    return pa.concat_tables(tables).replace_schema_metadata(None)


def run_filters(table: pa.Table, filters: list[BuildFilter]) -> tuple[pa.Table, pa.Table]:
    excluded = [EXCLUSIONS_SCHEMA.empty_table()]
    for step in filters:
        table, dropped = step(table)
        excluded.append(dropped)
    return table, pa.concat_tables(excluded)


def write_parquet(table: pa.Table, path: Path) -> None:
    """Deterministic Parquet: fixed codec, level, row groups and statistics; no pandas or
    wall-clock metadata; fsynced."""
    pq.write_table(
        table.replace_schema_metadata(None),
        path,
        compression="zstd",
        compression_level=3,
        row_group_size=ROW_GROUP_ROWS,
        write_statistics=True,
        use_dictionary=True,
    )
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _write_parts(folder: Path, kept: pa.Table, part_rows: int) -> int:
    if part_rows < 1:
        raise ValueError(f"part_rows must be positive, got {part_rows}")
    folder.mkdir()
    # An empty manifest still gets one (empty) part so that `data/*.parquet` globs resolve.
    offsets = range(0, max(kept.num_rows, 1), part_rows)
    for index, offset in enumerate(offsets):
        write_parquet(kept.slice(offset, part_rows), folder / f"part-{index:05d}.parquet")
    fsync_dir(folder)
    return len(offsets)


def tally(table: pa.Table, column: str) -> dict[str, int]:
    if table.num_rows == 0:
        return {}
    counts = pc.value_counts(table[column]).to_pylist()
    return {str(c["values"]): c["counts"] for c in sorted(counts, key=lambda c: str(c["values"]))}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    candidates: pa.Table,
) -> dict[str, Any]:
    """Consent and age-verification records, as they stand now, of every source that has
    candidate rows or crawl rejections in the inputs."""
    ids = set(pc.unique(candidates["source_id"]).to_pylist())
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


def _consent_changed(config: Config, kept: pa.Table) -> list[dict[str, Any]]:
    """Kept rows crawled under a consent record other than the current one (still eligible)."""
    keys = ["source_id", "consent_id", "consent_sha256"]
    groups = kept.group_by(keys).aggregate([([], "count_all")]).to_pylist()
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
