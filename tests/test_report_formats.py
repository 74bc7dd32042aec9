"""The report formats over one fixed two-version manifest (tests/helpers_reports.py): md and json
against golden files, html from the same model, --since, the EU AI Act summary, and no format
naming a withheld, taken-down or removed item.

Regenerate the golden files after an intended change of the reports:
    CLEARANCE_REGENERATE_GOLDEN=1 ./dev test tests/test_report_formats.py
then review the diff of tests/golden/ like code.
"""

from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers_reports import (
    BLOCKLIST_LINE,
    TAKEN_DOWN,
    WITHHELD_SHA256,
    WITHHELD_URL,
    make_world,
)

import pipeline.cli.manifests  # noqa: F401 - registers report
from pipeline.cli import cli
from pipeline.reports.eusummary import PLACEHOLDER
from pipeline.reports.formats import FORMATS, render_report
from pipeline.reports.provenance import SinceError, build_report

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("CLEARANCE_REGENERATE_GOLDEN") == "1"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("reports"))


def report(world, *args: str, ok: int = 0) -> str:
    result = CliRunner().invoke(cli, ["--config", str(world.configs), "--data", str(world.data),
                                      "report", *args])
    assert result.exit_code == ok, result.output
    return result.output


@pytest.mark.parametrize("fmt,name", [("md", "report-v2.md"), ("json", "report-v2.json"),
                                      ("eu-summary", "eu-summary-v2.md")])
def test_golden_files(world, fmt, name):
    text = report(world, "set@v2", "--format", fmt)
    golden = GOLDEN / name
    if REGENERATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert golden.is_file(), f"{golden} missing: run with CLEARANCE_REGENERATE_GOLDEN=1"
    assert text == golden.read_text(encoding="utf-8"), (
        f"{fmt} differs from {golden.name}; if intended, regenerate (see module docstring)")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.ids: list[str] = []
        self.loads: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if "id" in attributes:
            self.ids.append(attributes["id"] or "")
        for key in ("src", "href", "data", "poster", "srcset", "action"):
            if attributes.get(key):
                self.loads.append((tag, key, attributes[key] or ""))

    def handle_data(self, data):
        self.parts.append(data)


def test_md_json_and_html_are_one_model(world):
    model = json.loads(report(world, "set", "--format", "json"))
    md = report(world, "set", "--format", "md")
    page = _Text()
    page.feed(report(world, "set", "--format", "html"))
    text = re.sub(r"\s+", " ", " ".join(page.parts))
    # the same sections
    for section in ("Overview", "Totals", "Kept rows", "Build-stage exclusions",
                    "Crawl-stage rejections", "Sources", "Sources: consent and age verification",
                    "Signal conflicts", "Changes since v1", "Withheld"):
        assert f"## {section}" in md or f"# {section}" in md, section
        assert section in text, section
    assert {"overview", "charts", "sources", "consent", "kept", "build-exclusions",
            "crawl-rejections", "conflicts", "changes", "withheld"} <= set(page.ids)
    # the same numbers
    assert model["overview"]["rows"] == 2 and model["totals"]["candidates"] == 6
    assert model["changes"] == {"since": 1, "rows_then": 5, "rows_now": 2, "added": 0,
                                "removed": 3, "removed_by_reason": {
                                    "not_in_inputs": 1, "revoked": 1, "takedown": 1}}
    assert "Rows then: 5; now: 2; added: 0; removed: 3" in md
    for line in ("| not_in_inputs | 1 |", "| revoked | 1 |", "| takedown | 1 |"):
        assert line in md
    assert model["overview"]["withheld"] == 2
    assert "Blocklist hits withheld by the crawl: 2." in md and "withheld by the crawl: 2." in text
    for row in model["source_table"]:
        assert f"| {row['source_id']} | {row['name']} | {row['rows']} |" in md
        assert row["source_id"] in text and row["consent_id"] in text
    assert [r["rows"] for r in model["source_table"]] == [1, 1, 0]
    # html: self-contained, nothing to load
    assert page.loads == [], page.loads
    assert "default-src 'none'" in report(world, "set", "--format", "html")


def test_html_escapes_what_it_shows(world, tmp_path):
    model = build_report(world.data, "set")
    model["sources"]["aurora"]["name"] = "<script>alert(1)</script> & co"
    model["source_table"][0]["name"] = "<img src=x onerror=alert(1)>"
    from pipeline.reports.html import render_html

    page = render_html(model)
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page


def test_since_counts_per_reason_in_every_format(world):
    since = build_report(world.data, "set@v2", 1)["changes"]
    assert since["since"] == 1 and since["removed"] == 3
    # the default is the previous version: the same counts as manifest.json
    manifest = json.loads((world.data / "manifests/set/v2/manifest.json").read_text())
    assert since["removed_by_reason"] == manifest["removed_since_previous"]
    assert build_report(world.data, "set@v1")["changes"] is None
    for fmt in FORMATS:
        text = report(world, "set", "--format", fmt, "--since", "v1")
        assert "takedown" in text and "revoked" in text, fmt
    croissant = json.loads(report(world, "set", "--format", "croissant", "--since", "v1"))
    counts = {c["clr:reason"]: c["clr:count"]
              for c in croissant["clr:changesSince"]["clr:removedByReason"]}
    assert counts == {"not_in_inputs": 1, "revoked": 1, "takedown": 1}


