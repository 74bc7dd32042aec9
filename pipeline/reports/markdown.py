"""The Markdown provenance report, rendered from `pipeline.reports.provenance.build_report`."""

from __future__ import annotations

from typing import Any


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
        *overview_lines(report),
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
    lines += ["## Sources", ""]
    lines += _table(
        ["source", "name", "rows", "consent", "status", "consent expires", "age verification",
         "AV expires", "eligible", "build excluded", "crawl rejected", "opt-out refusals"],
        [[r["source_id"], r["name"], r["rows"], r["consent_id"], r["consent_status"],
          r["consent_expires_at"], r["age_verification_id"], r["age_verification_expires_at"],
          "yes" if r["eligible"] else "no", r["build_excluded"], r["crawl_rejected"],
          r["opt_out_refusals"]] for r in report["source_table"]],
    )
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
    lines += ["", *changes_lines(report["changes"])]
    lines += ["## Withheld", "", withheld_sentence(report["overview"]["withheld"]), ""]
    return "\n".join(lines).rstrip() + "\n"


def withheld_sentence(count: int) -> str:
    return (f"Blocklist hits withheld by the crawl: {count}. A hit is never recorded beyond "
            "this count; it went to a restricted incident record.")


def overview_lines(report: dict[str, Any]) -> list[str]:
    o, m = report["overview"], report["manifest"]
    span = (f"{o['fetched_from']} to {o['fetched_to']}" if o["fetched_from"]
            else "no rows")
    return [
        "## Overview",
        "",
        f"- Rows: {o['rows']}",
        f"- Sources with rows: {len(o['sources'])} ({', '.join(o['sources']) or 'none'})",
        f"- Licences: {', '.join(o['licences']) or 'none'}",
        f"- Fetched: {span}",
        f"- Admitted under: intended use `{m['policy']['intended_use']}`, licences "
        + ", ".join(m["policy"].get("licences_effective") or m["policy"]["licences_allow"]),
        f"- Withheld (blocklist hits, count only): {o['withheld']}",
        "",
    ]


def changes_lines(changes: dict[str, Any] | None) -> list[str]:
    if changes is None:
        return ["## Changes since the previous version", "",
                "First version: nothing to compare with.", ""]
    return [
        f"## Changes since v{changes['since']}",
        "",
        f"Rows then: {changes['rows_then']}; now: {changes['rows_now']}; added: "
        f"{changes['added']}; removed: {changes['removed']} (counts per reason only, never "
        "which rows).",
        "",
        *_table(["reason", "rows removed"],
                [[r, n] for r, n in changes["removed_by_reason"].items()]),
    ]


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
