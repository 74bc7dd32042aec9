"""Write valid config directories (clearance.yaml + sources/*.yaml) into a test's tmp_path.

Dates are relative to today so that the configs stay valid whenever the tests run.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from pipeline.registry.config import Config, load_config

EVIDENCE_SHA256 = "ab" * 32


def source_doc(
    source_id: str,
    *,
    today: date | None = None,
    status: str = "active",
    consent_id: str | None = None,
    consent_expires_in: int = 335,
    uses: tuple[str, ...] = ("ai-training", "research"),
    age_verified: bool = True,
    av_method: str = "government-id",
    av_expires_in: int = 700,
    schedule: str | None = None,
    default_licence: str | None = "CC-BY-4.0",
) -> dict[str, Any]:
    """One source's YAML document; offsets are days from ``today``."""
    today = today or date.today()
    expires = today + timedelta(days=consent_expires_in)
    granted = min(today - timedelta(days=30), expires - timedelta(days=1))
    av_expires = today + timedelta(days=av_expires_in)
    verified = min(today - timedelta(days=30), av_expires - timedelta(days=1))
    base = f"https://{source_id}.example/gallery/"
    doc: dict[str, Any] = {
        "id": source_id,
        "name": f"{source_id.title()} Collective",
        "start_urls": [base],
        "scope": [base, f"https://cdn.{source_id}.example/img/"],
        "consent": {
            "id": consent_id or f"C-{source_id}",
            "status": status,
            "granted_by": f"{source_id.title()} Collective, by its legal representative",
            "granted_at": granted,
            "expires_at": expires,
            "uses": list(uses),
            "evidence": {"uri": f"docs/consent/{source_id}.pdf", "sha256": EVIDENCE_SHA256},
        },
        "licence": {"default": default_licence},
        "crawl": {"max_depth": 3, "download_delay": 0},
    }
    if schedule is not None:
        doc["crawl"]["schedule"] = schedule
    if age_verified:
        doc["age_verification"] = {
            "id": f"AV-{source_id}",
            "method": av_method,
            "verified_by": "Example Verifier Ltd",
            "verified_at": verified,
            "expires_at": av_expires,
        }
    return doc


def settings_doc(
    allow: tuple[str, ...] = ("CC0-1.0", "CC-BY-4.0", "CC-BY-SA-4.0", "PDDL-1.0"),
    intended_use: str = "ai-training",
) -> dict[str, Any]:
    return {
        "user_agent": "ClearanceBot/0.1 (+https://example.org/clearance-bot)",
        "robots_token": "ClearanceBot",
        "intended_use": intended_use,
        "licences": {"allow": list(allow)},
        "age_verification": {
            "accepted_methods": ["government-id", "platform-kyc", "records-2257"],
            "max_age_days": 730,
        },
        "signals": {},
        "exclude_minors": True,
        "blocklists": [],
        "limits": {"max_bytes": 20_000_000, "max_pixels": 50_000_000, "max_pages_per_source": 100},
    }


def write_source(root: Path, doc: dict[str, Any]) -> None:
    folder = Path(root) / "sources"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{doc['id']}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def write_config(
    root: Path,
    sources: list[dict[str, Any]],
    settings: dict[str, Any] | None = None,
) -> Config:
    """Write a config dir and return it loaded (so it is known to validate)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "clearance.yaml").write_text(
        yaml.safe_dump(settings or settings_doc(), sort_keys=False)
    )
    (root / "sources").mkdir(exist_ok=True)
    for doc in sources:
        write_source(root, doc)
    return load_config(root)
