"""Which sources are due for a crawl: each source's cron (UTC), its last run and eligibility.

A source is due when it has a schedule, is eligible today, and the next cron fire after its
last recorded run is not in the future; a scheduled source that never ran is due at once.
Ineligible sources are listed with their reason but are never due, so the scheduler skips
lapsed consent; sources without a schedule are listed as unscheduled.

Each entry also names the source's consent and age-verification records that lapse within
:data:`EXPIRY_WARNING_DAYS` (:func:`expiring_records`), so `schedule list` and every scheduler
pass can warn before a source silently drops out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from croniter import croniter

from pipeline.registry.config import Config, Settings, Source
from pipeline.registry.eligibility import check
from pipeline.registry.state import State

DUE = "due"
WAITING = "waiting"
INELIGIBLE = "ineligible"
UNSCHEDULED = "unscheduled"
EXPIRY_WARNING_DAYS = 30


@dataclass(frozen=True)
class ExpiringRecord:
    """A consent or age-verification record that lapses soon.

    ``expires_at`` is the first day the source is no longer eligible because of it (for an age
    verification, the earlier of its ``expires_at`` and ``verified_at + max_age_days + 1``,
    named by ``basis``); ``days_left`` counts from today to that day.
    """

    record: str  # "consent" | "age_verification"
    id: str
    expires_at: date
    days_left: int
    basis: str = "expires_at"  # or "max_age_days"

    def as_dict(self) -> dict[str, Any]:
        return {"record": self.record, "id": self.id, "expires_at": self.expires_at.isoformat(),
                "days_left": self.days_left, "basis": self.basis}

    def __str__(self) -> str:
        days = "1 day" if self.days_left == 1 else f"{self.days_left} days"
        record = "consent" if self.record == "consent" else "age verification"
        why = "" if self.basis == "expires_at" else " (max_age_days)"
        return f"{record} {self.id} lapses on {self.expires_at.isoformat()}{why}, in {days}"


def expiring_records(
    source: Source, settings: Settings, today: date, within_days: int = EXPIRY_WARNING_DAYS
) -> list[ExpiringRecord]:
    """The source's records still in force today that lapse within ``within_days`` days
    (1..within_days; a record lapsing today already makes the source ineligible). A revoked
    consent is not warned about: nothing is crawled under it again."""
    if source.consent.status == "revoked":
        return []
    found = [ExpiringRecord("consent", source.consent.id, source.consent.expires_at,
                            (source.consent.expires_at - today).days)]
    av = source.age_verification
    if av is not None:
        by_age = av.verified_at + timedelta(days=settings.age_verification.max_age_days + 1)
        lapse, basis = (av.expires_at, "expires_at") if av.expires_at <= by_age else (
            by_age, "max_age_days")
        found.append(ExpiringRecord("age_verification", av.id, lapse, (lapse - today).days,
                                    basis))
    return [r for r in found if 0 < r.days_left <= within_days]


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
    expiring: tuple[ExpiringRecord, ...] = ()

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
        out["expiring"] = [record.as_dict() for record in self.expiring]
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
                expiring=tuple(expiring_records(source, config.settings, now.date())),
            )
        )
    return entries


def due_sources(config: Config, state: State, now: datetime) -> list[ScheduleEntry]:
    """The entries of :func:`schedule_table` that should be crawled now."""
    return [entry for entry in schedule_table(config, state, now) if entry.due]
