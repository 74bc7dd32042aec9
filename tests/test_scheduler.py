"""pipeline.lifecycle.scheduler: the loop of `schedule run`, on an injected clock (no sleeps)."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from helpers_config import settings_doc, source_doc, write_config

from pipeline.lifecycle.schedule import expiring_records, schedule_table
from pipeline.lifecycle.scheduler import (
    ABANDONED,
    FINISHED,
    STOPPED,
    Scheduler,
    SourceLock,
    due_slot,
    jitter_seconds,
)
from pipeline.registry.config import Settings, Source, load_config
from pipeline.registry.state import State
from pipeline.runs.writer import RUN_JSON, RUNS_DIR

HOURLY = "0 * * * *"
ROOT = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self, now: datetime):
        self.now = now
        self.slept = 0.0

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += timedelta(seconds=seconds)


class FakeCrawl:
    """A crawl child: writes its run folder, ends when told (or on SIGTERM, if it obeys)."""

    def __init__(self, data_dir: Path, source_id: str, run_id: str, obeys_sigterm: bool):
        self.run_dir = data_dir / RUNS_DIR / run_id
        self.run_dir.mkdir(parents=True)
        (self.run_dir / ".items.parquet.partial").write_bytes(b"half")
        self.source_id, self.run_id = source_id, run_id
        self.obeys, self.code = obeys_sigterm, None
        self.signals: list[str] = []

    def commit(self, reason: str = "finished") -> None:
        (self.run_dir / ".items.parquet.partial").unlink()
        (self.run_dir / RUN_JSON).write_text(json.dumps(
            {"run_id": self.run_id, "finish_reason": reason, "counts": {"items": 3}}))
        self.code = 0

    def poll(self) -> int | None:
        return self.code

    def terminate(self) -> None:
        self.signals.append("TERM")
        if self.obeys:
            self.commit("shutdown")

    def kill(self) -> None:
        self.signals.append("KILL")
        self.code = -9


class Spawner:
    def __init__(self, data_dir: Path, obeys_sigterm: bool = True):
        self.data_dir, self.obeys = data_dir, obeys_sigterm
        self.started: list[FakeCrawl] = []

    def __call__(self, source_id: str, run_id: str, lock_fd: int) -> FakeCrawl:
        crawl = FakeCrawl(self.data_dir, source_id, run_id, self.obeys)
        self.started.append(crawl)
        return crawl


def _config(tmp: Path, *docs: dict) -> Path:
    write_config(tmp / "configs", list(docs))
    return tmp / "configs"


def _scheduler(tmp: Path, clock: Clock, spawn: Spawner, **kw) -> Scheduler:
    return Scheduler(tmp / "data", lambda: load_config(tmp / "configs"), spawn, clock=clock,
                     sleep=clock.sleep, **kw)


def _noon() -> datetime:
    return datetime.now(UTC).replace(hour=12, minute=10, second=0, microsecond=0)


# ----------------------------------------------------------------------- due time and jitter


def test_due_slot_is_the_fire_after_the_last_run_or_the_latest_fire_for_a_new_source():
    at_fire = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    assert due_slot("*/15 * * * *", None, at_fire) == at_fire  # a fire at now counts
    assert due_slot("*/15 * * * *", None, at_fire + timedelta(minutes=7)) == at_fire
    assert due_slot(HOURLY, at_fire + timedelta(seconds=40), at_fire + timedelta(minutes=5)) \
        == at_fire + timedelta(hours=1)
    # a run missed while the scheduler was down is still due, at the first missed fire
    assert due_slot(HOURLY, at_fire, at_fire + timedelta(hours=5)) == at_fire + timedelta(hours=1)


def test_jitter_is_deterministic_per_source_and_due_time_and_bounded():
    due = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    a = jitter_seconds("s", "aurora", due, HOURLY)
    assert a == jitter_seconds("s", "aurora", due, HOURLY)
    assert len({a, jitter_seconds("s", "borealis", due, HOURLY),
                jitter_seconds("s", "aurora", due + timedelta(hours=1), HOURLY),
                jitter_seconds("other", "aurora", due, HOURLY)}) == 4
    spread = [jitter_seconds("s", f"src{i}", due, HOURLY) for i in range(50)]
    assert all(0 <= j < 300 for j in spread) and max(spread) - min(spread) > 100
    minutely = [jitter_seconds("s", f"src{i}", due, "* * * * *") for i in range(50)]
    assert all(0 <= j < 30 for j in minutely)  # never more than half the interval
    assert jitter_seconds("s", "aurora", due, HOURLY, max_jitter_s=0) == 0


def test_a_due_source_starts_at_due_time_plus_its_recorded_jitter(tmp_path):
    _config(tmp_path, source_doc("aurora", schedule=HOURLY))
    clock = Clock(_noon())
    spawn = Spawner(tmp_path / "data")
    sched = _scheduler(tmp_path, clock, spawn, seed="fixed")
    due = clock.now.replace(minute=0)
    jitter = jitter_seconds("fixed", "aurora", due, HOURLY)
    assert 0 < jitter < 300
    clock.now = due  # exactly at the fire: planned, not started yet
    wait = sched.step()
    assert spawn.started == [] and wait == pytest.approx(min(jitter, 60.0))  # wakes every min
    plan = State.in_data_dir(tmp_path / "data").scheduler_sources()["aurora"]
    assert plan["next_due_at"] == due and plan["jitter_s"] == jitter
    assert plan["jitter_seed"] == "fixed"
    assert plan["next_start_at"] == due + timedelta(seconds=jitter)
    clock.now = plan["next_start_at"] - timedelta(milliseconds=1)
    sched.step()
    assert spawn.started == []
    clock.now = plan["next_start_at"]
    sched.step()
    assert [c.source_id for c in spawn.started] == ["aurora"]
    sched.step()
    assert len(spawn.started) == 1  # one crawl per source at a time


def test_sources_sharing_a_host_do_not_crawl_together(tmp_path):
    a = source_doc("aurora", schedule=HOURLY)
    b = source_doc("borealis", schedule=HOURLY)
    b["scope"].append("https://aurora.example/other/")
    _config(tmp_path, a, b)
    clock = Clock(_noon())
    spawn = Spawner(tmp_path / "data")
    sched = _scheduler(tmp_path, clock, spawn, max_jitter_s=0)
    sched.step()
    assert [c.source_id for c in spawn.started] == ["aurora"]
    spawn.started[0].commit()
    sched.step()  # reaps aurora, then starts borealis
    assert [c.source_id for c in spawn.started] == ["aurora", "borealis"]


# ----------------------------------------------------------------------- skips and warnings


def test_lapsed_revoked_and_suspended_sources_are_skipped_with_a_logged_reason(tmp_path, caplog):
    _config(tmp_path, source_doc("revoked", schedule=HOURLY, status="revoked"),
            source_doc("lapsed", schedule=HOURLY, consent_expires_in=0),
            source_doc("held", schedule=HOURLY), source_doc("manual"))
    State.in_data_dir(tmp_path / "data").suspend("held", "blocklist hit")
    clock = Clock(_noon())
    spawn = Spawner(tmp_path / "data")
    sched = _scheduler(tmp_path, clock, spawn)
    with caplog.at_level(logging.INFO, "pipeline.lifecycle.scheduler"):
        sched.step()
        sched.step()
    assert spawn.started == []
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert skipped == [  # logged once each, not on every pass
        "held: skipped: source is suspended pending review (state.sqlite) (consent_inactive)",
        f"lapsed: skipped: consent C-lapsed expired on {clock.now.date()} (consent_inactive)",
        "revoked: skipped: consent C-revoked is revoked (revoked)",
    ]
    rows = State.in_data_dir(tmp_path / "data").scheduler_sources()
    assert rows["revoked"]["skipped_reason"] == "consent C-revoked is revoked (revoked)"
    assert "manual" not in rows


def test_expiring_records_within_30_days_exactly():
    today = date.today()
    config_doc = source_doc("a", consent_expires_in=30, av_expires_in=31)
    settings = Settings.model_validate(settings_doc())
    found = expiring_records(Source.model_validate(config_doc), settings, today)
    assert [(r.record, r.id, r.days_left, r.expires_at) for r in found] == [
        ("consent", "C-a", 30, today + timedelta(days=30))]
    av_soon = Source.model_validate(source_doc("b", consent_expires_in=31, av_expires_in=1))
    assert [(r.record, r.days_left) for r in expiring_records(av_soon, settings, today)] == [
        ("age_verification", 1)]
    lapsed = Source.model_validate(source_doc("c", consent_expires_in=0))
    assert expiring_records(lapsed, settings, today) == []  # skipped, not warned
    revoked = Source.model_validate(source_doc("d", consent_expires_in=5, status="revoked"))
    assert expiring_records(revoked, settings, today) == []
    # max_age_days can end an age verification before its own expires_at
    doc = source_doc("e", av_expires_in=700)
    doc["age_verification"]["verified_at"] = today - timedelta(days=720)
    old = Source.model_validate(doc)
    (rec,) = expiring_records(old, settings, today)
    assert (rec.basis, rec.days_left) == ("max_age_days", 11)


def test_expiry_warnings_on_every_scheduler_start_and_in_schedule_list(tmp_path, caplog):
    _config(tmp_path, source_doc("soon", schedule=HOURLY, consent_expires_in=30),
            source_doc("later", schedule=HOURLY, consent_expires_in=31))
    clock = Clock(_noon())
    with caplog.at_level(logging.WARNING, "pipeline.lifecycle.scheduler"):
        _scheduler(tmp_path, clock, Spawner(tmp_path / "data"), max_jitter_s=0).step()
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    lapse = (clock.now.date() + timedelta(days=30)).isoformat()
    # once when the scheduler starts, once as the crawl of the source starts
    assert warned == [f"soon: consent C-soon lapses on {lapse}, in 30 days"] * 2
    table = {e.source_id: e.as_dict() for e in schedule_table(
        load_config(tmp_path / "configs"), State.in_data_dir(tmp_path / "data"), clock.now)}
    assert table["soon"]["expiring"] == [{"record": "consent", "id": "C-soon",
                                          "expires_at": lapse, "days_left": 30,
                                          "basis": "expires_at"}]
    assert table["later"]["expiring"] == []


# ----------------------------------------------------------------------- lock, restart, stop


def test_the_lock_of_a_killed_process_is_free_again(tmp_path):
    data = tmp_path / "data"
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path\n"
         "from pipeline.lifecycle.scheduler import SourceLock\n"
         "assert SourceLock.acquire(Path(sys.argv[1]), 'aurora')\n"
         "print('locked', flush=True); time.sleep(120)", str(data)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "locked\n"
        assert SourceLock.acquire(data, "aurora") is None  # held by a live process
        assert f"pid {child.pid}" in SourceLock.holder(data, "aurora")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    lock = SourceLock.acquire(data, "aurora")
    assert lock is not None
    assert SourceLock.acquire(data, "aurora") is None  # and now this process holds it
    lock.release()
    assert SourceLock.acquire(data, "aurora") is not None


def test_a_new_scheduler_reads_the_state_back_and_does_not_rerun(tmp_path):
    _config(tmp_path, source_doc("aurora", schedule=HOURLY))
    clock = Clock(_noon())
    spawn = Spawner(tmp_path / "data")
    first = _scheduler(tmp_path, clock, spawn, max_jitter_s=0)
    first.step()
    (crawl,) = spawn.started
    crawl.commit()
    clock.sleep(30)
    first.step()
    assert first.outcomes == [{"source_id": "aurora", "run_id": crawl.run_id,
                               "outcome": FINISHED, "detail": "3 items, finish_reason finished"}]
    del first
    second = _scheduler(tmp_path, clock, spawn, max_jitter_s=0)
    clock.sleep(600)
    second.step()
    assert len(spawn.started) == 1
    row = State.in_data_dir(tmp_path / "data").scheduler_sources()["aurora"]
    assert (row["last_outcome"], row["last_run_id"]) == (FINISHED, crawl.run_id)
    assert row["next_due_at"] == clock.now.replace(minute=0, second=0) + timedelta(hours=1)
    clock.now = row["next_start_at"]
    second.step()
    assert len(spawn.started) == 2


def test_stop_forwards_sigterm_and_the_child_commits(tmp_path):
    _config(tmp_path, source_doc("aurora", schedule=HOURLY))
    clock = Clock(_noon())
    spawn = Spawner(tmp_path / "data")
    sched = _scheduler(tmp_path, clock, spawn, max_jitter_s=0)
    sched.step()
    sched.request_stop()
    t0 = clock.now
    sched.run()
    (crawl,) = spawn.started
    assert crawl.signals == ["TERM"]
    assert sched.outcomes[0]["outcome"] == STOPPED
    assert (crawl.run_dir / RUN_JSON).is_file()
    assert clock.now - t0 < timedelta(seconds=1)
    assert SourceLock.acquire(tmp_path / "data", "aurora") is not None


def test_a_child_that_does_not_stop_is_killed_and_its_run_removed_within_30s(tmp_path):
    _config(tmp_path, source_doc("aurora", schedule=HOURLY))
    clock = Clock(_noon())
    spawn = Spawner(tmp_path / "data", obeys_sigterm=False)
    sched = _scheduler(tmp_path, clock, spawn, max_jitter_s=0)
    sched.step()
    sched.request_stop()
    t0 = clock.now
    sched.run()
    (crawl,) = spawn.started
    assert crawl.signals == ["TERM", "TERM", "KILL"]
    assert clock.now - t0 < timedelta(seconds=30)
    assert not crawl.run_dir.exists()  # no half-written run left
    assert sched.outcomes[0]["outcome"] == ABANDONED
    row = State.in_data_dir(tmp_path / "data").scheduler_sources()["aurora"]
    assert row["last_outcome"] == ABANDONED and row["last_run_id"] is None
    # an abandoned crawl is not a run: a restarted scheduler crawls the source again
    assert State.in_data_dir(tmp_path / "data").last_run("aurora") is None


def test_no_test_here_sleeps(tmp_path):
    """The loop's waits all go through the injected sleep."""
    _config(tmp_path, source_doc("aurora", schedule=HOURLY))
    clock = Clock(_noon())
    t0 = time.monotonic()
    _scheduler(tmp_path, clock, Spawner(tmp_path / "data"), max_jitter_s=0).run(max_passes=50)
    assert clock.slept >= 49 * 1.0 and time.monotonic() - t0 < 20
