"""Provenance reports of one manifest version, as Markdown or JSON.

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
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipeline import reasons
from pipeline.attribution import render_attribution
from pipeline.build import sha256_file
from pipeline.manifests import (
    AUDIT_DIR,
    DATA_DIR,
    EXCLUSIONS_FILE,
    MANIFESTS_DIR,
    read_manifest,
    resolve_manifest,
)
from pipeline.runs import REJECTIONS_FILE, RUN_JSON, RUNS_DIR

FORMATS = ("md", "json", "attribution")
PLANNED_FORMATS = ("html", "croissant", "eu-summary")
NO_SOURCE = "(none)"

# Crawl rejections that mean the source's own signals refused what its consent allows.
OPT_OUT_REASONS = reasons.OPT_OUTS


class ReportFormatError(ValueError):
    """A report format that does not exist, or not yet."""


def check_format(fmt: str) -> str:
    available = ", ".join(FORMATS)
    if fmt in FORMATS:
        return fmt
    if fmt in PLANNED_FORMATS:
        raise ReportFormatError(f"format {fmt} is not available yet; available: {available}")
    raise ReportFormatError(f"unknown format {fmt!r}; available: {available}")


def render_report(data_dir: Path, ref: str, fmt: str) -> str:
    """Render the report of manifest ``ref`` (``NAME`` or ``NAME@vN``) in ``fmt``."""
    check_format(fmt)
    if fmt == "attribution":
        return render_attribution(Path(data_dir), ref)
    report = build_report(Path(data_dir), ref)
    if fmt == "json":
        return json.dumps(report, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    return render_markdown(report)


def build_report(data_dir: Path, ref: str) -> dict[str, Any]:
    """The report as a plain, JSON-ready dict."""
    version_dir = resolve_manifest(data_dir, ref)
    manifest = read_manifest(version_dir)
    counts = manifest["counts"]
    exclusions = pq.read_table(
        version_dir / AUDIT_DIR / EXCLUSIONS_FILE, columns=["source_id", "reason"]
    )
    crawl = _crawl_rejections(data_dir, manifest["inputs"])
    sources = manifest["sources"]
    return {
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


# ---------------------------------------------------------------------------- Markdown


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return ["_none_", ""]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def _counts(title: str, key: str, mapping: dict[str, int]) -> list[str]:
    return [f"### {title}", "", *_table([key, "rows"], [[k, n] for k, n in mapping.items()])]


def _nested(mapping: dict[str, dict[str, int]]) -> list[list[Any]]:
    return [[s, r, n] for s, per in mapping.items() for r, n in per.items()]


def render_markdown(report: dict[str, Any]) -> str:
    m, totals = report["manifest"], report["totals"]
    lines = [
        f"# Provenance report: {m['name']} v{m['version']}",
        "",
        f"- Created: {m['created_at']}",
        f"- Folder: `{m['path']}` (published rows in `data/`)",
        f"- Schema version: {m['schema_version']}; config sha256: `{m['config_sha256']}`",
        f"- Policy as of {m['policy']['today']}: intended use `{m['policy']['intended_use']}`, "
        f"licences allowed: {', '.join(m['policy']['licences_allow'])}"
        + "".join(f" + preset {p}" for p in m["policy"].get("licences_preset") or []),
        f"- Input runs: {', '.join(m['inputs']) or 'none'}",
        *[f"- Note: {note}" for note in m["notes"]],
        "",
        "## Totals",
        "",
        *_table(
            ["candidates", "kept", "excluded"],
            [[totals["candidates"], totals["kept"], totals["excluded"]]],
        ),
        "## Kept rows",
        "",
        *_counts("Per source", "source", report["kept"]["by_source"]),
        *_counts("Per licence", "licence", report["kept"]["by_licence"]),
        *_counts("Per licence evidence", "licence_source", report["kept"]["by_licence_source"]),
        *_licence_section(report["licences"]),
    ]
    for title, section in (
        ("Build-stage exclusions", report["build_exclusions"]),
        ("Crawl-stage rejections", report["crawl_rejections"]),
    ):
        lines += [f"## {title}", "", f"Total: {section['total']}", ""]
        lines += _counts("Per reason", "reason", section["by_reason"])
        lines += ["### Per source", ""]
        lines += _table(["source", "reason", "rows"], _nested(section["by_source"]))
    crawl = report["crawl_rejections"]
    lines += [f"Blocklist hits withheld (count only): {crawl['withheld']}", ""]
    if crawl["runs_missing"]:
        lines += [f"Rejections not found for run(s): {', '.join(crawl['runs_missing'])}", ""]
    if crawl["runs_changed_since_build"]:
        changed = ", ".join(crawl["runs_changed_since_build"])
        lines += [f"Rejections changed since the build for run(s): {changed}", ""]
    lines += ["## Sources: consent and age verification", ""]
    for source_id, info in report["sources"].items():
        lines += _source(source_id, info)
    if report["consent_changed"]:
        lines += ["## Consent records changed since crawl", ""]
        lines += _table(
            ["source", "rows", "crawled under", "current"],
            [
                [
                    c["source_id"],
                    c["rows"],
                    ", ".join(u["consent_id"] for u in c["crawled_under"]),
                    c["current"]["consent_id"],
                ]
                for c in report["consent_changed"]
            ],
        )
    lines += ["## Signal conflicts", ""]
    conflicts = report["signal_conflicts"]
    lines += [f"- {c['message']}" for c in conflicts] or ["_none_"]
    return "\n".join(lines).rstrip() + "\n"


def _licence_section(licences: dict[str, Any]) -> list[str]:
    per_source = licences["by_source"]
    return [
        "### Licence evidence per source",
        "",
        *_table(
            ["source", "licence_source", "rows"],
            [[s, k, n] for s, e in per_source.items() for k, n in e["licence_source"].items()],
        ),
        "### Licence disagreements",
        "",
        "Rows whose evidence named different licences, all allowed; the more restrictive was "
        f"kept. Total: {licences['disagreements']}",
        "",
        *_table(["source", "rows"], [[s, e["disagreements"]] for s, e in per_source.items()]),
    ]


def _source(source_id: str, info: dict[str, Any]) -> list[str]:
    lines = [f"### {source_id}" + (f": {info['name']}" if info.get("name") else ""), ""]
    verdict = info["eligibility"]
    status = "eligible" if verdict["eligible"] else f"not eligible ({verdict['reason']})"
    lines += [
        f"Current eligibility: {status}"
        + (f": {verdict['message']}" if verdict["message"] else ""),
        "",
    ]
    consent, av = info.get("consent"), info.get("age_verification")
    if consent is None:
        return lines + ["No consent record: the source is not in the current config.", ""]
    evidence = consent["evidence"]
    rows = [
        ["consent", "id", consent["id"]],
        ["consent", "status", consent["status"]],
        ["consent", "granted_by", consent["granted_by"]],
        ["consent", "granted_at", consent["granted_at"]],
        ["consent", "expires_at", consent["expires_at"]],
        ["consent", "uses", ", ".join(consent["uses"])],
        ["consent", "evidence", f"{evidence['uri']} (sha256 {evidence['sha256']})"],
        ["consent", "record sha256", info.get("consent_sha256")],
    ]
    if av is None:
        rows.append(["age verification", "record", "none"])
    else:
        rows += [
            ["age verification", key, av[key]]
            for key in ("id", "method", "verified_by", "verified_at", "expires_at")
        ]
    return lines + _table(["record", "field", "value"], rows)
