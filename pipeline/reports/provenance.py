"""The provenance facts of one manifest version, gathered into one document (the JSON report).

Everything comes from the version folder (manifest.json, audit/exclusions.parquet) and the
input runs it names (rejections.parquet, run.json), so a report can be produced on a machine
that never crawled. Blocklist hits appear only as the runs' withheld count.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipeline.build.builder import sha256_file
from pipeline.build.croissant import published_facts
from pipeline.build.removals import removed_since
from pipeline.build.versions import (
    AUDIT_DIR,
    DATA_DIR,
    EXCLUSIONS_FILE,
    MANIFESTS_DIR,
    manifest_root,
    read_manifest,
    resolve_manifest,
)
from pipeline.runs import reasons
from pipeline.runs.writer import REJECTIONS_FILE, RUN_JSON, RUNS_DIR

NO_SOURCE = "(none)"

# Crawl rejections that mean the source's own signals refused what its consent allows.
OPT_OUT_REASONS = reasons.OPT_OUTS


def build_report(data_dir: Path, ref: str, since: int | None = None) -> dict[str, Any]:
    """The report as a plain, JSON-ready dict: the one model md, json and html render.

    ``since``: an earlier version to count the changes from (default: the previous one)."""
    version_dir = resolve_manifest(data_dir, ref)
    manifest = read_manifest(version_dir)
    counts = manifest["counts"]
    exclusions = pq.read_table(
        version_dir / AUDIT_DIR / EXCLUSIONS_FILE, columns=["source_id", "reason"]
    )
    crawl = _crawl_rejections(data_dir, manifest["inputs"])
    sources = manifest["sources"]
    facts = published_facts(version_dir)
    report: dict[str, Any] = {
        "overview": {
            "rows": counts["kept"],
            "sources": sorted(counts["kept_by_source"]),
            "licences": sorted(counts["kept_by_licence"]),
            "fetched_from": facts["fetched_from"],
            "fetched_to": facts["fetched_to"],
            "withheld": crawl["withheld"],
        },
        "changes": changes_since(data_dir, version_dir, manifest, since),
        "manifest": {
            "name": manifest["name"],
            "version": manifest["version"],
            "path": f"{MANIFESTS_DIR}/{manifest['name']}/v{manifest['version']}",
            "created_at": manifest["created_at"],
            "schema_version": manifest["schema_version"],
            "config_sha256": manifest["config_sha256"],
            "policy": manifest["policy"],
            "inputs": [i["run_id"] for i in manifest["inputs"]],
            "notes": manifest.get("notes", []),
        },
        "totals": {k: counts[k] for k in ("candidates", "kept", "excluded")},
        "kept": {
            "by_source": counts["kept_by_source"],
            "by_licence": counts["kept_by_licence"],
            "by_licence_source": counts["kept_by_licence_source"],
        },
        "licences": _licence_evidence(version_dir),
        "build_exclusions": _by_reason_and_source(exclusions),
        "crawl_rejections": crawl,
        "sources": sources,
        "consent_changed": manifest.get("consent_changed", []),
        "signal_conflicts": _conflicts(crawl["by_source"], sources, manifest["policy"]),
    }
    report["source_table"] = source_table(report)
    return report


def source_table(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One summary line per source (the sources table of every format)."""
    kept = report["kept"]["by_source"]
    build = report["build_exclusions"]["by_source"]
    crawl = report["crawl_rejections"]["by_source"]
    conflicts = {c["source_id"]: c["count"] for c in report["signal_conflicts"]}
    out = []
    for source_id, info in report["sources"].items():
        consent, av = info.get("consent") or {}, info.get("age_verification") or {}
        out.append({
            "source_id": source_id,
            "name": info.get("name"),
            "rows": int(kept.get(source_id, 0)),
            "consent_id": consent.get("id"),
            "consent_status": consent.get("status"),
            "consent_expires_at": consent.get("expires_at"),
            "age_verification_id": av.get("id"),
            "age_verification_expires_at": av.get("expires_at"),
            "eligible": bool(info["eligibility"]["eligible"]),
            "build_excluded": sum(build.get(source_id, {}).values()),
            "crawl_rejected": sum(crawl.get(source_id, {}).values()),
            "opt_out_refusals": int(conflicts.get(source_id, 0)),
        })
    return out


class SinceError(ValueError):
    """``--since vM`` that names no earlier version of the manifest."""


def changes_since(data_dir: Path, version_dir: Path, manifest: dict[str, Any],
                  since: int | None) -> dict[str, Any] | None:
    """What changed since version ``since`` (default: the previous version), in counts only:
    rows added, rows removed per reason (DESIGN "No removal map": never which rows). None for
    a first version asked nothing."""
    version = int(manifest["version"])
    previous = manifest.get("previous_version")
    if since is None:
        if previous is None:
            return None
        since = int(previous)
    if since >= version or since < 1:
        raise SinceError(f"--since v{since}: must name an earlier version than v{version}")
    earlier = manifest_root(data_dir, manifest["name"]) / f"v{since}"
    if not earlier.is_dir():
        raise SinceError(f"--since v{since}: {manifest['name']}@v{since} not found")
    earlier_kept = int(read_manifest(earlier)["counts"]["kept"])
    if previous is not None and since == int(previous):
        removed = dict(manifest.get("removed_since_previous") or {})
    else:
        removed = _removed_between(earlier, version_dir, manifest)
    total = sum(removed.values())
    return {
        "since": since,
        "rows_then": earlier_kept,
        "rows_now": int(manifest["counts"]["kept"]),
        "added": int(manifest["counts"]["kept"]) - (earlier_kept - total),
        "removed": total,
        "removed_by_reason": dict(sorted(removed.items())),
    }


