"""The long-running scheduler behind `clearance schedule run`: cron, lock, jitter, stop.

Each pass reads the config again, skips ineligible sources with a logged (and recorded) reason,
plans each due source's start at its cron fire plus a seeded jitter, and starts a crawl child
process per source (Scrapy's reactor runs once per process). One crawl per source at a time:
the scheduler holds ``data/locks/<source>.lock`` under an exclusive ``flock`` for the crawl and
hands the descriptor to the child, so the kernel releases it when both are gone, however they
die (a lease row with pid + deadline would trust pids that get reused and clocks that jump).
Sources sharing a host never crawl together in one scheduler.

A stop (:meth:`Scheduler.request_stop`, from SIGINT/SIGTERM) starts no new crawl and forwards
SIGTERM to each child, whose Scrapy closes the spider and commits a run marked ``shutdown``;
a child still busy after ``grace_s`` gets a second SIGTERM (Scrapy stops at once and the run is
discarded), then SIGKILL. A run folder left without ``run.json`` is removed, so a stop leaves
each run committed or gone. Clock and sleep are injectable: tests never sleep.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from croniter import croniter

from pipeline.lifecycle.schedule import next_fire, schedule_table
from pipeline.registry.config import Config, ConfigError, Source
from pipeline.registry.state import State
from pipeline.runs.writer import LOCK_FILE, RUN_JSON, RUNS_DIR, new_run_id

logger = logging.getLogger(__name__)

LOCKS_DIR = "locks"
FINISHED, STOPPED, ABANDONED, FAILED = "finished", "stopped", "abandoned", "failed"
DEFAULT_SEED = "clearance"
MAX_JITTER_S = 300.0  # and at most half the source's cron interval


def utc_now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- lock


class SourceLock:
    """An exclusive ``flock`` on ``<data>/locks/<source_id>.lock`` (held while ``fd`` is open
    in any process; the file names the last holder, for people only)."""

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    @classmethod
    def acquire(cls, data_dir: Path, source_id: str) -> SourceLock | None:
        """The lock, or None when a live process holds it. Never waits."""
        folder = Path(data_dir) / LOCKS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{source_id}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} since {utc_now().isoformat()}\n".encode())
        return cls(path, fd)

    @staticmethod
    def holder(data_dir: Path, source_id: str) -> str:
        path = Path(data_dir) / LOCKS_DIR / f"{source_id}.lock"
        try:
            return path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # the kernel drops the flock with the last descriptor
            self.fd = -1


# --------------------------------------------------------------------------- due time, jitter


def due_slot(schedule: str, last_run: datetime | None, now: datetime) -> datetime:
    """The cron fire (UTC) the source's next crawl belongs to: the first fire after its last
    run, or for a source that never ran the latest fire at or before ``now``."""
    if last_run is not None:
        return next_fire(schedule, last_run, now)
    now = now.astimezone(UTC)
    prev = croniter(schedule, now).get_prev(datetime)
    following = croniter(schedule, prev).get_next(datetime)
    return following if following <= now else prev


def jitter_seconds(seed: str, source_id: str, due_at: datetime, schedule: str,
                   max_jitter_s: float = MAX_JITTER_S) -> float:
    """A deterministic offset in [0, cap) for one source and one due time: sha256 of seed,
    source and due time, scaled to ``max_jitter_s`` or half the cron interval if shorter."""
    interval = (croniter(schedule, due_at).get_next(datetime) - due_at).total_seconds()
    cap = max(0.0, min(max_jitter_s, interval / 2))
    digest = hashlib.sha256(f"{seed}\0{source_id}\0{_iso(due_at)}".encode()).digest()
    return round(int.from_bytes(digest[:8], "big") / 2**64 * cap, 3)


def source_hosts(source: Source) -> frozenset[str]:
    return frozenset(urlsplit(u).hostname or "" for u in [*source.scope, *source.start_urls])


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


# --------------------------------------------------------------------------- children


class CrawlProcess(Protocol):
    """What the scheduler needs of a running crawl child."""

    def poll(self) -> int | None: ...
    def terminate(self) -> None: ...  # SIGTERM to the crawl
    def kill(self) -> None: ...  # SIGKILL to the crawl and everything it started


Spawn = Callable[[str, str, int], CrawlProcess]  # (source_id, run_id, lock fd) -> child


class ChildCrawl:
    """A crawl command in its own session (a terminal's Ctrl-C reaches only the scheduler,
    which forwards one SIGTERM), holding the source lock's descriptor."""

    def __init__(self, command: list[str], lock_fd: int):
        self.popen = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, start_new_session=True,
                                      pass_fds=(lock_fd,))

    def poll(self) -> int | None:
        return self.popen.poll()

    def terminate(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=10)


