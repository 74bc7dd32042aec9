"""Operational state in ``data/state.sqlite``: scheduled runs, suspensions, the run registry,
takedowns.

SQLite in WAL mode, created on demand, with a ``schema_version`` table so later versions can
migrate it. Each call opens its own short connection, so a :class:`State` can be shared by
threads and processes (the scheduler, a crawl, the CLI) without holding the database open.
Times are stored as ISO-8601 UTC text.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.registry.takedowns import (
    Takedown,
    TakedownError,
    check_reason,
    check_request,
    takedown_id,
    takedown_number,
)

STATE_FILE = "state.sqlite"
SCHEMA_VERSION = 3  # 2: takedowns; 3: validators (incremental crawls)
_TIMEOUT = 30.0  # seconds to wait for another writer

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS schedule_runs (
    source_id TEXT NOT NULL,
    run_id TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS schedule_runs_source ON schedule_runs (source_id, started_at);
CREATE TABLE IF NOT EXISTS suspensions (
    id INTEGER PRIMARY KEY,
    source_id TEXT NOT NULL,
    suspended_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    resumed_at TEXT,
    reviewed_by TEXT,
    note TEXT
);
CREATE INDEX IF NOT EXISTS suspensions_open ON suspensions (source_id, resumed_at);
CREATE TABLE IF NOT EXISTS takedowns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    distance INTEGER,
    reason TEXT NOT NULL,
    requested_by TEXT,
    created_at TEXT NOT NULL,
    removed_at TEXT,
    removal_reason TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    registered_at TEXT NOT NULL,
    meta TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS scheduler_sources (
    source_id TEXT PRIMARY KEY,
    next_due_at TEXT,
    jitter_s REAL,
    jitter_seed TEXT,
    next_start_at TEXT,
    last_run_id TEXT,
    last_started_at TEXT,
    last_finished_at TEXT,
    last_outcome TEXT,
    last_detail TEXT,
    skipped_reason TEXT,
    skipped_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS validators (
    source_id TEXT NOT NULL,
    url TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    run_id TEXT NOT NULL,
    row_id TEXT NOT NULL,
    row_group INTEGER NOT NULL,
    row_index INTEGER NOT NULL,
    reuse_key TEXT NOT NULL,
    pdq_variants TEXT,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (source_id, url)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS validators_url ON validators (url);
"""


class StateError(ValueError):
    """A state change that is not allowed (e.g. resuming a source that is not suspended)."""


@dataclass(frozen=True)
class Suspension:
    source_id: str
    suspended_at: datetime
    reason: str
    resumed_at: datetime | None = None
    reviewed_by: str | None = None
    note: str | None = None


def _utc(value: datetime | None = None) -> str:
    value = value or datetime.now(UTC)
    if value.tzinfo is None:
        raise ValueError(f"timestamps must be timezone-aware, got {value!r}")
    return value.astimezone(UTC).isoformat(timespec="microseconds")  # sorts as text