def _removed_between(earlier: Path, version_dir: Path, manifest: dict[str, Any]) -> dict[str, int]:
    """Rows of ``earlier`` this version does not publish, per the reason of their first
    exclusion here (filters in chain order), or ``not_in_inputs``."""
    kept = ds.dataset(version_dir / DATA_DIR, format="parquet").to_table(columns=["row_id"])
    excluded = pq.read_table(version_dir / AUDIT_DIR / EXCLUSIONS_FILE,
                             columns=["row_id", "reason"])
    rank: dict[str, int] = {}
    for i, summary in enumerate(manifest.get("filters", [])):
        for reason in summary.get("dropped") or {}:
            rank.setdefault(reason, i)
    order = pa.array([rank.get(r, len(rank)) for r in excluded["reason"].to_pylist()],
                     pa.int64())
    excluded = excluded.append_column("_rank", order).sort_by(
        [("_rank", "ascending")]).drop_columns(["_rank"])
    excluded = excluded.filter(pc.is_valid(excluded["row_id"]))
    return removed_since(earlier, kept, excluded)


def _licence_evidence(version_dir: Path) -> dict[str, Any]:
    """Per source, over the published rows: where each licence was found (``licence_source``)
    and how many rows had evidence naming different, all-allowed licences
    (``licence_disagreement``; the more restrictive was kept). Rows from before that column
    existed count as no disagreement."""
    dataset = ds.dataset(version_dir / DATA_DIR, format="parquet")
    names = set(dataset.schema.names)
    columns = [c for c in ("source_id", "licence_source", "licence_disagreement") if c in names]
    by_source: dict[str, dict[str, Any]] = {}
    for row in dataset.to_table(columns=columns).to_pylist():
        entry = by_source.setdefault(
            row["source_id"] or NO_SOURCE, {"licence_source": Counter(), "disagreements": 0}
        )
        entry["licence_source"][row.get("licence_source") or NO_SOURCE] += 1
        if row.get("licence_disagreement"):
            entry["disagreements"] += 1
    return {
        "disagreements": sum(e["disagreements"] for e in by_source.values()),
        "by_source": {
            source: {
                "licence_source": dict(sorted(e["licence_source"].items())),
                "disagreements": e["disagreements"],
            }
            for source, e in sorted(by_source.items())
        },
    }


def _by_reason_and_source(table: pa.Table) -> dict[str, Any]:
    by_reason: Counter[str] = Counter()
    by_source: dict[str, dict[str, int]] = {}
    grouped = table.group_by(["source_id", "reason"]).aggregate([([], "count_all")])
    for row in grouped.to_pylist():
        source = row["source_id"] or NO_SOURCE
        by_reason[row["reason"]] += row["count_all"]
        per_source = by_source.setdefault(source, {})
        per_source[row["reason"]] = per_source.get(row["reason"], 0) + row["count_all"]
    return {
        "total": table.num_rows,
        "by_reason": dict(sorted(by_reason.items())),
        "by_source": {s: dict(sorted(r.items())) for s, r in sorted(by_source.items())},
    }


def _crawl_rejections(data_dir: Path, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    tables: list[pa.Table] = []
    missing: list[str] = []
    changed: list[str] = []
    withheld = 0
    for record in inputs:
        run_dir = data_dir / RUNS_DIR / record["run_id"]
        path = run_dir / REJECTIONS_FILE
        if not path.is_file():
            missing.append(record["run_id"])
            continue
        if record.get("rejections_sha256") not in (None, sha256_file(path)):
            changed.append(record["run_id"])
        tables.append(pq.read_table(path, columns=["source_id", "reason"]))
        run_json = run_dir / RUN_JSON
        if run_json.is_file():
            meta = json.loads(run_json.read_text(encoding="utf-8"))
            withheld += int(meta.get("counts", {}).get("withheld", 0))
    schema = pa.schema([("source_id", pa.string()), ("reason", pa.string())])
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    out = _by_reason_and_source(table)
    out.update(withheld=withheld, runs_missing=missing, runs_changed_since_build=changed)
    return out


def _conflicts(
    rejections_by_source: dict[str, dict[str, int]],
    sources: dict[str, Any],
    policy: dict[str, Any],
) -> list[dict[str, Any]]:
    conflicts = []
    for source_id, by_reason in sorted(rejections_by_source.items()):
        opted_out = {r: n for r, n in sorted(by_reason.items()) if r in OPT_OUT_REASONS}
        if not opted_out:
            continue
        count = sum(opted_out.values())
        consent = (sources.get(source_id) or {}).get("consent") or {}
        consent_id = consent.get("id", "(no consent on record)")
        conflicts.append(
            {
                "source_id": source_id,
                "consent_id": consent_id,
                "count": count,
                "by_reason": opted_out,
                "message": (
                    f"{source_id}: consent {consent_id} covers {policy['intended_use']}, but "
                    f"the source's own signals refused {count} item(s) "
                    f"({', '.join(opted_out)}); the consent and the source's signals disagree, "
                    "and the opt-outs won."
                ),
            }
        )
    return conflicts
