"""Run outputs: `data/runs/<run_id>/{items.parquet, rejections.parquet, run.json}`.

Parquet is streamed to hidden ``.*.partial`` files and renamed into place only when the crawl
finishes; ``run.json`` is written last, so a run directory without it is incomplete and every
reader ignores it. A crash therefore never leaves a Parquet file that looks complete.

While a run is written its folder holds ``.lock`` under an exclusive ``flock``; the kernel
drops the lock when the process dies, however it dies. :func:`sweep_abandoned_runs` (called
before every crawl) removes the folders of runs whose writer is gone without a ``run.json``:
their rows were never published and are not kept.

No row carries a URL's credentials: every string of a row passes through
:func:`redact_credentials` on its way in (user info of a URL becomes ``***``), so a password in a
link or a redirect hop never reaches the disk, whoever recorded it.
"""

from __future__ import annotations

import fcntl
import json
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

RUNS_DIR = "runs"
ITEMS_FILE = "items.parquet"
REJECTIONS_FILE = "rejections.parquet"
RUN_JSON = "run.json"
LOCK_FILE = ".lock"
_BATCH_ROWS = 2000
# A run folder younger than this is never swept, lock or not (its writer may be starting).
_SWEEP_MIN_AGE_S = 120


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


class RunWriter:
    """Streams one run's rows to disk; :meth:`commit` makes the run visible."""

    def __init__(self, data_dir: Path, run_id: str | None = None):
        self.run_id = run_id or new_run_id()
        self.dir = Path(data_dir) / RUNS_DIR / self.run_id
        self.dir.mkdir(parents=True, exist_ok=False)
        self._lock: int | None = _lock(self.dir / LOCK_FILE, wait=True)
        self.items = _StreamingParquet(self.dir / ITEMS_FILE, ITEMS_SCHEMA)
        self.rejections = _StreamingParquet(self.dir / REJECTIONS_FILE, REJECTIONS_SCHEMA)
        self.by_reason: Counter[str] = Counter()
        self.items_by_source: Counter[str] = Counter()
        self.rejections_by_source: dict[str, Counter[str]] = {}
        self.withheld = 0

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

    def counts(self) -> dict[str, Any]:
        return {
            "items": self.items.count,
            "rejections": self.rejections.count,
            "withheld": self.withheld,
            "by_reason": dict(sorted(self.by_reason.items())),
        }

    def commit(self, meta: dict[str, Any]) -> dict[str, Any]:
        """Close both files, move them into place, then write run.json (the completion mark)."""
        self.items.commit()
        self.rejections.commit()
        doc = {"run_id": self.run_id, **meta, "counts": self.counts()}
        write_json_atomic(self.dir / RUN_JSON, doc)
        self._unlock()
        fsync_dir(self.dir)
        return doc

    def discard(self) -> None:
        try:
            self.items.discard()
            self.rejections.discard()
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


def sweep_abandoned_runs(data_dir: Path, now: datetime | None = None) -> list[str]:
    """Remove run folders left by a writer that died (no ``run.json``, lock not held);
    return their ids. Live runs (locked, or younger than two minutes) are left alone."""
    root = Path(data_dir) / RUNS_DIR
    if not root.is_dir():
        return []
    now = now or datetime.now(UTC)
    removed = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir() or (entry / RUN_JSON).exists():
            continue
        try:
            started = datetime.strptime(entry.name[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            continue  # not a run folder this writer made
        if (now - started).total_seconds() < _SWEEP_MIN_AGE_S:
            continue
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