def _parse(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


class State:
    """The state database at ``path`` (usually ``<data dir>/state.sqlite``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._enable_wal()
        with self._connect(write=True) as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            row = db.execute("SELECT max(version) FROM schema_version").fetchone()
            if row[0] is None:
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] > SCHEMA_VERSION:
                raise StateError(
                    f"{self.path}: state schema version {row[0]} is newer than this "
                    f"Clearance understands ({SCHEMA_VERSION}); upgrade Clearance"
                )
            elif row[0] < SCHEMA_VERSION:
                # Every migration so far only adds tables (CREATE ... IF NOT EXISTS above).
                db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    def _enable_wal(self) -> None:
        """Switch to WAL once (it persists). The switch needs an exclusive lock and SQLite does
        not wait for it, so concurrent first openers retry instead of failing."""
        deadline = time.monotonic() + _TIMEOUT
        while True:
            try:
                with self._connect() as db:
                    if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                        db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @classmethod
    def in_data_dir(cls, data_dir: str | Path) -> State:
        return cls(Path(data_dir) / STATE_FILE)

    @contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A short connection; ``write`` wraps the block in one BEGIN IMMEDIATE transaction so
        check-then-insert steps (suspend, resume) cannot interleave across processes."""
        db = sqlite3.connect(self.path, timeout=_TIMEOUT, isolation_level=None)
        try:
            if not write:
                yield db
                return
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    # ------------------------------------------------------------------ scheduled runs

    def record_run(
        self,
        source_id: str,
        run_id: str | None,
        started_at: datetime,
        finished_at: datetime | None,
        status: str,
    ) -> None:
        with self._connect(write=True) as db:
            db.execute(
                "INSERT INTO schedule_runs VALUES (?, ?, ?, ?, ?)",
                (
                    source_id,
                    run_id,
                    _utc(started_at),
                    None if finished_at is None else _utc(finished_at),
                    status,
                ),
            )

    def last_run(self, source_id: str) -> datetime | None:
        """Start time of the source's latest recorded run, whatever its status."""
        with self._connect() as db:
            row = db.execute(
                "SELECT max(started_at) FROM schedule_runs WHERE source_id = ?", (source_id,)
            ).fetchone()
        return _parse(row[0])

    # ------------------------------------------------------------------ the scheduler's plan

    def plan_start(
        self, source_id: str, due_at: datetime, jitter_s: float, seed: str, start_at: datetime
    ) -> None:
        """Record when the scheduler will start a source: the cron fire it belongs to
        (``due_at``), the seeded jitter after it and the start time they give."""
        self._scheduler_upsert(source_id, next_due_at=_utc(due_at), jitter_s=jitter_s,
                               jitter_seed=seed, next_start_at=_utc(start_at))

    def record_outcome(
        self, source_id: str, run_id: str | None, started_at: datetime,
        finished_at: datetime, outcome: str, detail: str = "",
    ) -> None:
        """The scheduler's last crawl of a source and how it ended; clears a recorded skip."""
        self._scheduler_upsert(
            source_id, last_run_id=run_id, last_started_at=_utc(started_at),
            last_finished_at=_utc(finished_at), last_outcome=outcome, last_detail=detail,
            skipped_reason=None, skipped_at=None)

    def record_skip(self, source_id: str, reason: str, at: datetime) -> None:
        self._scheduler_upsert(source_id, skipped_reason=reason, skipped_at=_utc(at))

    def scheduler_sources(self) -> dict[str, dict[str, Any]]:
        """The scheduler's row per source (times as aware datetimes), by source id."""
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM scheduler_sources ORDER BY source_id").fetchall()
        out = {}
        for row in rows:
            doc = dict(row)
            for key in ("next_due_at", "next_start_at", "last_started_at", "last_finished_at",
                        "skipped_at", "updated_at"):
                doc[key] = _parse(doc[key])
            out[doc.pop("source_id")] = doc
        return out

    def _scheduler_upsert(self, source_id: str, **values: Any) -> None:
        values["updated_at"] = _utc()
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        updates = ", ".join(f"{k} = excluded.{k}" for k in values)
        with self._connect(write=True) as db:
            db.execute(
                f"INSERT INTO scheduler_sources (source_id, {names}) VALUES (?, {marks}) "
                f"ON CONFLICT (source_id) DO UPDATE SET {updates}",
                (source_id, *values.values()),
            )

    # ------------------------------------------------------------------ suspensions

    def suspend(self, source_id: str, reason: str) -> bool:
        """Suspend a source until a person resumes it; False if it already was suspended."""
        with self._connect(write=True) as db:
            if self._open_suspension(db, source_id) is not None:
                return False
            db.execute(
                "INSERT INTO suspensions (source_id, suspended_at, reason) VALUES (?, ?, ?)",
                (source_id, _utc(), reason),
            )
        return True

    def resume(self, source_id: str, reviewed_by: str, note: str) -> Suspension:
        """Lift a suspension, recording who reviewed it and why."""
        if not reviewed_by.strip() or not note.strip():
            raise StateError("resuming a source needs a reviewer name and a note")
        with self._connect(write=True) as db:
            open_id = self._open_suspension(db, source_id)
            if open_id is None:
                raise StateError(f"source {source_id!r} is not suspended")
            db.execute(
                "UPDATE suspensions SET resumed_at = ?, reviewed_by = ?, note = ? WHERE id = ?",
                (_utc(), reviewed_by, note, open_id),
            )
        return self.suspensions(source_id)[-1]

    def suspended_ids(self) -> set[str]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT DISTINCT source_id FROM suspensions WHERE resumed_at IS NULL"
            ).fetchall()
        return {r[0] for r in rows}

    def suspensions(self, source_id: str | None = None) -> list[Suspension]:
        """Suspension history, oldest first (all sources, or one)."""
        query = (
            "SELECT source_id, suspended_at, reason, resumed_at, reviewed_by, note FROM suspensions"
        )
        args: tuple[str, ...] = ()
        if source_id is not None:
            query += " WHERE source_id = ?"
            args = (source_id,)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY id", args).fetchall()
        return [
            Suspension(sid, datetime.fromisoformat(at), reason, _parse(back), who, note)
            for sid, at, reason, back, who, note in rows
        ]

    @staticmethod
    def _open_suspension(db: sqlite3.Connection, source_id: str) -> int | None:
        row = db.execute(
            "SELECT id FROM suspensions WHERE source_id = ? AND resumed_at IS NULL",
            (source_id,),
        ).fetchone()
        return None if row is None else int(row[0])

    # ------------------------------------------------------------------ takedowns

    def add_takedown(
        self,
        kind: str,
        value: str,
        reason: str,
        requested_by: str | None = None,
        distance: int | None = None,
    ) -> Takedown:
        """Record a takedown (validated: :class:`TakedownError` names the flag at fault)."""
        value, distance = check_request(kind, value, distance)
        reason = check_reason(reason)
        who = requested_by.strip() if requested_by and requested_by.strip() else None
        with self._connect(write=True) as db:
            cursor = db.execute(
                "INSERT INTO takedowns (kind, value, distance, reason, requested_by, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (kind, value, distance, reason, who, _utc()),
            )
            number = int(cursor.lastrowid or 0)
        return self.takedown(takedown_id(number))

    def remove_takedown(self, ident: str, reason: str) -> Takedown:
        """Lift a takedown for later builds; the record stays, with when and why."""
        reason = check_reason(reason)
        number = takedown_number(ident)
        with self._connect(write=True) as db:
            row = None if number is None else db.execute(
                "SELECT removed_at FROM takedowns WHERE id = ?", (number,)).fetchone()
            if row is None:
                raise TakedownError("ID", f"unknown takedown id {ident!r}")
            if row[0] is not None:
                raise TakedownError("ID", f"takedown {ident} was already removed at {row[0]}")
            db.execute(
                "UPDATE takedowns SET removed_at = ?, removal_reason = ? WHERE id = ?",
                (_utc(), reason, number),
            )
        return self.takedown(ident)

    def takedown(self, ident: str) -> Takedown:
        number = takedown_number(ident)
        found = [] if number is None else self._takedowns("WHERE id = ?", (number,))
        if not found:
            raise TakedownError("ID", f"unknown takedown id {ident!r}")
        return found[0]

    def takedowns(self, active_only: bool = False) -> list[Takedown]:
        """Every takedown, oldest first (or only those not removed)."""
        return self._takedowns("WHERE removed_at IS NULL" if active_only else "", ())

    def _takedowns(self, where: str, args: tuple[Any, ...]) -> list[Takedown]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, kind, value, distance, reason, requested_by, created_at, removed_at,"
                f" removal_reason FROM takedowns {where} ORDER BY id",
                args,
            ).fetchall()
        return [
            Takedown(takedown_id(n), kind, value, distance, reason, who,
                     datetime.fromisoformat(created), _parse(removed), why)
            for n, kind, value, distance, reason, who, created, removed, why in rows
        ]

    # ------------------------------------------------------------------ run registry

    def register_run(self, run_id: str, meta: dict[str, Any]) -> None:
        """Record a completed run (its run.json content); re-registering replaces the meta."""
        blob = json.dumps(meta, sort_keys=True, default=str)
        with self._connect(write=True) as db:
            db.execute(
                "INSERT INTO runs (run_id, registered_at, meta) VALUES (?, ?, ?) "
                "ON CONFLICT (run_id) DO UPDATE SET meta = excluded.meta",
                (run_id, _utc(), blob),
            )

    def registered_runs(self) -> dict[str, dict[str, Any]]:
        with self._connect() as db:
            rows = db.execute("SELECT run_id, meta FROM runs ORDER BY run_id").fetchall()
        return {run_id: json.loads(meta) for run_id, meta in rows}

    # ------------------------------------------------------------------ validators

    def validator(self, source_id: str, url: str) -> Validator | None:
        """The validators recorded for an image URL of a source by a committed run, if any."""
        with self._connect() as db:
            row = db.execute(
                f"SELECT {_VALIDATOR_COLUMNS} FROM validators WHERE source_id = ? AND url = ?",
                (source_id, url)).fetchone()
        return None if row is None else Validator(*row)

    def validator_reader(self) -> ValidatorReader:
        """One open connection for many look-ups (a crawl asks once per image request)."""
        return ValidatorReader(self.path)

    def validators(self) -> list[Validator]:
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {_VALIDATOR_COLUMNS} FROM validators ORDER BY source_id, url").fetchall()
        return [Validator(*row) for row in rows]

    def record_validators(self, records: Iterable[Validator],
                          forget: Iterable[tuple[str | None, str]] = ()) -> None:
        """One transaction: forget ``(source_id, url)`` pairs (``None``: every source), then
        upsert ``records``. Deleted entries are overwritten on disk (``secure_delete``)."""
        with self._connect(write=True) as db:
            db.execute("PRAGMA secure_delete = ON")
            pairs = list(forget)
            db.executemany("DELETE FROM validators WHERE url = ?",
                           [(url,) for source_id, url in pairs if source_id is None])
            db.executemany("DELETE FROM validators WHERE source_id = ? AND url = ?",
                           [(source_id, url) for source_id, url in pairs if source_id is not None])
            db.executemany(
                f"INSERT OR REPLACE INTO validators ({_VALIDATOR_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(v.source_id, v.url, v.etag, v.last_modified, v.run_id, v.row_id, v.row_group,
                  v.row_index, v.reuse_key, v.pdq_variants, v.recorded_at or _utc())
                 for v in records])

    def forget_validators(self, urls: set[str] | list[str]) -> None:
        """Forget an image URL's validators, for every source (a blocklist hit)."""
        if urls:
            self.record_validators([], [(None, url) for url in urls])
            with self._connect() as db:  # and no copy of the old pages left in the WAL
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@dataclass(frozen=True)
class Validator:
    """What a conditional request for an image URL needs, and where its earlier row is:
    ``data/runs/<run_id>/items.parquet`` row ``row_index`` of row group ``row_group``."""

    source_id: str
    url: str
    etag: str | None
    last_modified: str | None
    run_id: str
    row_id: str
    row_group: int
    row_index: int
    reuse_key: str  # what the re-used decision depended on (crawler.conditional)
    pdq_variants: str | None = None  # comma-joined dihedral PDQ variants, when screened so
    recorded_at: str | None = None


_VALIDATOR_COLUMNS = ("source_id, url, etag, last_modified, run_id, row_id, row_group, "
                      "row_index, reuse_key, pdq_variants, recorded_at")


class ValidatorReader:
    """:meth:`State.validator` over one connection, kept open until :meth:`close` (~10x faster
    than a connection per look-up); it sees what other connections commit."""

    def __init__(self, path: Path):
        self._db: sqlite3.Connection | None = sqlite3.connect(
            path, timeout=_TIMEOUT, isolation_level=None, check_same_thread=False)

    def get(self, source_id: str, url: str) -> Validator | None:
        if self._db is None:
            raise StateError("the validator reader is closed")
        row = self._db.execute(
            f"SELECT {_VALIDATOR_COLUMNS} FROM validators WHERE source_id = ? AND url = ?",
            (source_id, url)).fetchone()
        return None if row is None else Validator(*row)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