def test_since_computed_when_not_the_previous_version(world, tmp_path):
    """v3 from the same input as v2: since v1 is computed from the version folders, and
    agrees with v2's stored counts."""
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(world.data, copy)
    v3 = copy / "manifests/set/v3"
    shutil.copytree(copy / "manifests/set/v2", v3)
    manifest = json.loads((v3 / "manifest.json").read_text())
    manifest.update(version=3, previous_version=2, removed_since_previous={})
    (v3 / "manifest.json").write_text(json.dumps(manifest))
    changes = build_report(copy, "set@v3", 1)["changes"]
    assert changes["removed_by_reason"] == {"not_in_inputs": 1, "revoked": 1, "takedown": 1}
    assert changes["added"] == 0 and changes["rows_then"] == 5
    assert build_report(copy, "set@v3", 2)["changes"]["removed"] == 0


def test_since_refuses_a_version_that_is_not_earlier(world):
    with pytest.raises(SinceError, match="must name an earlier version than v2"):
        build_report(world.data, "set@v2", 2)
    out = report(world, "set@v1", "--format", "md", "--since", "v1", ok=2)
    assert "must name an earlier version than v1" in out
    assert "expected a version such as v1" in report(world, "set", "--format", "md", "--since",
                                                      "last", ok=2)


def test_eu_summary_fills_what_a_dataset_builder_knows(world):
    summary = json.loads(report(world, "set", "--format", "eu-summary-json"))
    md = report(world, "set", "--format", "eu-summary")
    general = summary["section_1_general_information"]
    assert general["1_1_provider"]["name"] == PLACEHOLDER
    assert general["1_2_model"]["versioned_model_names"] == PLACEHOLDER
    image = general["1_3_modalities"][0]
    assert image == {"modality": "Image", "included": True, "items": 2,
                     "size_range": "Less than 1 million images"}
    assert general["latest_date_of_data_acquisition"] == "2026-01-02"
    crawled = summary["section_2_3_crawled_data"]
    assert crawled["crawler_name"] == "ClearanceBot"
    assert crawled["user_agent"] == "ClearanceBot/0.1 (+https://example.org/clearance-bot)"
    assert crawled["collection_period"] == {"from": "2026-01-02", "to": "2026-01-02"}
    # top 10% of the domains by content size, at least one: birch's row is the bigger
    assert crawled["top_domain_names"]["domains_crawled"] == 2
    assert [d["domain"] for d in crawled["top_domain_names"]["domains"]] == ["birch.example"]
    protocols = {p["protocol"].split(" ")[0]: p for p in
                 summary["section_3_1_opt_outs"]["protocols"]}
    assert all(p["honoured"] for p in protocols.values())
    assert protocols["TDMRep"]["items_refused"] == 1
    assert protocols["X-Robots-Tag"]["items_refused"] == 1
    illegal = summary["section_3_2_illegal_content"]
    assert illegal["withheld"] == 2
    assert illegal["hash_lists"] == [{"id": "partner-sha256", "kind": "sha256",
                                      "version_sha256": "ab" * 32}]
    # the Markdown says the same
    for needle in ("## 1. General information", "### 2.3 Data crawled and scraped",
                   "### 3.1 Respect of reservation of rights", "### 3.2 Removal of illegal",
                   "| birch.example |", "| partner-sha256 | sha256 |",
                   "Items withheld (count only): 2", PLACEHOLDER,
                   "User-Agent: `ClearanceBot/0.1 (+https://example.org/clearance-bot)`"):
        assert needle in md, needle


def test_eu_summary_without_configs_marks_what_it_cannot_know(world):
    summary = json.loads(render_report(world.data, "set", "eu-summary-json"))
    crawled = summary["section_2_3_crawled_data"]
    assert crawled["user_agent"].startswith("[not recorded")
    assert summary["section_3_2_illegal_content"]["hash_lists"][0]["kind"].startswith(
        "[not recorded")


def test_no_format_names_a_withheld_taken_down_or_removed_item(world):
    items = world.items
    gone = [items[k] for k in ("a2", "c1", "b3")]  # taken down, revoked, not in inputs
    needles = [WITHHELD_URL, WITHHELD_SHA256, BLOCKLIST_LINE, TAKEN_DOWN,
               TAKEN_DOWN.split("://")[1]]
    for item in gone:
        needles += [item["url"], item["row_id"], item["sha256"], item["md5"]]
    haystack = ""
    for fmt in FORMATS:
        for args in ((), ("--since", "v1")):
            haystack += report(world, "set@v2", "--format", fmt, *args)
    version = world.data / "manifests/set/v2"
    haystack += (version / "croissant.json").read_text() + (version / "manifest.json").read_text()
    haystack += json.dumps(pq.read_table(version / "data").to_pylist(), default=str)
    kept = items["a1"]
    assert kept["url"] in haystack and kept["sha256"] in haystack  # not a vacuous grep
    for needle in needles:
        assert needle not in haystack, needle
    assert "Ana Ruiz" in haystack  # a1's creator stays; the takedown's requester is not named
