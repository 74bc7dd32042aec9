"""pipeline.lifecycle.schedule: cron per source, last run from state, eligibility gates."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from helpers_config import source_doc, write_config

from pipeline.lifecycle.schedule import due_sources, next_fire, schedule_table
from pipeline.registry.state import State

WEEKLY = "0 3 * * 1"  # Mondays 03:00 UTC


def _now() -> datetime:
    """A Monday 12:00 UTC in the current week, so config dates stay valid."""
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    return today - timedelta(days=today.weekday())


@pytest.fixture
def setup(tmp_path):
    now = _now()
    config = write_config(
        tmp_path / "c",
        [
            source_doc("never-run", schedule=WEEKLY),
            source_doc("ran-today", schedule=WEEKLY),
            source_doc("ran-last-week", schedule=WEEKLY),
            source_doc("revoked", schedule=WEEKLY, status="revoked"),
            source_doc("no-av", schedule=WEEKLY, age_verified=False),
            source_doc("suspended", schedule=WEEKLY),
            source_doc("manual"),
        ],
    )
    state = State(tmp_path / "data" / "state.sqlite")
    this_monday_3am = now.replace(hour=3)
    state.record_run("ran-today", "r1", this_monday_3am + timedelta(minutes=1), None, "ok")
    state.record_run("ran-last-week", "r0", this_monday_3am - timedelta(days=7), None, "ok")
    state.suspend("suspended", "blocklist hit")
    return config, state, now


def test_table_lists_every_source_with_status(setup):
    config, state, now = setup
    table = {e.source_id: e for e in schedule_table(config, state, now)}
    assert list(table) == sorted(config.sources)
    assert {k: e.status for k, e in table.items()} == {
        "manual": "unscheduled",
        "never-run": "due",
        "no-av": "ineligible",
        "ran-last-week": "due",
        "ran-today": "waiting",
        "revoked": "ineligible",
        "suspended": "ineligible",
    }
    monday_3am = now.replace(hour=3)
    assert table["never-run"].next_due == now and table["never-run"].last_run is None
    assert table["ran-today"].next_due == monday_3am + timedelta(days=7)
    assert table["ran-last-week"].next_due == monday_3am
    assert table["manual"].next_due is None and not table["manual"].due
    assert (table["revoked"].reason, table["revoked"].message) == (
        "revoked",
        "consent C-revoked is revoked",
    )
    assert table["no-av"].reason == "age_unverified"
    assert table["suspended"].reason == "consent_inactive"
    assert "suspended" in table["suspended"].message


def test_ineligible_sources_are_never_due(setup):
    config, state, now = setup
    due = [e.source_id for e in due_sources(config, state, now)]
    assert due == ["never-run", "ran-last-week"]
    state.resume("suspended", reviewed_by="Dana", note="cleared")
    assert "suspended" in [e.source_id for e in due_sources(config, state, now)]


def test_recording_a_run_makes_a_source_wait_for_the_next_fire(setup):
    config, state, now = setup
    state.record_run("never-run", "r2", now, now + timedelta(minutes=3), "ok")
    entry = next(e for e in schedule_table(config, state, now) if e.source_id == "never-run")
    assert not entry.due
    assert entry.next_due == now.replace(hour=3) + timedelta(days=7)
    later = entry.next_due + timedelta(seconds=1)
    assert "never-run" in [e.source_id for e in due_sources(config, state, later)]


def test_cron_is_evaluated_in_utc_whatever_the_zone_of_now(setup):
    config, state, now = setup
    tokyo = timezone(timedelta(hours=9))
    same_instant = now.astimezone(tokyo)
    a = [e.as_dict() for e in schedule_table(config, state, now)]
    b = [e.as_dict() for e in schedule_table(config, state, same_instant)]
    assert a == b
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule_table(config, state, now.replace(tzinfo=None))


def test_next_fire():
    last = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)  # a Monday, exactly at the fire time
    assert next_fire(WEEKLY, last, last) == datetime(2026, 3, 9, 3, 0, tzinfo=UTC)
    assert next_fire("*/15 * * * *", last, last) == last + timedelta(minutes=15)
    assert next_fire(WEEKLY, None, last) == last


def test_as_dict_is_json_ready(setup):
    config, state, now = setup
    rows = [e.as_dict() for e in schedule_table(config, state, now)]
    doc = json.loads(json.dumps(rows))
    never = next(r for r in doc if r["source_id"] == "never-run")
    assert never["status"] == "due"
    assert never["next_due"] == now.isoformat()
    assert never["schedule"] == WEEKLY
