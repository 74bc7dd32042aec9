"""Which sources are due for a crawl: each source's cron (UTC), its last run and eligibility.

A source is due when it has a schedule, is eligible today, and the next cron fire after its
last recorded run is not in the future; a scheduled source that never ran is due at once.
Ineligible sources are listed with their reason but are never due, so the scheduler skips
lapsed consent; sources without a schedule are listed as unscheduled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from croniter import croniter

from pipeline.registry.config import Config
from pipeline.registry.eligibility import check
from pipeline.registry.state import State

DUE = "due"
WAITING = "waiting"
INELIGIBLE = "ineligible"
UNSCHEDULED = "unscheduled"


@dataclass(frozen=True)
class ScheduleEntry:
    source_id: str
    schedule: str | None
    last_run: datetime | None
    next_due: datetime | None
    eligible: bool
    reason: str | None  # eligibility reason code when not eligible
    message: str
    due: bool

    @property
    def status(self) -> str:
        if self.schedule is None:
            return UNSCHEDULED
        if not self.eligible:
            return INELIGIBLE
        return DUE if self.due else WAITING

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for ``clearance schedule list --json``."""
        out = asdict(self)
        for key in ("last_run", "next_due"):
            value = out[key]
            out[key] = None if value is None else value.isoformat()
        out["status"] = self.status
        return out


def next_fire(schedule: str, last_run: datetime | None, now: datetime) -> datetime:
    """The first fire of ``schedule`` (UTC) after ``last_run``; ``now`` if it never ran."""
    if last_run is None:
        return now
    return croniter(schedule, last_run.astimezone(UTC)).get_next(datetime)


def schedule_table(config: Config, state: State, now: datetime) -> list[ScheduleEntry]:
    """One entry per configured source, sorted by id."""
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware (UTC), got {now!r}")
    now = now.astimezone(UTC)
    suspended = state.suspended_ids()
    entries = []
    for source_id, source in sorted(config.sources.items()):
        verdict = check(source, config.settings, now.date(), source_id in suspended)
        schedule = source.crawl.schedule
        last = state.last_run(source_id)
        upcoming = None if schedule is None else next_fire(schedule, last, now)
        entries.append(
            ScheduleEntry(
                source_id=source_id,
                schedule=schedule,
                last_run=last,
                next_due=upcoming,
                eligible=verdict.eligible,
                reason=verdict.reason,
                message=verdict.message,
                due=verdict.eligible and upcoming is not None and upcoming <= now,
            )
        )
    return entries


def due_sources(config: Config, state: State, now: datetime) -> list[ScheduleEntry]:
    """The entries of :func:`schedule_table` that should be crawled now."""
    return [entry for entry in schedule_table(config, state, now) if entry.due]
