"""pipeline/eligibility.py: `check(source, settings, today, suspended)`, one test per rule, with
the reason code and message each gives, and the date boundaries."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from helpers_config import settings_doc, source_doc

from pipeline.registry.config import Settings, Source
from pipeline.registry.eligibility import Eligibility, check
from pipeline.runs import reasons

TODAY = date(2026, 6, 15)


def make_source(consent: dict[str, Any] | None = None, av: dict[str, Any] | None = None,
                **kwargs: Any) -> Source:
    """An eligible source on TODAY, with consent / age_verification fields overridden."""
    doc = source_doc("aurora-art", today=TODAY, **kwargs)
    doc["consent"].update(consent or {})
    if av is not None:
        doc["age_verification"].update(av)
    return Source.model_validate(doc)


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings.model_validate(settings_doc())


def test_all_good_is_eligible(settings: Settings) -> None:
    verdict = check(make_source(), settings, TODAY)
    assert verdict.eligible is True
    assert bool(verdict) is True
    assert verdict.reason is None
    assert verdict.message == ""


def test_ineligible_verdict_is_falsy(settings: Settings) -> None:
    verdict = check(make_source(status="revoked"), settings, TODAY)
    assert isinstance(verdict, Eligibility)
    assert not verdict
    assert verdict.reason in reasons.ALL


def test_revoked(settings: Settings) -> None:
    verdict = check(make_source(status="revoked", consent_id="C-9"), settings, TODAY)
    assert (verdict.eligible, verdict.reason) == (False, reasons.REVOKED)
    assert verdict.message == "consent C-9 is revoked"


def test_revoked_wins_over_suspension(settings: Settings) -> None:
    verdict = check(make_source(status="revoked"), settings, TODAY, suspended=True)
    assert verdict.reason == reasons.REVOKED


def test_suspended_status(settings: Settings) -> None:
    verdict = check(make_source(status="suspended", consent_id="C-9"), settings, TODAY)
    assert (verdict.eligible, verdict.reason) == (False, reasons.CONSENT_INACTIVE)
    assert verdict.message == "consent C-9 is suspended"


def test_suspended_in_state(settings: Settings) -> None:
    source = make_source()
    assert check(source, settings, TODAY, suspended=False)
    verdict = check(source, settings, TODAY, suspended=True)
    assert (verdict.eligible, verdict.reason) == (False, reasons.CONSENT_INACTIVE)
    assert "suspended pending review" in verdict.message


def test_not_yet_granted(settings: Settings) -> None:
    granted = TODAY + timedelta(days=1)
    source = make_source(consent={"granted_at": granted, "expires_at": TODAY + timedelta(days=90)},
                         consent_id="C-9")
    verdict = check(source, settings, TODAY)
    assert (verdict.eligible, verdict.reason) == (False, reasons.CONSENT_INACTIVE)
    assert verdict.message == f"consent C-9 is not in force until {granted.isoformat()}"
    # On the day it is granted, it is in force.
    assert check(source, settings, granted)


def test_expired(settings: Settings) -> None:
    source = make_source(consent_expires_in=-10, consent_id="C-9")
    verdict = check(source, settings, TODAY)
    assert (verdict.eligible, verdict.reason) == (False, reasons.CONSENT_INACTIVE)
    expired = (TODAY - timedelta(days=10)).isoformat()
    assert verdict.message == f"consent C-9 expired on {expired}"


def test_expiry_boundary(settings: Settings) -> None:
    """expires_at == today is expired; the day before is still in force."""
    source = make_source(consent_expires_in=0)
    assert source.consent.expires_at == TODAY
    verdict = check(source, settings, TODAY)
    assert verdict.reason == reasons.CONSENT_INACTIVE
    assert "expired on" in verdict.message
    assert check(source, settings, TODAY - timedelta(days=1))


def test_intended_use_missing_from_uses(settings: Settings) -> None:
    source = make_source(uses=("research", "archiving"), consent_id="C-9")
    verdict = check(source, settings, TODAY)
    assert (verdict.eligible, verdict.reason) == (False, reasons.CONSENT_INACTIVE)
    assert verdict.message == (
        "consent C-9 does not cover 'ai-training' (uses: research, archiving)"
    )


def test_intended_use_is_read_from_settings() -> None:
    source = make_source(uses=("research",))
    research = Settings.model_validate(settings_doc(intended_use="research"))
    assert check(source, research, TODAY)
    assert not check(source, Settings.model_validate(settings_doc()), TODAY)


def test_no_age_verification(settings: Settings) -> None:
    verdict = check(make_source(age_verified=False), settings, TODAY)
    assert (verdict.eligible, verdict.reason) == (False, reasons.AGE_UNVERIFIED)
    assert verdict.message == "no age verification record"


def test_age_verification_method_not_accepted(settings: Settings) -> None:
    verdict = check(make_source(av_method="selfie"), settings, TODAY)
    assert (verdict.eligible, verdict.reason) == (False, reasons.AGE_UNVERIFIED)
    assert "'selfie'" in verdict.message
    assert "not an accepted method" in verdict.message
    assert "government-id" in verdict.message


def test_age_verification_expired(settings: Settings) -> None:
    source = make_source(av_expires_in=-1)
    verdict = check(source, settings, TODAY)
    assert (verdict.eligible, verdict.reason) == (False, reasons.AGE_UNVERIFIED)
    assert verdict.message == (
        f"age verification AV-aurora-art expired on {(TODAY - timedelta(days=1)).isoformat()}"
    )


def test_age_verification_expiry_boundary(settings: Settings) -> None:
    source = make_source(av_expires_in=0)
    verdict = check(source, settings, TODAY)
    assert verdict.reason == reasons.AGE_UNVERIFIED
    assert "expired on" in verdict.message
    assert check(source, settings, TODAY - timedelta(days=1))


def test_age_verification_older_than_max_age_days(settings: Settings) -> None:
    max_age = settings.age_verification.max_age_days
    verified = TODAY - timedelta(days=max_age + 1)
    source = make_source(av={"verified_at": verified, "expires_at": TODAY + timedelta(days=30)})
    verdict = check(source, settings, TODAY)
    assert (verdict.eligible, verdict.reason) == (False, reasons.AGE_UNVERIFIED)
    assert verdict.message == (
        f"age verification AV-aurora-art of {verified.isoformat()} is older than "
        f"max_age_days={max_age}"
    )


def test_max_age_days_boundary(settings: Settings) -> None:
    """Exactly max_age_days old still counts; one day more does not."""
    max_age = settings.age_verification.max_age_days
    verified = TODAY - timedelta(days=max_age)
    source = make_source(av={"verified_at": verified, "expires_at": TODAY + timedelta(days=30)})
    assert check(source, settings, TODAY)
    assert check(source, settings, TODAY + timedelta(days=1)).reason == reasons.AGE_UNVERIFIED


def test_age_verification_dated_in_the_future(settings: Settings) -> None:
    verified = TODAY + timedelta(days=3)
    source = make_source(av={"verified_at": verified, "expires_at": TODAY + timedelta(days=300)})
    verdict = check(source, settings, TODAY)
    assert (verdict.eligible, verdict.reason) == (False, reasons.AGE_UNVERIFIED)
    assert verdict.message == (
        f"age verification AV-aurora-art is dated in the future ({verified.isoformat()})"
    )


def test_consent_is_checked_before_age_verification(settings: Settings) -> None:
    source = make_source(consent_expires_in=-1, age_verified=False)
    assert check(source, settings, TODAY).reason == reasons.CONSENT_INACTIVE


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"status": "revoked"}, reasons.REVOKED),
        ({"status": "suspended"}, reasons.CONSENT_INACTIVE),
        ({"consent_expires_in": -1}, reasons.CONSENT_INACTIVE),
        ({"uses": ("research",)}, reasons.CONSENT_INACTIVE),
        ({"age_verified": False}, reasons.AGE_UNVERIFIED),
        ({"av_method": "self-declared"}, reasons.AGE_UNVERIFIED),
        ({"av_expires_in": -5}, reasons.AGE_UNVERIFIED),
    ],
)
def test_every_ineligible_verdict_has_a_contract_reason_and_a_message(
    settings: Settings, kwargs: dict[str, Any], reason: str
) -> None:
    verdict = check(make_source(**kwargs), settings, TODAY)
    assert verdict.reason == reason
    assert verdict.reason in reasons.ALL
    assert verdict.message
