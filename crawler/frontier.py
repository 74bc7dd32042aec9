"""The resume frontier: one SQLite file per source, ``data/frontier/<source_id>.sqlite``.

Scrapy's JOBDIR would pickle every request (a withheld image's URL included) and is off; this
is the crawl's own record of where it stands, kept only while the source's run is uncommitted:

- ``requests``: each page and image request the spider made (``queued``), pages whose
  callback ran (``parsed``), and requests whose result is durable in a segment of the run
  (``done``: an item or a rejection row);
- a page is *complete* when parsed and none of its images is still queued.

A crawl killed and started again (:mod:`crawler.resume`) does not request a done URL or a
complete page again; it re-requests queued pages and pages with images not done (their images
need the page's captions, markup and signals, which are not stored), and its dupefilter drops
the rest. Writes are buffered and committed at each checkpoint, after the run's segments, so
the frontier never claims more than the segments hold (whatever it lags, the adoption of the
segments re-marks).

A withheld URL is never kept: buffered rows are checked against the crawl's withheld set when
they are written, and a URL withheld later is deleted at once with ``secure_delete`` (SQLite
overwrites the freed cells and pages with zeros); the journal is a rollback journal that is
deleted at each commit (no WAL keeps old pages), and the table has no rowid index that would
hold a second copy of the URL. A source that is committed, discarded, or no longer eligible
has its file removed.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

FRONTIER_DIR = "frontier"
QUEUED, PARSED, DONE = "queued", "parsed", "done"
PAGE, IMAGE = "page", "image"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS requests (
    url TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    depth INTEGER,
    page_url TEXT
) WITHOUT ROWID;
"""
_SUFFIXES = ("", "-journal", "-wal", "-shm")


def frontier_path(data_dir: Path, source_id: str) -> Path:
    return Path(data_dir) / FRONTIER_DIR / f"{source_id}.sqlite"


@dataclass(frozen=True)
class Pending:
    """A page to request on resume: queued, or parsed with images not done."""

    url: str
    depth: int
    page_url: str | None


@dataclass(frozen=True)
class Plan:
    pending: list[Pending]
    settled: set[str]  # done URLs and complete pages: never requested again
    pages_sent: int  # complete pages, counted against the page budget


