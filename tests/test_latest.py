"""Only a URL's latest fetch stays in a build: superseded fetches, gone URLs, later opt-outs."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.build.builder import build_manifest
from pipeline.runs import reasons
from tests.helpers_config import source_doc, write_config
from tests.helpers_runs import FETCHED_AT, make_item, make_rejection, write_run

GALLERY = "https://aurora.example/gallery/"
R1, R2, R3 = "20260102T030405Z-aaaaaa", "20260109T030405Z-bbbbbb", "20260116T030405Z-cccccc"


@pytest.fixture
def setup(tmp_path: Path):
    config = write_config(tmp_path / "configs", [source_doc("aurora")])
    return config, config.sources["aurora"], tmp_path / "data"


def later(days: int):
    return FETCHED_AT + timedelta(days=days)


def gone(url: str, days: int, status: int = 404) -> dict:
    row = make_rejection("aurora", url, reasons.GONE, stage="fetch", detail=f"HTTP {status}")
    return {**row, "at": later(days)}


def build(config, data_dir: Path):
    result = build_manifest(config, data_dir, "m")
    kept = pq.read_table(result.path / "data").to_pylist()
    excluded = pq.read_table(result.path / "audit" / "exclusions.parquet").to_pylist()
    return result, kept, excluded


def test_a_changed_image_keeps_only_its_new_row(setup):
    config, source, data = setup
    url = GALLERY + "a.jpg"
    write_run(data, R1, [make_item(source, url, content=b"old")])
    write_run(data, R2, [make_item(source, url, content=b"new", fetched_at=later(7))])
    result, kept, excluded = build(config, data)
    assert [(r["url"], r["run_id"]) for r in kept] == [(url, R2)]
    (row,) = excluded
    assert row["reason"] == reasons.SUPERSEDED and row["run_id"] == R1
    assert row["detail"] == f"fetched again at 2026-01-09T03:04:05Z (run {R2})"
    assert result.counts["excluded_by_reason"] == {"superseded": 1}


def test_a_refetch_of_unchanged_content_keeps_the_new_fetch_time(setup):
    config, source, data = setup
    url = GALLERY + "a.jpg"
    write_run(data, R1, [make_item(source, url)])
    write_run(data, R2, [make_item(source, url, fetched_at=later(7))])
    _, kept, excluded = build(config, data)
    assert [(r["run_id"], r["fetched_at"]) for r in kept] == [(R2, later(7))]
    assert [r["reason"] for r in excluded] == [reasons.SUPERSEDED]


@pytest.mark.parametrize("status", [404, 410])
def test_a_url_whose_latest_fetch_is_gone_leaves_the_build(setup, status):
    config, source, data = setup
    url, other = GALLERY + "a.jpg", GALLERY + "b.jpg"
    write_run(data, R1, [make_item(source, url), make_item(source, other)])
    write_run(data, R2, [], [gone(url, 7, status)])
    _, kept, excluded = build(config, data)
    assert [r["url"] for r in kept] == [other]
    (row,) = excluded
    assert row["reason"] == reasons.GONE
    assert row["detail"] == (
        f"a later run's fetch of the URL, at 2026-01-09T03:04:05Z, said HTTP {status}"
    )


def test_a_url_back_after_gone_is_kept(setup):
    config, source, data = setup
    url = GALLERY + "a.jpg"
    write_run(data, R1, [make_item(source, url)])
    write_run(data, R2, [], [gone(url, 7)])
    write_run(data, R3, [make_item(source, url, fetched_at=later(14))])
    _, kept, excluded = build(config, data)
    assert [r["run_id"] for r in kept] == [R3]
    assert [r["reason"] for r in excluded] == [reasons.SUPERSEDED]


def test_an_opt_out_in_a_later_run_ends_the_earlier_row(setup):
    config, source, data = setup
    url = GALLERY + "a.jpg"
    write_run(data, R1, [make_item(source, url)])
    noai = {**make_rejection("aurora", url, reasons.X_ROBOTS_NOAI, detail="X-Robots-Tag: noai"),
            "at": later(7)}
    write_run(data, R2, [], [noai])
    _, kept, excluded = build(config, data)
    assert kept == []
    assert [(r["reason"], r["run_id"]) for r in excluded] == [(reasons.X_ROBOTS_NOAI, R1)]


def test_a_refusal_in_the_same_run_as_the_fetch_decides_nothing(setup):
    """One page's noai meta refused the image, another page's link fetched it: the crawl kept it."""
    config, source, data = setup
    url = GALLERY + "a.jpg"
    noai = {**make_rejection("aurora", url, reasons.META_NOAI), "at": later(1)}
    write_run(data, R1, [make_item(source, url)], [noai])
    _, kept, excluded = build(config, data)
    assert [r["url"] for r in kept] == [url] and excluded == []


def test_transient_failures_and_other_sources_decide_nothing(setup):
    config, source, data = setup
    url = GALLERY + "a.jpg"
    write_run(data, R1, [make_item(source, url)])
    failed = {**make_rejection("aurora", url, reasons.FETCH_FAILED, stage="fetch"), "at": later(7)}
    elsewhere = {**gone(url, 7), "source_id": "someone-else"}
    write_run(data, R2, [], [failed, elsewhere])
    _, kept, excluded = build(config, data)
    assert [r["url"] for r in kept] == [url] and excluded == []


def test_removed_since_previous_counts_gone_and_superseded(setup):
    config, source, data = setup
    a, b = GALLERY + "a.jpg", GALLERY + "b.jpg"
    write_run(data, R1, [make_item(source, a), make_item(source, b)])
    build_manifest(config, data, "m")
    write_run(data, R2, [make_item(source, a, content=b"changed", fetched_at=later(7))],
              [gone(b, 7)])
    result = build_manifest(config, data, "m")
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest["removed_since_previous"] == {"gone": 1, "superseded": 1}
