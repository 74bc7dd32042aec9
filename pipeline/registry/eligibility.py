"""Is a source eligible to be crawled (or to stay in a manifest) today?

A source is eligible only if its consent is active, granted, unexpired and lists the intended
use, and its age verification uses an accepted method, is unexpired and not older than
``max_age_days``, and it is not suspended in state. The first failing rule gives the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from pipeline.registry.config import Settings, Source
from pipeline.runs import reasons


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    reason: str | None = None  # a reason code from pipeline.runs.reasons
    message: str = ""

    def __bool__(self) -> bool:
        return self.eligible


OK = Eligibility(True)


def check(
    source: Source, settings: Settings, today: date, suspended: bool = False
) -> Eligibility:
    consent = source.consent
    if consent.status == "revoked":
        return Eligibility(False, reasons.REVOKED, f"consent {consent.id} is revoked")
    if consent.status != "active":
        return Eligibility(
            False, reasons.CONSENT_INACTIVE, f"consent {consent.id} is {consent.status}"
        )
    if suspended:
        return Eligibility(
            False, reasons.CONSENT_INACTIVE, "source is suspended pending review (state.sqlite)"
        )
    if today < consent.granted_at:
        return Eligibility(
            False,
            reasons.CONSENT_INACTIVE,
            f"consent {consent.id} is not in force until {consent.granted_at.isoformat()}",
        )
    if today >= consent.expires_at:
        return Eligibility(
            False,
            reasons.CONSENT_INACTIVE,
            f"consent {consent.id} expired on {consent.expires_at.isoformat()}",
        )
    if settings.intended_use not in consent.uses:
        return Eligibility(
            False,
            reasons.CONSENT_INACTIVE,
            f"consent {consent.id} does not cover {settings.intended_use!r} "
            f"(uses: {', '.join(consent.uses)})",
        )
    av = source.age_verification
    if av is None:
        return Eligibility(False, reasons.AGE_UNVERIFIED, "no age verification record")
    policy = settings.age_verification
    if av.method not in policy.accepted_methods:
        return Eligibility(
            False,
            reasons.AGE_UNVERIFIED,
            f"age verification {av.id} uses {av.method!r}, not an accepted method "
            f"({', '.join(policy.accepted_methods)})",
        )
    if today < av.verified_at:
        return Eligibility(
            False,
            reasons.AGE_UNVERIFIED,
            f"age verification {av.id} is dated in the future ({av.verified_at.isoformat()})",
        )
    if today >= av.expires_at:
        return Eligibility(
            False,
            reasons.AGE_UNVERIFIED,
            f"age verification {av.id} expired on {av.expires_at.isoformat()}",
        )
    if today - av.verified_at > timedelta(days=policy.max_age_days):
        return Eligibility(
            False,
            reasons.AGE_UNVERIFIED,
            f"age verification {av.id} of {av.verified_at.isoformat()} is older than "
            f"max_age_days={policy.max_age_days}",
        )
    return OK
