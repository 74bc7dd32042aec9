"""pipeline.registry.state: schedule runs, suspensions and the run registry in state.sqlite."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest

from pipeline.registry.state import SCHEMA_VERSION, State, StateError

T0 = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)


def test_created_on_demand_in_wal_mode_with_schema_version(tmp_path):
    path = tmp_path / "nested" / "data" / "state.sqlite"
    State(path)
    assert path.is_file()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"schedule_runs", "suspensions", "runs", "schema_version"} <= tables
    db.close()
    State(path)  # reopening does not add a second version row
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM schema_version").fetchone() == (1,)
    db.close()


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "state.sqlite"
    State(path)
    db = sqlite3.connect(path)
    db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    db.commit()
    db.close()
    with pytest.raises(StateError, match="newer than this Clearance understands"):
        State(path)


def test_last_run_is_the_latest_start_in_utc(tmp_path):
    state = State.in_data_dir(tmp_path)
    assert state.last_run("aurora") is None
    state.record_run("aurora", "r1", T0, T0 + timedelta(minutes=5), "ok")
    plus_two = timezone(timedelta(hours=2))
    later = datetime(2026, 3, 9, 5, 0, 0, 500, tzinfo=plus_two)  # 03:00:00.0005 UTC
    state.record_run("aurora", None, later, None, "failed")
    state.record_run("aurora", "r0", T0 - timedelta(days=7), T0, "ok")
    state.record_run("birch", "r2", T0 + timedelta(days=30), None, "ok")
    assert state.last_run("aurora") == later
    assert state.last_run("aurora").tzinfo == UTC
    assert state.last_run("birch") == T0 + timedelta(days=30)


def test_naive_timestamps_are_refused(tmp_path):
    with pytest.raises(ValueError, match="timezone-aware"):
        State(tmp_path / "s.sqlite").record_run("a", "r", datetime(2026, 1, 1), None, "ok")


def test_suspend_and_resume_are_recorded(tmp_path):
    state = State(tmp_path / "s.sqlite")
    assert state.suspended_ids() == set()
    assert state.suspend("aurora", "blocklist hit (incident 1)") is True
    assert state.suspend("aurora", "second hit") is False  # already suspended
    state.suspend("birch", "manual")
    assert state.suspended_ids() == {"aurora", "birch"}

    lifted = state.resume("aurora", reviewed_by="Dana", note="false positive, checked")
    assert lifted.reviewed_by == "Dana" and lifted.note == "false positive, checked"
    assert lifted.resumed_at is not None and lifted.resumed_at >= lifted.suspended_at
    assert state.suspended_ids() == {"birch"}
    (history,) = state.suspensions("aurora")
    assert history.reason == "blocklist hit (incident 1)"

    state.suspend("aurora", "again")
    assert [s.reason for s in state.suspensions("aurora")] == [
        "blocklist hit (incident 1)",
        "again",
    ]
    assert len(state.suspensions()) == 3


def test_resume_refuses_unsuspended_sources_and_empty_review(tmp_path):
    state = State(tmp_path / "s.sqlite")
    with pytest.raises(StateError, match="'aurora' is not suspended"):
        state.resume("aurora", reviewed_by="Dana", note="n")
    state.suspend("aurora", "x")
    with pytest.raises(StateError, match="reviewer name and a note"):
        state.resume("aurora", reviewed_by=" ", note="n")
    assert state.suspended_ids() == {"aurora"}


def test_state_is_shared_between_instances_and_threads(tmp_path):
    path = tmp_path / "s.sqlite"
    results: list[bool] = []

    def suspend() -> None:
        results.append(State(path).suspend("aurora", "race"))

    threads = [threading.Thread(target=suspend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert len(State(path).suspensions("aurora")) == 1


def test_run_registry(tmp_path):
    state = State(tmp_path / "s.sqlite")
    state.register_run("r1", {"counts": {"items": 3}, "sources": ["aurora"]})
    state.register_run("r0", {"counts": {"items": 1}})
    state.register_run("r1", {"counts": {"items": 4}})
    assert state.registered_runs() == {
        "r0": {"counts": {"items": 1}},
        "r1": {"counts": {"items": 4}},
    }


def test_validators_upsert_forget_and_leave_no_bytes_behind(tmp_path):
    from pipeline.registry.state import Validator

    state = State(tmp_path / "state.sqlite")
    url = "https://a.example/img/secret-name.jpg"
    v = Validator("a", url, '"e1"', None, "run-1", "ab" * 32, 0, 3, "k")
    state.record_validators([v, Validator("b", url, None, "Tue, 01 Dec 2026 10:00:00 GMT",
                                          "run-1", "cd" * 32, 0, 4, "k")])
    reader = state.validator_reader()
    assert reader.get("a", url) == state.validator("a", url)
    assert state.validator("a", url).row_index == 3  # type: ignore[union-attr]
    state.record_validators([Validator("a", url, '"e2"', None, "run-2", "ab" * 32, 1, 0, "k")])
    assert reader.get("a", url).etag == '"e2"'  # type: ignore[union-attr]  # sees new commits
    state.record_validators([], [("b", url)])  # one source's entry
    assert state.validator("b", url) is None and state.validator("a", url) is not None
    state.forget_validators({url})  # every source's, a blocklist hit
    assert state.validators() == [] and reader.get("a", url) is None
    reader.close()
    for path in tmp_path.glob("state.sqlite*"):
        assert b"secret-name" not in path.read_bytes(), path.name
