"""Synthetic runs for build/report tests: item and rejection dicts matching the schemas,
written through the real :class:`pipeline.runs.RunWriter`."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.registry.config import Source
from pipeline.runs.writer import RunWriter

FETCHED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def make_item(
    source: Source,
    url: str,
    *,
    content: bytes | None = None,
    licence: str = "CC-BY-4.0",
    licence_source: str = "source-default",
    **overrides: Any,
) -> dict[str, Any]:
    """An items.parquet row for ``source``; the content defaults to the URL's bytes."""
    body = url.encode() if content is None else content
    sha256 = hashlib.sha256(body).hexdigest()
    av = source.age_verification
    row: dict[str, Any] = {
        "row_id": sha256,
        "url": url,
        "page_url": url.rsplit("/", 1)[0] + "/",
        "source_id": source.id,
        "consent_id": source.consent.id,
        "consent_sha256": source.consent_sha256,
        "age_verification_id": av.id if av else "none",
        "fetched_at": FETCHED_AT,
        "http_status": 200,
        "content_type": "image/jpeg",
        "bytes": len(body),
        "sha256": sha256,
        "md5": hashlib.md5(body).hexdigest(),
        "pdq": None,
        "width": 64,
        "height": 48,
        "licence": licence,
        "licence_url": None,
        "licence_source": licence_source,
        "creator": None,
        "attribution": None,
        "caption": f"caption of {url}",
        "signals": [
            {"check": "robots", "ran": True, "found": None, "decision": "allow", "detail": None}
        ],
        "blocklists": None,
        "run_id": "",
        "licence_evidence": [{"source": licence_source, "licence": licence, "url": None,
                              "raw": licence, "scope": "default"}],
        "licence_disagreement": None,
        "minor_age_disclosure": None,
        "model_release_status": None,
        "credit": None,
    }
    row.update(overrides)
    return row


def make_rejection(
    source_id: str | None,
    url: str,
    reason: str,
    *,
    stage: str = "signals",
    detail: str | None = None,
) -> dict[str, Any]:
    return {
        "url": url,
        "page_url": None,
        "source_id": source_id,
        "stage": stage,
        "reason": reason,
        "detail": detail,
        "at": FETCHED_AT,
    }


def write_run(
    data_dir: Path,
    run_id: str,
    items: Iterable[dict[str, Any]],
    rejections: Iterable[dict[str, Any]] = (),
) -> Path:
    """Write and commit one run; every item gets ``run_id``. Returns the run directory."""
    writer = RunWriter(Path(data_dir), run_id)
    for item in items:
        writer.add_item({**item, "run_id": run_id})
    for rejection in rejections:
        writer.add_rejection(rejection)
    writer.commit(
        {
            "started_at": FETCHED_AT.isoformat(),
            "finished_at": FETCHED_AT.isoformat(),
            "sources": sorted(writer.items_by_source),
            "config_sha256": "0" * 64,
            "versions": {},
            "limits_hit": [],
        }
    )
    return writer.dir