class Frontier:
    """One source's frontier, held under an exclusive ``flock`` (one crawl per source uses
    it; a second concurrent crawl of the source runs without one)."""

    def __init__(self, path: Path, lock_fd: int, conn: sqlite3.Connection,
                 is_withheld: Callable[[str], bool]):
        self.path, self._lock_fd, self.conn = path, lock_fd, conn
        self.is_withheld = is_withheld
        self._queued: dict[str, tuple[str, int | None, str | None]] = {}
        self._parsed: dict[str, tuple[int | None, str | None]] = {}
        self._done: dict[str, str] = {}

    @classmethod
    def open(cls, data_dir: Path, source_id: str, owner: str, *, keep: bool,
             is_withheld: Callable[[str], bool] = lambda url: False) -> Frontier | None:
        """The source's frontier, emptied unless ``keep``; None if another crawl holds it."""
        path = frontier_path(data_dir, source_id)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = _lock(path)
        if fd is None:
            return None
        if not keep:
            _remove_files(path)
        conn = sqlite3.connect(path, isolation_level=None)
        os.chmod(path, 0o600)
        for pragma in ("secure_delete=ON", "journal_mode=DELETE", "synchronous=NORMAL"):
            conn.execute(f"PRAGMA {pragma}")
        conn.executescript(_SCHEMA)
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('run_id', ?)", (owner,))
        return cls(path, fd, conn, is_withheld)

    # ---------------------------------------------------------------- recording (buffered)

    def queued(self, kind: str, url: str, depth: int | None, page_url: str | None) -> None:
        self._queued.setdefault(url, (kind, depth, page_url))

    def parsed(self, url: str, depth: int | None = None, page_url: str | None = None) -> None:
        """A page whose callback ran (under its final URL: its images name that one)."""
        self._parsed[url] = (depth, page_url)

    def done(self, url: str, kind: str = IMAGE) -> None:
        self._done[url] = kind

    def flush(self) -> None:
        """Commit what was recorded since the last flush (one transaction)."""
        if not (self._queued or self._parsed or self._done):
            return
        ok = self._keep
        queued = [(u, k, QUEUED, d, p) for u, (k, d, p) in self._queued.items() if ok(u, p)]
        parsed = [(u, PAGE, PARSED, d, p) for u, (d, p) in self._parsed.items() if ok(u, p)]
        done = [(u, k, DONE) for u, k in self._done.items() if ok(u)]
        self._queued, self._parsed, self._done = {}, {}, {}
        with self._transaction():
            self.conn.executemany(
                "INSERT OR IGNORE INTO requests (url, kind, state, depth, page_url) "
                "VALUES (?, ?, ?, ?, ?)", queued)
            self.conn.executemany(
                "INSERT INTO requests (url, kind, state, depth, page_url) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(url) DO UPDATE SET state = excluded.state WHERE state = 'queued'",
                parsed)
            self.conn.executemany(
                "INSERT INTO requests (url, kind, state) VALUES (?, ?, ?) ON CONFLICT(url) "
                "DO UPDATE SET state = excluded.state", done)

    def _keep(self, url: str, page_url: str | None = None) -> bool:
        return not self.is_withheld(url) and (page_url is None or not self.is_withheld(page_url))

    def forget(self, urls: Iterable[str]) -> None:
        """Delete withheld URLs now (and rows found on them), bytes zeroed."""
        gone = sorted(set(urls))
        if not gone:
            return
        for url in gone:
            self._queued.pop(url, None)
            self._parsed.pop(url, None)
            self._done.pop(url, None)
        self._queued = {u: v for u, v in self._queued.items() if v[2] not in gone}
        with self._transaction():
            for url in gone:
                self.conn.execute("DELETE FROM requests WHERE url = ? OR page_url = ?",
                                  (url, url))

    # ---------------------------------------------------------------- resuming

    def plan(self) -> Plan:
        self.flush()
        rows = self.conn.execute(
            "SELECT url, kind, state, depth, page_url FROM requests").fetchall()
        open_pages = {p for _, kind, state, _, p in rows
                      if kind == IMAGE and state == QUEUED and p is not None}
        settled, pending, complete = set(), [], 0
        for url, kind, state, depth, page_url in rows:
            if state == DONE:
                settled.add(url)
            elif kind == PAGE and state == PARSED and url not in open_pages:
                settled.add(url)
                complete += 1
            elif kind == PAGE:
                pending.append(Pending(url, depth or 0, page_url))
        pending.sort(key=lambda p: (p.depth, p.url))
        return Plan(pending, settled, complete)

    def __len__(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM requests").fetchone()[0])

    # ---------------------------------------------------------------- closing

    def close(self, *, delete: bool) -> None:
        """Close (and with ``delete``, remove the file: the run committed or was discarded)."""
        if self._lock_fd < 0:
            return
        if not delete:
            self.flush()
        self.conn.close()
        if delete:
            _remove_files(self.path)
        os.close(self._lock_fd)  # the flock goes with the descriptor
        self._lock_fd = -1

    def _transaction(self) -> _Transaction:
        return _Transaction(self.conn)


class _Transaction:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


def discard(data_dir: Path, source_id: str) -> bool:
    """Remove a source's frontier (its source is no longer eligible); False if a live crawl
    holds it."""
    path = frontier_path(data_dir, source_id)
    if not path.exists():
        return True
    fd = _lock(path)
    if fd is None:
        return False
    try:
        _remove_files(path)
    finally:
        os.close(fd)
    return True


def _lock(path: Path) -> int | None:
    fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _remove_files(path: Path) -> None:
    for suffix in _SUFFIXES:
        path.with_name(path.name + suffix).unlink(missing_ok=True)
