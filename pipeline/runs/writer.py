"""Run outputs: `data/runs/<run_id>/{items.parquet, rejections.parquet, run.json}`.

Parquet is streamed to hidden ``.*.partial`` files and renamed into place only when the crawl
finishes; ``run.json`` is written last, so a run directory without it is incomplete and every
reader ignores it. A crash therefore never leaves a Parquet file that looks complete.

While a run is written its folder holds ``.lock`` under an exclusive ``flock``; the kernel
drops the lock when the process dies, however it dies. :func:`sweep_abandoned_runs` (called
before every crawl) removes the folders of runs whose writer is gone without a ``run.json``:
their rows were never published and are not kept.

A crawl writes its rows *durably* instead (``RunWriter(..., resumable=[source ids])``): every
batch, and every checkpoint the crawl asks for (about once a second), becomes a numbered
Parquet segment (``.items.000001.segment``), complete and fsynced before its name appears, so a
SIGKILL loses at most the rows since the last checkpoint. Such a run is marked resumable
(``.resume.json``: its sources); when its writer dies, the next crawl of those sources adopts
its segments (:func:`resumable_runs`, :meth:`RunWriter.adopt`) instead of the sweep removing
them, and commits them as part of its own run (``resumed_from`` in run.json). Readers still see
only committed runs: segments are hidden and are merged into ``items.parquet`` at commit.

No row carries a URL's credentials: every string of a row passes through
:func:`redact_credentials` on its way in (user info of a URL becomes ``***``), so a password in a
link or a redirect hop never reaches the disk, whoever recorded it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute  # noqa: F401 - registers pa.compute
import pyarrow.parquet as pq

from pipeline.runs.credentials import redact_credentials, redact_userinfo
from pipeline.runs.schema import ITEMS_SCHEMA, REJECTIONS_SCHEMA

logger = logging.getLogger(__name__)

RUNS_DIR = "runs"
ITEMS_FILE = "items.parquet"
REJECTIONS_FILE = "rejections.parquet"
RUN_JSON = "run.json"
LOCK_FILE = ".lock"
RESUME_FILE = ".resume.json"  # a resumable (durably written) run: its sources
SEGMENT_SUFFIX = ".segment"
_BATCH_ROWS = 2000
# A run folder younger than this is never swept, lock or not (its writer may be starting).
_SWEEP_MIN_AGE_S = 120
# A killed resumable run no crawl of its sources adopted is swept after this long.
RESUME_MAX_AGE_S = 7 * 24 * 3600
# This many checkpoint segments are merged into one (a crawl of hours stays at a few hundred
# files); the merged file names the run and the range it covers, so a merge killed before the
# merged-away files were unlinked never counts a row twice.
_COMPACT_SEGMENTS = 64
_COVERS = b"clearance.covers"


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, ensure_ascii=False, default=str)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _StreamingParquet:
    def __init__(self, final: Path, schema: pa.Schema):
        self.final = final
        self.partial = final.with_name(f".{final.name}.partial")
        self.schema = schema
        self.rows: list[dict[str, Any]] = []
        self.count = 0
        self.writer = pq.ParquetWriter(self.partial, schema, compression="zstd")

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.count += 1
        if len(self.rows) >= _BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows = []

    def remove_where(self, column: str, values: set[str]) -> list[dict[str, Any]]:
        """Rewrite the partial file without rows whose `column` is in `values`; return them.

        For the rare late exclusion (an opt-out seen after its item was written); the file is
        still hidden, so no reader ever sees the rows.
        """
        if not values:
            return []  # an empty value set has Arrow type null, which is_in refuses
        self.flush()
        self.writer.close()
        table = pq.read_table(self.partial, schema=self.schema)
        mask = pa.compute.is_in(table[column], value_set=pa.array(sorted(values)))
        removed = table.filter(mask).to_pylist()
        kept = table.filter(pa.compute.invert(mask))
        self.writer = pq.ParquetWriter(self.partial, self.schema, compression="zstd")
        if kept.num_rows:
            self.writer.write_table(kept)
        self.count = kept.num_rows
        return removed

    def commit(self) -> None:
        self.flush()
        self.writer.close()
        with open(self.partial, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(self.partial, self.final)

    def discard(self) -> None:
        try:
            self.writer.close()
        finally:
            self.partial.unlink(missing_ok=True)


def _scrub(path: Path) -> None:
    """Overwrite a file with zeros (and fsync) before it is replaced or unlinked: rows taken
    back (a blocklist hit's neighbours, a revoked source's) leave no bytes in a file."""
    try:
        size = path.stat().st_size
        with open(path, "r+b") as fh:
            fh.write(bytes(size))
            fh.flush()
            os.fsync(fh.fileno())
    except FileNotFoundError:
        pass


def _rewrite_scrubbed(path: Path, kept: pa.Table) -> None:
    """Replace a segment by ``kept`` (or remove it when empty) atomically, then zero the old
    file's bytes through a descriptor held across the rename: at every instant the name holds
    a complete segment (or none), and the taken-back rows end in no file."""
    fd = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        if kept.num_rows:
            _write_durable(kept, path)
        else:
            path.unlink()
            fsync_dir(path.parent)
        os.pwrite(fd, bytes(size), 0)
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_segment(path: Path, schema: pa.Schema) -> pa.Table | None:
    try:
        return pq.read_table(path, schema=schema)
    except (pa.ArrowInvalid, OSError):
        return None  # cannot happen short of disk damage: segments are complete when named


def _write_durable(table: pa.Table, path: Path) -> None:
    """Write a complete Parquet file under ``path`` atomically: tmp, fsync, rename, dir fsync."""
    tmp = path.with_name(f"{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def segment_paths(run_dir: Path, name: str) -> list[Path]:
    """The segments of ``items`` or ``rejections`` in a run folder, in write order."""
    return sorted(run_dir.glob(f".{name}.*{SEGMENT_SUFFIX}"))


def _seq(path: Path) -> int:
    return int(path.name.split(".")[2])


def live_segments(run_dir: Path, name: str) -> list[Path]:
    """:func:`segment_paths` without those a merged segment of the same run covers (left by
    a merge killed half-way); those are removed."""
    paths = segment_paths(run_dir, name)
    covered: set[int] = set()
    for path in paths:
        try:
            meta = pq.read_schema(path).metadata or {}
        except (pa.ArrowInvalid, OSError):
            continue
        run_id, _, span = meta.get(_COVERS, b"").decode().rpartition(":")
        if run_id == run_dir.name and span:
            first, last = (int(x) for x in span.split("-"))
            covered.update(n for n in range(first, last + 1) if n != _seq(path))
    for path in paths:
        if _seq(path) in covered:
            path.unlink()
    return [p for p in paths if _seq(p) not in covered]


class _SegmentedParquet:
    """Rows as numbered, complete, fsynced Parquet segments; the same interface as
    :class:`_StreamingParquet`. :meth:`flush` is the checkpoint: rows in memory become a
    segment, and :attr:`durable` collects ``(source_id, url)`` of rows made durable."""

    def __init__(self, final: Path, schema: pa.Schema):
        self.final = final
        self.name = final.name.split(".")[0]  # items | rejections
        self.partial = final.with_name(f".{final.name}.partial")
        self.schema = schema
        self.rows: list[dict[str, Any]] = []
        self.count = 0
        self.segments: list[Path] = []
        self.unmerged: list[Path] = []  # segments written since the last merge
        self.durable: list[tuple[str | None, str]] = []

    def _next_path(self) -> Path:
        seq = _seq(self.segments[-1]) + 1 if self.segments else 1
        return self.final.with_name(f".{self.name}.{seq:06d}{SEGMENT_SUFFIX}")

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.count += 1
        if len(self.rows) >= _BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        table = pa.Table.from_pylist(self.rows, schema=self.schema)
        path = self._next_path()
        _write_durable(table, path)
        self.segments.append(path)
        self.unmerged.append(path)
        self.durable.extend((r.get("source_id"), r["url"]) for r in self.rows)
        self.rows = []
        if len(self.unmerged) >= _COMPACT_SEGMENTS:
            self._merge()

    def _merge(self) -> None:
        """The unmerged segments become one, under the newest one's name (an atomic rename);
        the others are unlinked after. Rows are copied once, a segment at a time."""
        group, target = self.unmerged, self.unmerged[-1]
        tmp = target.with_name(f"{target.name}.tmp")
        covers = f"{self.final.parent.name}:{_seq(group[0])}-{_seq(target)}".encode()
        schema = self.schema.with_metadata({**(self.schema.metadata or {}), _COVERS: covers})
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for path in group:
                writer.write_table(pq.read_table(path, schema=self.schema))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
        for path in group[:-1]:
            path.unlink()
            self.segments.remove(path)
        fsync_dir(target.parent)
        self.unmerged = []

    def adopt(self, segment: Path) -> pa.Table:
        """Move another run's segment in (a rename: it is in one run or the other, never in
        both); return its rows."""
        table = pq.read_table(segment, schema=self.schema)
        path = self._next_path()
        os.replace(segment, path)
        fsync_dir(path.parent)
        self.segments.append(path)
        self.count += table.num_rows
        return table

    def remove_where(self, column: str, values: set[str]) -> list[dict[str, Any]]:
        """Take rows whose `column` is in `values` out of memory and of every segment (a
        segment holding one is rewritten, the old bytes zeroed); return them."""
        if not values:
            return []
        removed = [r for r in self.rows if r.get(column) in values]
        self.rows = [r for r in self.rows if r.get(column) not in values]
        value_set = pa.array(sorted(values))
        for path in list(self.segments):
            table = pq.read_table(path, schema=self.schema)
            mask = pa.compute.is_in(table[column], value_set=value_set)
            if not pa.compute.any(mask).as_py():
                continue
            removed.extend(table.filter(mask).to_pylist())
            kept = table.filter(pa.compute.invert(mask))
            _rewrite_scrubbed(path, kept)
            if not kept.num_rows:
                self.segments.remove(path)
                if path in self.unmerged:
                    self.unmerged.remove(path)
        self.count -= len(removed)
        if removed:
            self.durable = [d for d in self.durable if d[1] not in values]
        return removed

    def commit(self, run_id: str | None = None) -> None:
        """Merge the segments into the final file (``run_id`` rewritten: adopted rows belong
        to the run that commits them); the segments stay until :meth:`drop_segments`."""
        self.flush()
        writer = pq.ParquetWriter(self.partial, self.schema, compression="zstd")
        try:
            for path in self.segments:
                table = pq.read_table(path, schema=self.schema)
                if run_id is not None and "run_id" in self.schema.names:
                    index = self.schema.get_field_index("run_id")
                    table = table.set_column(index, self.schema.field(index),
                                             pa.array([run_id] * table.num_rows, pa.string()))
                writer.write_table(table)
        finally:
            writer.close()
        with open(self.partial, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(self.partial, self.final)

    def drop_segments(self) -> None:
        for path in self.segments:
            path.unlink(missing_ok=True)
        self.segments, self.unmerged = [], []

    def discard(self) -> None:
        self.rows = []
        self.drop_segments()
        self.partial.unlink(missing_ok=True)


class RunWriter:
    """Streams one run's rows to disk; :meth:`commit` makes the run visible.

    ``resumable`` (the crawl's source ids) writes durable segments instead of one streamed
    file and marks the run resumable (see the module docstring)."""

    def __init__(self, data_dir: Path, run_id: str | None = None, *,
                 resumable: list[str] | None = None):
        self.run_id = run_id or new_run_id()
        self.dir = Path(data_dir) / RUNS_DIR / self.run_id
        self.dir.mkdir(parents=True, exist_ok=False)
        self._lock: int | None = _lock(self.dir / LOCK_FILE, wait=True)
        self.items: _StreamingParquet | _SegmentedParquet
        self.rejections: _StreamingParquet | _SegmentedParquet
        if resumable is None:
            self.items = _StreamingParquet(self.dir / ITEMS_FILE, ITEMS_SCHEMA)
            self.rejections = _StreamingParquet(self.dir / REJECTIONS_FILE, REJECTIONS_SCHEMA)
        else:
            self.items = _SegmentedParquet(self.dir / ITEMS_FILE, ITEMS_SCHEMA)
            self.rejections = _SegmentedParquet(self.dir / REJECTIONS_FILE, REJECTIONS_SCHEMA)
            write_json_atomic(self.dir / RESUME_FILE, {"sources": sorted(resumable)})
            fsync_dir(self.dir)
        self.by_reason: Counter[str] = Counter()
        self.items_by_source: Counter[str] = Counter()
        self.rejections_by_source: dict[str, Counter[str]] = {}
        self.withheld = 0
        self.resumed_from: list[str] = []

    def add_item(self, row: dict[str, Any]) -> None:
        self.items.add(redact_credentials(row))
        self.items_by_source[row["source_id"]] += 1

    def add_rejection(self, row: dict[str, Any]) -> None:
        self.rejections.add(redact_credentials(row))
        self.by_reason[row["reason"]] += 1
        per_source = self.rejections_by_source.setdefault(row.get("source_id") or "", Counter())
        per_source[row["reason"]] += 1

    def remove_items(self, urls: set[str]) -> list[dict[str, Any]]:
        removed = self.items.remove_where("url", {redact_userinfo(url) for url in urls})
        for row in removed:
            self.items_by_source[row["source_id"]] -= 1
        return removed

    def checkpoint(self) -> list[tuple[str | None, str]]:
        """Make every row so far durable (a segment each, fsynced); return ``(source_id,
        url)`` of the rows made durable since the last call. A no-op for a streamed run."""
        out: list[tuple[str | None, str]] = []
        for part in (self.items, self.rejections):
            if isinstance(part, _SegmentedParquet):
                part.flush()
                out.extend(part.durable)
                part.durable = []
        return out

    def adopt(self, run: ResumableRun, keep_sources: set[str]) -> tuple[pa.Table, pa.Table]:
        """Take a killed run's durable rows into this run, only those of ``keep_sources``
        (rows of a source no longer eligible are dropped, their bytes zeroed); then remove
        the killed run's folder. Returns the adopted items and rejections."""
        assert isinstance(self.items, _SegmentedParquet)
        assert isinstance(self.rejections, _SegmentedParquet)
        tables = []
        for part in (self.items, self.rejections):
            adopted = []
            for segment in live_segments(run.path, part.name):
                table = _read_segment(segment, part.schema)
                if table is None:
                    logger.warning("%s: unreadable segment %s skipped", run.run_id, segment.name)
                    continue
                keep = pa.compute.is_in(table["source_id"],
                                        value_set=pa.array(sorted(keep_sources), pa.string()))
                keep = pa.compute.fill_null(keep, False)
                if not pa.compute.all(keep).as_py():
                    # in place first, so a crash between the steps never duplicates a row
                    kept = table.filter(keep)
                    _rewrite_scrubbed(segment, kept)
                    if not kept.num_rows:
                        continue
                adopted.append(part.adopt(segment))
            tables.append(pa.concat_tables(adopted) if adopted
                          else part.schema.empty_table())
        items, rejections = tables
        for sid in items["source_id"].to_pylist():
            self.items_by_source[sid] += 1
        for sid, reason in zip(rejections["source_id"].to_pylist(),
                               rejections["reason"].to_pylist(), strict=True):
            self.by_reason[reason] += 1
            self.rejections_by_source.setdefault(sid or "", Counter())[reason] += 1
        self.resumed_from.extend([*run.resumed_from, run.run_id])
        write_json_atomic(self.dir / RESUME_FILE, {
            "sources": json.loads((self.dir / RESUME_FILE).read_text())["sources"],
            "resumed_from": self.resumed_from})
        fsync_dir(self.dir)
        run.remove()
        return items, rejections

    def counts(self) -> dict[str, Any]:
        return {
            "items": self.items.count,
            "rejections": self.rejections.count,
            "withheld": self.withheld,
            "by_reason": dict(sorted(self.by_reason.items())),
        }

    def commit(self, meta: dict[str, Any]) -> dict[str, Any]:
        """Close both files, move them into place, then write run.json (the completion mark)."""
        if isinstance(self.items, _SegmentedParquet):
            self.items.commit(self.run_id)
        else:
            self.items.commit()
        self.rejections.commit()
        doc = {"run_id": self.run_id, **meta, "counts": self.counts()}
        if self.resumed_from:
            doc["resumed_from"] = self.resumed_from
        write_json_atomic(self.dir / RUN_JSON, doc)
        for part in (self.items, self.rejections):
            if isinstance(part, _SegmentedParquet):
                part.drop_segments()
        (self.dir / RESUME_FILE).unlink(missing_ok=True)
        self._unlock()
        fsync_dir(self.dir)
        return doc

    def discard(self) -> None:
        try:
            self.items.discard()
            self.rejections.discard()
            (self.dir / RESUME_FILE).unlink(missing_ok=True)
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            (self.dir / LOCK_FILE).unlink(missing_ok=True)
            os.close(self._lock)  # closing the descriptor releases the flock
            self._lock = None


def _lock(path: Path, *, wait: bool) -> int | None:
    """An exclusive flock on ``path`` (created 0600): its descriptor, or None if held."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@dataclass
class ResumableRun:
    """A resumable run whose writer died (no ``run.json``), held under its lock by whoever
    found it (:func:`resumable_runs`) until :meth:`remove` or :meth:`release`."""

    run_id: str
    path: Path
    sources: list[str]
    resumed_from: list[str]
    fd: int | None

    def durable(self) -> bool:
        return bool(segment_paths(self.path, "items") or segment_paths(self.path, "rejections"))

    def remove(self) -> None:
        for path in [*segment_paths(self.path, "items"),
                     *segment_paths(self.path, "rejections")]:
            _scrub(path)  # rows not adopted (a source no longer eligible) leave no bytes
        shutil.rmtree(self.path)
        fsync_dir(self.path.parent)
        self.release()

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def resumable_runs(data_dir: Path, requested: set[str]) -> list[ResumableRun]:
    """Killed resumable runs with durable rows whose sources are all in ``requested``, each
    locked for the caller (a run whose writer lives is not one); sorted by id."""
    root = Path(data_dir) / RUNS_DIR
    if not root.is_dir():
        return []
    found = []
    for entry in sorted(root.iterdir()):
        if (entry.name.startswith(".") or not entry.is_dir() or (entry / RUN_JSON).exists()
                or not (entry / RESUME_FILE).is_file()):
            continue
        try:
            mark = json.loads((entry / RESUME_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        sources = [str(s) for s in mark.get("sources", [])]
        if not sources or not set(sources) <= requested:
            continue
        fd = _lock(entry / LOCK_FILE, wait=False)
        if fd is None:
            continue  # its writer is alive
        run = ResumableRun(entry.name, entry, sources,
                           [str(r) for r in mark.get("resumed_from", [])], fd)
        if (entry / RUN_JSON).exists() or not run.durable():
            run.release()  # nothing durable: the sweep removes it as before
            continue
        found.append(run)
    return found


def sweep_abandoned_runs(data_dir: Path, now: datetime | None = None) -> list[str]:
    """Remove run folders left by a writer that died (no ``run.json``, lock not held);
    return their ids. Live runs (locked, or younger than two minutes) are left alone, and so
    are resumable runs with durable rows (for a crawl of their sources to adopt) for
    :data:`RESUME_MAX_AGE_S`; stray segments of a committed run are removed."""
    root = Path(data_dir) / RUNS_DIR
    if not root.is_dir():
        return []
    now = now or datetime.now(UTC)
    removed = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        if (entry / RUN_JSON).exists():
            for stray in [*segment_paths(entry, "items"), *segment_paths(entry, "rejections")]:
                stray.unlink(missing_ok=True)  # a commit killed after its run.json
            continue
        try:
            started = datetime.strptime(entry.name[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            continue  # not a run folder this writer made
        age = (now - started).total_seconds()
        if age < _SWEEP_MIN_AGE_S:
            continue
        if age < RESUME_MAX_AGE_S and (entry / RESUME_FILE).is_file() and (
                segment_paths(entry, "items") or segment_paths(entry, "rejections")):
            continue  # durable rows a later crawl of its sources resumes
        fd = _lock(entry / LOCK_FILE, wait=False)
        if fd is None:
            continue  # a writer is alive
        try:
            if not (entry / RUN_JSON).exists():
                shutil.rmtree(entry)
                removed.append(entry.name)
        finally:
            os.close(fd)
    return removed


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    path: Path
    meta: dict[str, Any]

    @property
    def items_path(self) -> Path:
        return self.path / ITEMS_FILE

    @property
    def rejections_path(self) -> Path:
        return self.path / REJECTIONS_FILE


def completed_runs(data_dir: Path, run_ids: list[str] | None = None) -> list[RunInfo]:
    """Runs whose run.json exists (complete), sorted by id; unknown requested ids raise."""
    root = Path(data_dir) / RUNS_DIR
    found: dict[str, RunInfo] = {}
    if root.is_dir():
        for entry in sorted(root.iterdir()):
            meta_path = entry / RUN_JSON
            if entry.name.startswith(".") or not meta_path.is_file():
                continue
            if not (entry / ITEMS_FILE).is_file():
                continue
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            found[entry.name] = RunInfo(entry.name, entry, meta)
    if run_ids is None:
        return list(found.values())
    missing = [r for r in run_ids if r not in found]
    if missing:
        raise FileNotFoundError(
            f"{root}: no completed run(s) {', '.join(missing)} (a run is complete when its "
            f"{RUN_JSON} exists)"
        )
    return [found[r] for r in sorted(set(run_ids))]
