"""pipeline.build.builder: reproducible, atomic, conserving manifest versions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from helpers_config import settings_doc, source_doc, write_config, write_source
from helpers_runs import FETCHED_AT, make_item, write_run

from pipeline import SCHEMA_VERSION
from pipeline.build import builder as build
from pipeline.build.builder import (
    BuildError,
    build_manifest,
    latest_version,
    resolve_manifest,
    sha256_file,
)
from pipeline.registry.config import Config, load_config
from pipeline.runs.schema import EXCLUSIONS_SCHEMA, ITEMS_SCHEMA


def _rows(version_dir: Path) -> list[dict]:
    return ds.dataset(version_dir / "data", format="parquet").to_table().to_pylist()


def _exclusions(version_dir: Path) -> list[dict]:
    return pq.read_table(version_dir / "audit" / "exclusions.parquet").to_pylist()


def _manifest(version_dir: Path) -> dict:
    return json.loads((version_dir / "manifest.json").read_text())


@pytest.fixture
def world(tmp_path: Path) -> tuple[Config, Path]:
    """Two sources, two runs: duplicates, a non-allowed and an invalid licence."""
    config = write_config(tmp_path / "configs", [source_doc("aurora"), source_doc("birch")])
    a, b = config.sources["aurora"], config.sources["birch"]
    data = tmp_path / "data"
    write_run(
        data,
        "20260101T000000Z-aaaaaa",
        [
            make_item(a, "https://aurora.example/gallery/2.jpg"),
            make_item(a, "https://aurora.example/gallery/1.jpg", licence="CC0-1.0"),
            make_item(b, "https://birch.example/gallery/x.jpg", content=b"shared"),
            make_item(a, "https://aurora.example/gallery/nc.jpg", licence="CC-BY-NC-4.0"),
        ],
    )
    write_run(
        data,
        "20260102T000000Z-bbbbbb",
        [
            make_item(a, "https://aurora.example/gallery/z.jpg", content=b"shared"),
            make_item(b, "https://birch.example/gallery/y.jpg", licence="Not-A-Licence"),
            make_item(b, "https://birch.example/gallery/a.jpg", licence_source="xmp"),
        ],
    )
    return config, data


def test_build_keeps_admissible_rows_in_deterministic_order(world):
    config, data = world
    result = build_manifest(config, data, "demo")
    assert result.version == 1
    assert result.path == data / "manifests" / "demo" / "v1"
    rows = _rows(result.path)
    assert [(r["source_id"], r["url"]) for r in rows] == [
        ("aurora", "https://aurora.example/gallery/1.jpg"),
        ("aurora", "https://aurora.example/gallery/2.jpg"),
        ("aurora", "https://aurora.example/gallery/z.jpg"),
        ("birch", "https://birch.example/gallery/a.jpg"),
    ]
    assert pq.read_schema(result.path / "data" / "part-00000.parquet").equals(ITEMS_SCHEMA)
    counts = result.counts
    assert counts["candidates"] == 7
    assert counts["kept"] == 4 and counts["excluded"] == 3
    assert counts["excluded_by_reason"] == {"duplicate": 1, "licence_not_allowed": 2}
    assert counts["kept_by_source"] == {"aurora": 3, "birch": 1}
    assert counts["kept_by_licence"] == {"CC-BY-4.0": 3, "CC0-1.0": 1}
    assert counts["kept_by_licence_source"] == {"source-default": 3, "xmp": 1}


def test_licence_policy_reasons_and_details(world):
    config, data = world
    excluded = _exclusions(build_manifest(config, data, "demo").path)
    by_url = {e["url"]: e for e in excluded}
    nc = by_url["https://aurora.example/gallery/nc.jpg"]
    assert nc["reason"] == "licence_not_allowed"
    assert "CC-BY-NC-4.0 is not allowed" in nc["detail"]
    invalid = by_url["https://birch.example/gallery/y.jpg"]
    assert invalid["reason"] == "licence_not_allowed"
    assert invalid["detail"].startswith("invalid SPDX expression")
    assert "Not-A-Licence" in invalid["detail"]
    assert all(e["stage"] == "build" for e in excluded)


def test_licence_expression_with_an_allowed_branch_is_kept(tmp_path):
    config = write_config(tmp_path / "c", [source_doc("aurora")])
    a = config.sources["aurora"]
    write_run(
        tmp_path / "d",
        "r1",
        [
            make_item(
                a, "https://aurora.example/gallery/or.jpg", licence="CC-BY-NC-4.0 OR CC0-1.0"
            ),
            make_item(
                a, "https://aurora.example/gallery/and.jpg", licence="CC-BY-NC-4.0 AND CC0-1.0"
            ),
        ],
    )
    result = build_manifest(config, tmp_path / "d", "m")
    assert [r["url"] for r in _rows(result.path)] == ["https://aurora.example/gallery/or.jpg"]
    assert [e["url"] for e in _exclusions(result.path)] == [
        "https://aurora.example/gallery/and.jpg"
    ]


def test_duplicates_keep_smallest_source_and_url(tmp_path):
    config = write_config(tmp_path / "c", [source_doc("aurora"), source_doc("birch")])
    a, b = config.sources["aurora"], config.sources["birch"]
    same = b"same bytes"
    write_run(
        tmp_path / "d",
        "r1",
        [
            make_item(b, "https://birch.example/gallery/a.jpg", content=same),
            make_item(a, "https://aurora.example/gallery/b.jpg", content=same),
            make_item(a, "https://aurora.example/gallery/a.jpg", content=same),
        ],
    )
    # The same URL again in a later run: the earlier run's row wins the tie.
    write_run(
        tmp_path / "d", "r2", [make_item(a, "https://aurora.example/gallery/a.jpg", content=same)]
    )
    result = build_manifest(config, tmp_path / "d", "m")
    kept = _rows(result.path)
    assert [(r["source_id"], r["url"], r["run_id"]) for r in kept] == [
        ("aurora", "https://aurora.example/gallery/a.jpg", "r1")
    ]
    excluded = _exclusions(result.path)
    assert {e["reason"] for e in excluded} == {"duplicate"}
    assert sorted((e["url"], e["run_id"]) for e in excluded) == [
        ("https://aurora.example/gallery/a.jpg", "r2"),
        ("https://aurora.example/gallery/b.jpg", "r1"),
        ("https://birch.example/gallery/a.jpg", "r1"),
    ]
    kept_id = kept[0]["row_id"]
    for e in excluded:
        assert f"kept row_id {kept_id}" in e["detail"]
        assert "https://aurora.example/gallery/a.jpg" in e["detail"]


def test_duplicate_of_an_excluded_row_does_not_displace_an_admissible_one(tmp_path):
    root = tmp_path / "c"
    config = write_config(root, [source_doc("aurora"), source_doc("birch")])
    a, b = config.sources["aurora"], config.sources["birch"]
    write_run(
        tmp_path / "d",
        "r1",
        [
            make_item(a, "https://aurora.example/gallery/a.jpg", content=b"x"),
            make_item(b, "https://birch.example/gallery/a.jpg", content=b"x"),
        ],
    )
    write_source(root, source_doc("aurora", status="revoked"))
    result = build_manifest(load_config(root), tmp_path / "d", "m")
    assert [r["source_id"] for r in _rows(result.path)] == ["birch"]
    assert [(e["source_id"], e["reason"]) for e in _exclusions(result.path)] == [
        ("aurora", "revoked")
    ]


def test_consent_revoked_since_crawl_drops_out_with_reason_revoked(world):
    config, data = world
    v1 = build_manifest(config, data, "demo")
    assert v1.counts["kept_by_source"]["aurora"] == 3
    write_source(config.root, source_doc("aurora", status="revoked"))
    v2 = build_manifest(load_config(config.root), data, "demo")
    assert v2.version == 2
    assert {r["source_id"] for r in _rows(v2.path)} == {"birch"}
    revoked = [e for e in _exclusions(v2.path) if e["reason"] == "revoked"]
    # Every aurora candidate (including the licence and duplicate cases) is now out for consent.
    assert sorted(e["url"] for e in revoked) == sorted(
        [
            "https://aurora.example/gallery/1.jpg",
            "https://aurora.example/gallery/2.jpg",
            "https://aurora.example/gallery/nc.jpg",
            "https://aurora.example/gallery/z.jpg",
        ]
    )
    assert all("C-aurora is revoked" in e["detail"] for e in revoked)
    # The shared-content row of birch is no longer a duplicate of a kept aurora row.
    assert "https://birch.example/gallery/x.jpg" in {r["url"] for r in _rows(v2.path)}
    info = _manifest(v2.path)["sources"]["aurora"]
    assert info["consent"]["status"] == "revoked"
    assert info["eligibility"] == {
        "eligible": False,
        "reason": "revoked",
        "message": "consent C-aurora is revoked",
    }
    # The earlier version is untouched.
    assert len(_rows(v1.path)) == 4


def test_expired_consent_at_build_time_is_revoked(world):
    config, data = world
    later = date.today() + timedelta(days=400)
    result = build_manifest(config, data, "demo", today=later)
    assert result.counts["kept"] == 0
    assert result.counts["excluded_by_reason"] == {"revoked": 7}
    assert all("expired on" in e["detail"] for e in _exclusions(result.path))


def test_lapsed_age_verification_at_build_time_is_revoked(tmp_path):
    root = tmp_path / "c"
    config = write_config(root, [source_doc("aurora")])
    write_run(
        tmp_path / "d",
        "r1",
        [make_item(config.sources["aurora"], "https://aurora.example/gallery/1.jpg")],
    )
    write_source(root, source_doc("aurora", age_verified=False))
    result = build_manifest(load_config(root), tmp_path / "d", "m")
    (excluded,) = _exclusions(result.path)
    assert excluded["reason"] == "revoked"
    assert excluded["detail"] == "no age verification record"
    eligibility = _manifest(result.path)["sources"]["aurora"]["eligibility"]
    assert eligibility["reason"] == "age_unverified"  # the crawl's code, kept beside it


def test_suspended_sources_are_revoked_and_removed_ones_consent_inactive(world):
    config, data = world
    (config.root / "sources" / "birch.yaml").unlink()
    result = build_manifest(load_config(config.root), data, "demo", suspended={"aurora"})
    assert result.counts["kept"] == 0
    details = {e["source_id"]: e["detail"] for e in _exclusions(result.path)}
    assert "suspended" in details["aurora"]
    assert "not in the current config" in details["birch"]
    reason_of = {e["source_id"]: e["reason"] for e in _exclusions(result.path)}
    assert reason_of == {"aurora": "revoked", "birch": "consent_inactive"}
    sources = _manifest(result.path)["sources"]
    assert sources["birch"]["in_config"] is False
    assert sources["aurora"]["eligibility"]["reason"] == "consent_inactive"


def test_changed_consent_record_is_kept_when_eligible_and_recorded(tmp_path):
    root = tmp_path / "c"
    config = write_config(root, [source_doc("aurora", consent_id="C-old")])
    old = config.sources["aurora"]
    write_run(tmp_path / "d", "r1", [make_item(old, "https://aurora.example/gallery/1.jpg")])
    write_source(root, source_doc("aurora", consent_id="C-new"))
    new_config = load_config(root)
    result = build_manifest(new_config, tmp_path / "d", "m")
    (row,) = _rows(result.path)
    assert row["consent_id"] == "C-old"  # rows keep the evidence as it stood
    (changed,) = _manifest(result.path)["consent_changed"]
    assert changed["source_id"] == "aurora"
    assert changed["rows"] == 1
    assert changed["current"]["consent_id"] == "C-new"
    assert changed["crawled_under"] == [
        {"consent_id": "C-old", "consent_sha256": old.consent_sha256, "rows": 1}
    ]


def test_conservation_every_candidate_accounted_for_exactly_once(world):
    config, data = world
    result = build_manifest(config, data, "demo")
    kept = {(r["run_id"], r["url"]) for r in _rows(result.path)}
    excluded = {(e["run_id"], e["url"]) for e in _exclusions(result.path)}
    candidates = set()
    for run in (data / "runs").iterdir():
        for r in pq.read_table(run / "items.parquet").to_pylist():
            candidates.add((r["run_id"], r["url"]))
    assert kept.isdisjoint(excluded)
    assert kept | excluded == candidates
    counts = _manifest(result.path)["counts"]
    assert counts["candidates"] == len(candidates) == counts["kept"] + counts["excluded"]
    assert sum(counts["excluded_by_reason"].values()) == counts["excluded"]


def test_conservation_failure_commits_nothing(world, monkeypatch):
    config, data = world

    class Leaky(build.BuildFilter):
        name = "leaky"
        columns = ("url",)

        def __call__(self, table):  # loses rows without recording them
            kept, excluded = super().__call__(table)
            return kept.slice(1), excluded

        def filter(self, row):
            return True

    monkeypatch.setattr(build, "default_filters", lambda *args, **kwargs: [Leaky()])
    with pytest.raises(BuildError, match="conservation check failed"):
        build_manifest(config, data, "demo")
    assert latest_version(data, "demo") is None
    assert not any((data / "manifests" / "demo").glob("v*"))


def test_reproducible_bytes_across_builds_and_data_dir_paths(world, tmp_path):
    config, data = world
    first = build_manifest(config, data, "demo", part_rows=2)
    second = build_manifest(config, data, "demo", part_rows=2)
    other = tmp_path / "elsewhere" / "nested" / "data"
    shutil.copytree(data / "runs", other / "runs")
    third = build_manifest(config, other, "renamed-too", part_rows=2)
    parts = sorted(p.name for p in (first.path / "data").iterdir())
    assert parts == ["part-00000.parquet", "part-00001.parquet"]
    for version in (second, third):
        assert sorted(p.name for p in (version.path / "data").iterdir()) == parts
        for part in parts:
            assert (version.path / "data" / part).read_bytes() == (
                first.path / "data" / part
            ).read_bytes()
        assert (version.path / "audit" / "exclusions.parquet").read_bytes() == (
            first.path / "audit" / "exclusions.parquet"
        ).read_bytes()
    metadata = pq.read_metadata(first.path / "data" / parts[0]).metadata or {}
    assert b"pandas" not in metadata


def test_parts_are_split_and_readers_see_exactly_the_rows(world):
    config, data = world
    result = build_manifest(config, data, "demo", part_rows=3)
    files = sorted(p.name for p in (result.path / "data").iterdir())
    assert files == ["part-00000.parquet", "part-00001.parquet"]
    assert [pq.read_metadata(result.path / "data" / f).num_rows for f in files] == [3, 1]
    glob = (result.path / "data" / "*.parquet").as_posix()
    assert duckdb.sql(f"select count(*) from '{glob}'").fetchall() == [(4,)]
    urls = duckdb.sql(f"select url from '{glob}' order by url").fetchall()
    assert [u for (u,) in urls] == sorted(r["url"] for r in _rows(result.path))
    assert ds.dataset(result.path / "data", format="parquet").count_rows() == 4
    # The published folder holds the part files and nothing else.
    assert {p.name for p in result.path.iterdir()} == {"data", "audit", "manifest.json",
                                                       "croissant.json"}


def test_exclusions_file_schema_order_and_timestamps(world):
    config, data = world
    path = build_manifest(config, data, "demo").path / "audit" / "exclusions.parquet"
    assert pq.read_schema(path).equals(EXCLUSIONS_SCHEMA)
    excluded = _exclusions(path.parent.parent)
    keys = [(e["reason"], e["url"], e["row_id"]) for e in excluded]
    assert keys == sorted(keys)
    assert all(e["at"] == FETCHED_AT for e in excluded)  # the row's fetch time, not wall clock


def test_manifest_json_records_inputs_files_and_sources(world):
    config, data = world
    result = build_manifest(config, data, "demo")
    doc = _manifest(result.path)
    assert doc["name"] == "demo" and doc["version"] == 1
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["config_sha256"] == config.sha256
    assert [i["run_id"] for i in doc["inputs"]] == [
        "20260101T000000Z-aaaaaa",
        "20260102T000000Z-bbbbbb",
    ]
    for record in doc["inputs"]:
        run = data / "runs" / record["run_id"]
        assert record["items_sha256"] == sha256_file(run / "items.parquet")
        assert record["rejections_sha256"] == sha256_file(run / "rejections.parquet")
    assert set(doc["files"]) == {
        "data/part-00000.parquet",
        "audit/exclusions.parquet",
        "croissant.json",  # written before the checksums, so they cover it
    }
    for rel, info in doc["files"].items():
        assert info["sha256"] == sha256_file(result.path / rel)
        assert info["bytes"] == (result.path / rel).stat().st_size
    aurora = doc["sources"]["aurora"]
    assert aurora["consent"] == config.sources["aurora"].consent.model_dump(mode="json")
    assert aurora["age_verification"]["id"] == "AV-aurora"
    assert aurora["eligibility"]["eligible"] is True
    assert [f["name"] for f in doc["filters"]] == [
        "consent", "latest", "takedown", "optouts", "licence", "dedupe"]
    assert doc["filters"][4] == {
        "name": "licence",
        "total": 7,
        "kept": 5,
        "dropped": {"licence_not_allowed": 2},
    }


def test_zero_runs_builds_an_empty_version(tmp_path):
    config = write_config(tmp_path / "c", [source_doc("aurora")])
    result = build_manifest(config, tmp_path / "data", "empty")
    assert result.counts["runs"] == 0
    assert result.counts["candidates"] == result.counts["kept"] == 0
    assert "no completed runs" in _manifest(result.path)["notes"][0]
    glob = (result.path / "data" / "*.parquet").as_posix()
    assert duckdb.sql(f"select count(*) from '{glob}'").fetchall() == [(0,)]


def test_bad_names_and_unknown_runs_are_refused(world):
    config, data = world
    for bad in ("", "../escape", ".hidden", "a/b", "with space"):
        with pytest.raises(ValueError, match="invalid manifest name"):
            build_manifest(config, data, bad)
    with pytest.raises(FileNotFoundError, match="no-such-run"):
        build_manifest(config, data, "demo", run_ids=["no-such-run"])
    assert not (data / "manifests").exists()


def test_selected_runs_only(world):
    config, data = world
    result = build_manifest(config, data, "demo", run_ids=["20260102T000000Z-bbbbbb"])
    assert result.counts["candidates"] == 3
    assert [i["run_id"] for i in _manifest(result.path)["inputs"]] == ["20260102T000000Z-bbbbbb"]


def test_latest_version_and_resolve_manifest(world):
    config, data = world
    assert latest_version(data, "demo") is None
    with pytest.raises(FileNotFoundError, match="no manifest named 'demo'"):
        resolve_manifest(data, "demo")
    build_manifest(config, data, "demo")
    build_manifest(config, data, "demo")
    assert latest_version(data, "demo") == 2
    assert resolve_manifest(data, "demo") == data / "manifests" / "demo" / "v2"
    assert resolve_manifest(data, "demo@v1") == data / "manifests" / "demo" / "v1"
    with pytest.raises(FileNotFoundError, match=r"demo@v9 not found \(latest is v2\)"):
        resolve_manifest(data, "demo@v9")
    for bad in ("demo@2", "demo@", "@v1", "../x@v1"):
        with pytest.raises(ValueError):
            resolve_manifest(data, bad)


def test_concurrent_builds_get_distinct_whole_versions(world):
    config, data = world
    results: list[int] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            results.append(build_manifest(config, data, "demo").version)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(results) == [1, 2, 3]
    for v in (1, 2, 3):
        assert len(_rows(data / "manifests" / "demo" / f"v{v}")) == 4


_CRASHING_BUILD = """
import sys
from pathlib import Path
from pipeline.build.builder import build_manifest
from pipeline.registry.config import load_config
build_manifest(load_config(sys.argv[1]), Path(sys.argv[2]), "demo")
"""


def test_crash_after_parts_leaves_earlier_versions_and_no_partial_version(world):
    config, data = world
    v1 = build_manifest(config, data, "demo")
    v1_files = _manifest(v1.path)["files"]
    env = {**os.environ, "CLEARANCE_TEST_CRASH_BUILD": "after_parts"}
    proc = subprocess.run(
        [sys.executable, "-c", _CRASHING_BUILD, str(config.root), str(data)],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr.decode()
    root = data / "manifests" / "demo"
    leftovers = [p.name for p in root.iterdir() if p.name.startswith(".tmp-")]
    assert len(leftovers) == 1 and leftovers[0].startswith(".tmp-v2-")
    assert (root / leftovers[0] / "data" / "part-00000.parquet").is_file()  # it did crash late
    assert not (root / "v2").exists()
    assert latest_version(data, "demo") == 1
    assert resolve_manifest(data, "demo") == v1.path
    for rel, info in v1_files.items():
        assert sha256_file(v1.path / rel) == info["sha256"]

    v2 = build_manifest(config, data, "demo")
    assert v2.version == 2
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp-")]
    assert (v2.path / "data" / "part-00000.parquet").read_bytes() == (
        v1.path / "data" / "part-00000.parquet"
    ).read_bytes()


def test_manifest_states_the_licence_policy_in_full_when_a_preset_is_used(tmp_path):
    """A preset's ids are written out: the manifest must not under-state what was allowed."""
    settings = settings_doc()
    settings["licences"] = {"allow": ["CC0-1.0"], "preset": "research"}
    config = write_config(tmp_path / "c", [source_doc("aurora")], settings)
    a = config.sources["aurora"]
    write_run(tmp_path / "d", "r1", [
        make_item(a, "https://aurora.example/gallery/nc.jpg", licence="CC-BY-NC-SA-4.0"),
    ])
    result = build_manifest(config, tmp_path / "d", "m")
    policy = _manifest(result.path)["policy"]
    assert policy["licences_allow"] == ["CC0-1.0"]
    assert policy["licences_preset"] == ["research"]
    assert "CC-BY-NC-SA-4.0" in policy["licences_effective"]
    assert "CC-BY-4.0" in policy["licences_effective"]
    assert [r["url"] for r in _rows(result.path)] == ["https://aurora.example/gallery/nc.jpg"]