def spawner(command: Callable[[str, str], list[str]]) -> Spawn:
    """A :data:`Spawn` running ``command(source_id, run_id)`` as a :class:`ChildCrawl`."""
    return lambda source_id, run_id, lock_fd: ChildCrawl(command(source_id, run_id), lock_fd)


@dataclass
class Running:
    source_id: str
    run_id: str
    process: CrawlProcess
    lock: SourceLock
    started_at: datetime
    hosts: frozenset[str]
    signalled: int = 0  # SIGTERMs sent by a stop


# --------------------------------------------------------------------------- the loop


@dataclass
class Scheduler:
    """Starts due crawls until stopped. ``clock`` returns aware UTC datetimes; ``sleep``
    takes seconds; both default to the real ones."""

    data_dir: Path
    load_config: Callable[[], Config]
    spawn: Spawn
    clock: Callable[[], datetime] = utc_now
    sleep: Callable[[float], None] = time.sleep
    seed: str = DEFAULT_SEED
    max_jitter_s: float = MAX_JITTER_S
    tick_s: float = 1.0  # longest sleep between checks for a stop or a finished child
    grace_s: float = 15.0  # a stopped child's time to close the spider and commit
    force_s: float = 5.0  # after the second SIGTERM, before SIGKILL
    running: dict[str, Running] = field(default_factory=dict)
    outcomes: list[dict[str, Any]] = field(default_factory=list)  # this process's, in order

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        self.state = State.in_data_dir(self.data_dir)
        self._stop = False
        self._config: Config | None = None
        self._warned_on: date | None = None
        self._waiting: dict[str, str] = {}  # last logged reason a source did not start

    def request_stop(self) -> None:
        """Safe from a signal handler: only sets a flag the loop reads."""
        self._stop = True

    @property
    def stopping(self) -> bool:
        return self._stop

    def run(self, max_passes: int | None = None) -> None:
        """Pass, sleep, repeat until a stop; then stop the children (bounded) and return."""
        passes = 0
        while not self._stop and (max_passes is None or passes < max_passes):
            wait = self.step()
            passes += 1
            if not self._stop:
                self.sleep(max(0.0, min(wait, self.tick_s)))
        self.shutdown()

    def step(self) -> float:
        """One pass: collect finished crawls, start due ones; seconds until the next start."""
        now = self.clock()
        self._reap(now)
        if self._stop:
            return 0.0
        config = self._reload()
        if self._warned_on != now.date():
            self._warned_on = now.date()
            for entry in schedule_table(config, self.state, now):
                self._warn(entry.source_id, entry.expiring)
        wait = 60.0
        plans = self.state.scheduler_sources()
        for entry in schedule_table(config, self.state, now):
            sid = entry.source_id
            if entry.schedule is None or sid in self.running:
                continue
            if not entry.eligible:
                self._skip(sid, f"{entry.message} ({entry.reason})", now, plans)
                continue
            due_at = due_slot(entry.schedule, entry.last_run, now)
            plan = plans.get(sid, {})
            if plan.get("next_due_at") == due_at and plan.get("next_start_at") is not None:
                start_at = plan["next_start_at"]
            else:
                jitter = jitter_seconds(self.seed, sid, due_at, entry.schedule,
                                        self.max_jitter_s)
                start_at = due_at + timedelta(seconds=jitter)
                self.state.plan_start(sid, due_at, jitter, self.seed, start_at)
                logger.info("%s: next crawl due %s, starts %s (jitter %.3f s)", sid,
                            _iso(due_at), _iso(start_at), jitter)
            if start_at > now:
                wait = min(wait, (start_at - now).total_seconds())
                continue
            source = config.sources[sid]
            hosts = source_hosts(source)
            busy = sorted(r.source_id for r in self.running.values() if r.hosts & hosts)
            if busy:
                self._note(sid, f"{sid}: waiting, a host it shares with {', '.join(busy)} "
                                "is being crawled")
                continue
            lock = SourceLock.acquire(self.data_dir, sid)
            if lock is None:
                self._note(sid, f"{sid}: waiting, another crawl of it holds its lock "
                                f"({SourceLock.holder(self.data_dir, sid)})")
                continue
            self._start(source, entry.expiring, lock, due_at, now)
        return wait

    def shutdown(self) -> None:
        """Stop every child: SIGTERM, then after ``grace_s`` a second one (Scrapy stops and
        discards the run), after ``force_s`` more SIGKILL; runs left half-written are removed."""
        if not self.running:
            return
        t0 = self.clock()
        logger.info("stopping: %d crawl(s) in progress: %s", len(self.running),
                    ", ".join(sorted(self.running)))
        for phase_end, action in ((0.0, "terminate"), (self.grace_s, "terminate"),
                                  (self.grace_s + self.force_s, "kill")):
            while self.running and (self.clock() - t0).total_seconds() < phase_end:
                self.sleep(min(0.2, self.tick_s))
                self._reap(self.clock())
            for r in list(self.running.values()):
                if action == "kill":
                    logger.warning("%s: crawl %s did not stop; killing it", r.source_id,
                                   r.run_id)
                    r.process.kill()
                else:
                    r.signalled += 1
                    r.process.terminate()
            self._reap(self.clock())
        deadline = self.clock() + timedelta(seconds=5)
        while self.running and self.clock() < deadline:
            self.sleep(min(0.2, self.tick_s))
            self._reap(self.clock())

    # ---------------------------------------------------------------- helpers

    def _reload(self) -> Config:
        try:
            self._config = self.load_config()
        except ConfigError as exc:
            if self._config is None:
                raise
            logger.error("config no longer validates; keeping the last good one:\n%s", exc)
        assert self._config is not None
        return self._config

    def _warn(self, source_id: str, expiring: tuple[Any, ...]) -> None:
        for record in expiring:
            logger.warning("%s: %s", source_id, record)

    def _note(self, source_id: str, message: str) -> None:
        if self._waiting.get(source_id) != message:
            self._waiting[source_id] = message
            logger.info(message)

    def _skip(self, source_id: str, reason: str, now: datetime,
              plans: dict[str, dict[str, Any]]) -> None:
        if plans.get(source_id, {}).get("skipped_reason") != reason:
            self.state.record_skip(source_id, reason, now)
        self._note(source_id, f"{source_id}: skipped: {reason}")

    def _start(self, source: Source, expiring: tuple[Any, ...], lock: SourceLock,
               due_at: datetime, now: datetime) -> None:
        run_id = new_run_id(now)
        self._warn(source.id, expiring)
        try:
            process = self.spawn(source.id, run_id, lock.fd)
        except OSError as exc:
            lock.release()
            self.state.record_run(source.id, None, now, now, FAILED)
            self.state.record_outcome(source.id, None, now, now, FAILED, str(exc))
            logger.error("%s: could not start its crawl: %s", source.id, exc)
            return
        self._waiting.pop(source.id, None)
        self.running[source.id] = Running(source.id, run_id, process, lock, now,
                                          source_hosts(source))
        logger.info("%s: crawl %s started (due %s)", source.id, run_id, _iso(due_at))

    def _reap(self, now: datetime) -> None:
        for r in list(self.running.values()):
            code = r.process.poll()
            if code is not None:
                self._finish(r, code, now)

    def _finish(self, r: Running, code: int, now: datetime) -> None:
        run_dir = self.data_dir / RUNS_DIR / r.run_id
        try:
            doc = json.loads((run_dir / RUN_JSON).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            doc = None
        if doc is not None:
            reason = doc.get("finish_reason")
            outcome = STOPPED if reason == "shutdown" else FINISHED
            detail = f"{doc.get('counts', {}).get('items', 0)} items, finish_reason {reason}"
            last = self.state.last_run(r.source_id)
            if last is None or last < r.started_at:  # the crawl command records its own
                self.state.record_run(r.source_id, r.run_id, r.started_at, now, outcome)
        else:
            removed = remove_uncommitted_run(run_dir)
            outcome = ABANDONED if r.signalled else FAILED
            detail = f"exit code {code}, no run committed" + (
                "" if removed else f"; {run_dir} is still locked and left to the sweep")
            if outcome == FAILED:  # waits for the next cron fire instead of retrying hot
                self.state.record_run(r.source_id, None, r.started_at, now, FAILED)
        self.state.record_outcome(r.source_id, r.run_id if doc else None, r.started_at, now,
                                  outcome, detail)
        r.lock.release()
        del self.running[r.source_id]
        self.outcomes.append({"source_id": r.source_id, "run_id": r.run_id,
                              "outcome": outcome, "detail": detail})
        log = logger.info if outcome in (FINISHED, STOPPED, ABANDONED) else logger.error
        log("%s: crawl %s %s: %s", r.source_id, r.run_id, outcome, detail)


def remove_uncommitted_run(run_dir: Path) -> bool:
    """Remove a run folder that has no ``run.json`` once no writer holds its lock; True if it
    is gone (or never existed)."""
    if not run_dir.exists():
        return True
    if (run_dir / RUN_JSON).exists():
        return False
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a descendant of the crawl still holds it
        if (run_dir / RUN_JSON).exists():
            return False
        shutil.rmtree(run_dir)
        return True
    finally:
        os.close(fd)
