"""pipeline.reports: Markdown and JSON provenance reports checked against the built manifest."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from helpers_config import source_doc, write_config, write_source
from helpers_runs import make_item, make_rejection, write_run

from pipeline.build.builder import build_manifest
from pipeline.registry.config import load_config
from pipeline.reports.formats import FORMATS, PLANNED_FORMATS, ReportFormatError, render_report
from pipeline.reports.provenance import build_report


@pytest.fixture
def built(tmp_path: Path):
    root = tmp_path / "configs"
    config = write_config(
        root, [source_doc("aurora"), source_doc("birch"), source_doc("cedar", status="revoked")]
    )
    a, b, c = (config.sources[s] for s in ("aurora", "birch", "cedar"))
    data = tmp_path / "data"
    write_run(
        data,
        "run-1",
        [
            make_item(a, "https://aurora.example/gallery/1.jpg"),
            make_item(a, "https://aurora.example/gallery/2.jpg", licence="CC0-1.0"),
            make_item(a, "https://aurora.example/gallery/nc.jpg", licence="CC-BY-NC-4.0"),
            make_item(
                b, "https://birch.example/gallery/1.jpg", content=b"same", licence_source="xmp"
            ),
            make_item(c, "https://cedar.example/gallery/1.jpg"),
        ],
        [
            make_rejection("aurora", "https://aurora.example/gallery/p.jpg", "tdm_reserved"),
            make_rejection("aurora", "https://aurora.example/gallery/q.jpg", "x_robots_noai"),
            make_rejection("aurora", "https://aurora.example/gallery/r.jpg", "x_robots_noai"),
            make_rejection(
                "aurora", "https://aurora.example/gallery/big.jpg", "too_large", stage="fetch"
            ),
            make_rejection(
                "birch", "https://birch.example/gallery/x.txt", "not_an_image", stage="image"
            ),
            make_rejection(None, "http://127.0.0.1/", "private_address", stage="consent"),
        ],
    )
    write_run(
        data,
        "run-2",
        [make_item(b, "https://birch.example/gallery/2.jpg", content=b"same")],
        [
            make_rejection(
                "birch", "https://birch.example/private/", "robots_disallowed", stage="robots"
            )
        ],
    )
    write_source(root, source_doc("aurora", consent_id="C-aurora-2"))
    result = build_manifest(load_config(root), data, "demo")
    return data, result


def test_json_numbers_match_the_built_manifest(built):
    data, result = built
    report = json.loads(render_report(data, "demo", "json"))
    manifest = json.loads((result.path / "manifest.json").read_text())
    rows = ds.dataset(result.path / "data", format="parquet").to_table().to_pylist()
    excluded = pq.read_table(result.path / "audit" / "exclusions.parquet").to_pylist()

    assert report["manifest"]["name"] == "demo" and report["manifest"]["version"] == 1
    assert report["manifest"]["created_at"] == manifest["created_at"]
    assert report["manifest"]["inputs"] == ["run-1", "run-2"]
    assert report["totals"] == {"candidates": 6, "kept": len(rows), "excluded": len(excluded)}
    assert report["totals"]["kept"] + report["totals"]["excluded"] == 6
    assert report["kept"]["by_source"] == dict(Counter(r["source_id"] for r in rows))
    assert report["kept"]["by_licence"] == dict(Counter(r["licence"] for r in rows))
    assert report["kept"]["by_licence_source"] == {"source-default": 2, "xmp": 1}
    assert report["build_exclusions"] == {
        "total": 3,
        "by_reason": {"duplicate": 1, "licence_not_allowed": 1, "revoked": 1},
        "by_source": {
            "aurora": {"licence_not_allowed": 1},
            "birch": {"duplicate": 1},
            "cedar": {"revoked": 1},
        },
    }


def test_crawl_rejections_and_signal_conflicts(built):
    data, _ = built
    report = build_report(data, "demo@v1")
    crawl = report["crawl_rejections"]
    assert crawl["total"] == 7
    assert crawl["by_reason"] == {
        "not_an_image": 1,
        "private_address": 1,
        "robots_disallowed": 1,
        "tdm_reserved": 1,
        "too_large": 1,
        "x_robots_noai": 2,
    }
    assert crawl["by_source"]["aurora"] == {"tdm_reserved": 1, "too_large": 1, "x_robots_noai": 2}
    assert crawl["by_source"]["(none)"] == {"private_address": 1}
    assert crawl["withheld"] == 0
    assert crawl["runs_missing"] == [] and crawl["runs_changed_since_build"] == []

    conflicts = {c["source_id"]: c for c in report["signal_conflicts"]}
    assert set(conflicts) == {"aurora", "birch"}
    assert conflicts["aurora"]["count"] == 3  # too_large is not an opt-out
    assert conflicts["aurora"]["by_reason"] == {"tdm_reserved": 1, "x_robots_noai": 2}
    assert conflicts["aurora"]["consent_id"] == "C-aurora-2"
    assert "disagree" in conflicts["aurora"]["message"]
    assert conflicts["birch"]["count"] == 1


def test_sources_carry_consent_and_age_verification_records(built):
    data, _ = built
    sources = build_report(data, "demo")["sources"]
    assert set(sources) == {"aurora", "birch", "cedar"}
    aurora = sources["aurora"]
    assert aurora["consent"]["id"] == "C-aurora-2"
    assert aurora["consent"]["evidence"]["sha256"] == "ab" * 32
    assert aurora["age_verification"]["method"] == "government-id"
    assert sources["cedar"]["eligibility"]["reason"] == "revoked"
    changed = build_report(data, "demo")["consent_changed"]
    assert [c["source_id"] for c in changed] == ["aurora"]


def test_json_is_stable(built):
    data, _ = built
    first = render_report(data, "demo", "json")
    assert first == render_report(data, "demo", "json")
    assert first == json.dumps(json.loads(first), sort_keys=True, indent=2) + "\n"


def test_markdown_tables(built):
    data, result = built
    md = render_report(data, "demo", "md")
    assert md.startswith("# Provenance report: demo v1\n")
    assert "| candidates | kept | excluded |\n|---|---|---|\n| 6 | 3 | 3 |" in md
    assert "| aurora | 2 |" in md and "| birch | 1 |" in md
    assert "| CC0-1.0 | 1 |" in md
    assert "| cedar | revoked | 1 |" in md
    assert "| aurora | x_robots_noai | 2 |" in md
    assert "| consent | id | C-aurora-2 |" in md
    assert "| age verification | verified_by | Example Verifier Ltd |" in md
    assert f"docs/consent/aurora.pdf (sha256 {'ab' * 32})" in md
    assert "Current eligibility: not eligible (revoked): consent C-cedar is revoked" in md
    assert "aurora: consent C-aurora-2 covers ai-training" in md
    assert "## Consent records changed since crawl" in md
    assert "| aurora | 2 | C-aurora | C-aurora-2 |" in md


def test_rejections_changed_since_build_are_flagged(built):
    data, _ = built
    path = data / "runs" / "run-2" / "rejections.parquet"
    table = pq.read_table(path)
    pq.write_table(pa.concat_tables([table, table]), path)
    crawl = build_report(data, "demo")["crawl_rejections"]
    assert crawl["runs_changed_since_build"] == ["run-2"]
    assert crawl["by_source"]["birch"]["robots_disallowed"] == 2
    assert "changed since the build for run(s): run-2" in render_report(data, "demo", "md")


def test_missing_run_is_listed(built):
    data, _ = built
    (data / "runs" / "run-2" / "rejections.parquet").unlink()
    crawl = build_report(data, "demo")["crawl_rejections"]
    assert crawl["runs_missing"] == ["run-2"]
    assert crawl["total"] == 6
    assert "Rejections not found for run(s): run-2" in render_report(data, "demo", "md")


def test_formats(built):
    data, _ = built
    assert FORMATS == ("md", "json", "html", "croissant", "eu-summary", "eu-summary-json",
                       "attribution")
    assert PLANNED_FORMATS == ()
    for fmt in FORMATS:
        assert render_report(data, "demo", fmt)
    with pytest.raises(ReportFormatError, match="unknown format 'pdf'"):
        render_report(data, "demo", "pdf")
    with pytest.raises(FileNotFoundError, match="demo@v7 not found"):
        render_report(data, "demo@v7", "md")


def test_markdown_cells_are_escaped():
    from pipeline.reports.markdown import _table

    lines = _table(["a", "b"], [["x | y", "two\nlines"]])
    assert lines[2] == "| x \\| y | two lines |"
    assert _table(["a"], []) == ["_none_", ""]


def test_licence_evidence_and_disagreements_per_source(tmp_path: Path):
    root = tmp_path / "configs"
    config = write_config(root, [source_doc("aurora"), source_doc("birch")])
    a, b = config.sources["aurora"], config.sources["birch"]
    data = tmp_path / "data"
    said = "xmp [embedded]: CC-BY-4.0; rel-license [page]: CC-BY-SA-4.0; kept CC-BY-SA-4.0"
    write_run(
        data,
        "run-1",
        [
            make_item(a, "https://aurora.example/gallery/1.jpg", licence="CC-BY-SA-4.0",
                      licence_source="xmp", licence_disagreement=said),
            make_item(a, "https://aurora.example/gallery/2.jpg", licence="CC-BY-SA-4.0",
                      licence_source="rel-license", licence_disagreement=said),
            make_item(a, "https://aurora.example/gallery/3.jpg", licence_source="jsonld"),
            make_item(b, "https://birch.example/gallery/1.jpg"),
            # Excluded rows count nowhere here: only published rows.
            make_item(b, "https://birch.example/gallery/nc.jpg", licence="CC-BY-NC-4.0",
                      licence_disagreement=said),
        ],
        [],
    )
    build_manifest(load_config(root), data, "lic")
    licences = build_report(data, "lic")["licences"]
    assert licences == {
        "disagreements": 2,
        "by_source": {
            "aurora": {
                "licence_source": {"jsonld": 1, "rel-license": 1, "xmp": 1},
                "disagreements": 2,
            },
            "birch": {"licence_source": {"source-default": 1}, "disagreements": 0},
        },
    }
    md = render_report(data, "lic", "md")
    assert "### Licence evidence per source" in md
    assert "| aurora | rel-license | 1 |" in md and "| birch | source-default | 1 |" in md
    assert "the more restrictive was kept. Total: 2" in md
    assert "| source | rows |\n|---|---|\n| aurora | 2 |\n| birch | 0 |" in md


def test_licence_disagreements_read_defensively_from_older_manifests(built):
    """A manifest written before `licence_disagreement` existed: every count is 0."""
    data, result = built
    part = next((result.path / "data").glob("*.parquet"))
    table = pq.read_table(part)
    if "licence_disagreement" in table.column_names:
        table = table.drop_columns(["licence_disagreement"])
        pq.write_table(table, part)
    licences = build_report(data, "demo")["licences"]
    assert licences["disagreements"] == 0
    assert licences["by_source"]["aurora"] == {
        "licence_source": {"source-default": 2}, "disagreements": 0
    }
    assert licences["by_source"]["birch"]["licence_source"] == {"xmp": 1}
