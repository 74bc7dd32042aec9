"""`clearance screen`: existing runs and manifests re-screened against updated lists."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
from helpers_config import settings_doc, source_doc, write_config
from helpers_runs import make_item, make_rejection, write_run

from pipeline.build.builder import build_manifest, sha256_file
from pipeline.registry.state import State

RUN = "20260102T030405Z-aaaaaa"
BASE_PDQ = "f" * 16 + "0" * 16 + "a5" * 8 + "3c" * 8


def flip(pdq: str, bits: int) -> str:
    """``pdq`` with its first ``bits`` bits inverted."""
    value = int(pdq, 16) ^ (((1 << bits) - 1) << (256 - bits))
    return f"{value:064x}"


def clearance(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "--config", str(tmp / "configs"),
         "--data", str(tmp / "data"), *args],
        capture_output=True, text=True, timeout=120, check=False,
    )


def setup(tmp: Path, lists: list[dict] | None = None) -> dict:
    config = write_config(tmp / "configs", [source_doc("aurora"), source_doc("boreal")])
    aurora, boreal = config.sources["aurora"], config.sources["boreal"]
    bad = make_item(aurora, "https://aurora.example/gallery/bad.jpg", pdq=flip(BASE_PDQ, 40))
    near = make_item(aurora, "https://aurora.example/gallery/near.jpg", pdq=flip(BASE_PDQ, 50))
    far = make_item(aurora, "https://aurora.example/gallery/far.jpg", pdq=flip(BASE_PDQ, 128))
    other = make_item(boreal, "https://boreal.example/gallery/o.jpg", pdq=flip(BASE_PDQ, 90))
    dup = make_item(boreal, "https://boreal.example/gallery/dup.jpg",
                    content=b"https://aurora.example/gallery/bad.jpg", pdq=flip(BASE_PDQ, 40))
    rejected = make_rejection("aurora", bad["url"], "x_robots_noai")
    write_run(tmp / "data", RUN, [bad, near, far, other, dup], [rejected])
    built = build_manifest(config, tmp / "data", "my-set", today=None)
    assert built.counts["kept"] == 4 and built.counts["excluded_by_reason"] == {"duplicate": 1}
    return {"config": config, "bad": bad, "near": near, "far": far, "other": other, "dup": dup,
            "manifest": built.path}


def add_lists(tmp: Path, bad_sha256: str) -> None:
    folder = tmp / "configs" / "blocklists"
    folder.mkdir(exist_ok=True)
    (folder / "sha.txt").write_text(bad_sha256 + "\n")
    (folder / "sha.txt").chmod(0o600)
    (folder / "pdq.txt").write_text(BASE_PDQ + "\n")
    (folder / "pdq.txt").chmod(0o600)
    doc = settings_doc()
    doc["blocklists"] = [{"id": "partner-sha256", "kind": "sha256", "path": "blocklists/sha.txt"},
                         {"id": "partner-pdq", "kind": "pdq", "path": "blocklists/pdq.txt",
                          "threshold": 31}]
    import yaml

    (tmp / "configs" / "clearance.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def test_screen_withdraws_hits_and_neighbours_from_runs_and_manifests(tmp_path: Path):
    rows = setup(tmp_path)
    # A list update: `bad` by sha256 (it is also `dup`'s content); `near` is 10 bits from bad,
    # `other` 50 and `far` 88; the PDQ list entry is 40 bits from bad (no PDQ hit).
    add_lists(tmp_path, rows["bad"]["sha256"])
    proc = clearance(tmp_path, "screen", "--manifest", "my-set", "--runs", RUN, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["runs"] == [RUN] and result["manifests"] == ["my-set@v1"]
    assert result["suspended"] == ["aurora", "boreal"]
    # run: bad + dup (same content) hit; near is bad's PDQ neighbour; far and other stay
    items = pq.read_table(tmp_path / "data" / "runs" / RUN / "items.parquet").to_pylist()
    assert sorted(i["url"] for i in items) == sorted([rows["far"]["url"], rows["other"]["url"]])
    run = json.loads((tmp_path / "data" / "runs" / RUN / "run.json").read_text())
    assert run["counts"]["items"] == 2 and run["counts"]["withheld"] == 3
    assert run["counts"]["rejections"] == 0 and run["counts"]["by_reason"] == {}
    # manifest: bad, near withdrawn from data/; dup's duplicate exclusion removed from audit/
    version = rows["manifest"]
    kept = pq.read_table(version / "data").to_pylist()
    assert sorted(i["url"] for i in kept) == sorted([rows["far"]["url"], rows["other"]["url"]])
    assert pq.read_table(version / "audit" / "exclusions.parquet").num_rows == 0
    manifest = json.loads((version / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["kept"] == 2 and counts["excluded"] == 0 and counts["withheld"] == 3
    assert counts["candidates"] == counts["kept"] + counts["excluded"] + counts["withheld"]
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == sha256_file(version / name), name
    # incidents: one per distinct (url, content); counts only on stdout
    records = [json.loads(p.read_text()) for p in (tmp_path / "data" / "incidents").iterdir()]
    assert sorted(r["incident_type"] for r in records) == [
        "blocklist_match", "blocklist_match", "blocklist_neighbour"]
    assert {r["detected_by"] for r in records} == {"screen"}
    neighbour = next(r for r in records if r["incident_type"] == "blocklist_neighbour")
    assert neighbour["content"]["url"] == rows["near"]["url"]
    assert neighbour["match"]["distance"] == 10 and neighbour["match"]["threshold"] == 31
    bad = next(r for r in records if r["content"]["url"] == rows["bad"]["url"])
    assert sorted(bad["found_in"]) == ["manifest:my-set@v1", f"run:{RUN}"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600
               for p in (tmp_path / "data" / "incidents").iterdir())
    # nothing names them outside incidents/
    needles = [rows[k][c].encode() for k in ("bad", "near", "dup") for c in ("url", "sha256")]
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file() and "incidents" not in path.parts:
            blob = path.read_bytes()
            assert not [n for n in needles if n in blob], path
    assert not [n for n in needles if n in (proc.stdout + proc.stderr).encode()]
    assert State.in_data_dir(tmp_path / "data").suspended_ids() == {"aurora", "boreal"}

    again = clearance(tmp_path, "screen", "--manifest", "my-set", "--runs", RUN, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["hits"] == 0
    listed = clearance(tmp_path, "incidents", "list", "--json")
    assert json.loads(listed.stdout)["by_list"] == {"partner-sha256": 3}


def test_screened_manifest_equals_a_fresh_build_of_the_screened_run(tmp_path: Path):
    rows = setup(tmp_path)
    add_lists(tmp_path, rows["bad"]["sha256"])
    proc = clearance(tmp_path, "screen", "--manifest", "my-set", "--runs", RUN)
    assert proc.returncode == 0, proc.stderr
    assert "rows withdrawn: 5" in proc.stdout and "http" not in proc.stdout
    fresh = build_manifest(rows["config"], tmp_path / "data", "my-set")
    screened = rows["manifest"] / "data" / "part-00000.parquet"
    assert (fresh.path / "data" / "part-00000.parquet").read_bytes() == screened.read_bytes()


def test_screen_without_lists_is_bad_input_and_nothing_found_is_exit_0(tmp_path: Path):
    setup(tmp_path)
    none = clearance(tmp_path, "screen")
    assert none.returncode == 2 and "no blocklists" in none.stderr
    add_lists(tmp_path, hashlib.sha256(b"not in any run").hexdigest())
    (tmp_path / "configs" / "blocklists" / "pdq.txt").write_text(flip(BASE_PDQ, 200) + "\n")
    clean = clearance(tmp_path, "screen", "--json")
    assert clean.returncode == 0, clean.stderr
    doc = json.loads(clean.stdout)
    assert doc["hits"] == 0 and doc["rows_withdrawn"] == 0 and doc["files_rewritten"] == 0
    assert not (tmp_path / "data" / "incidents").exists()
    unknown = clearance(tmp_path, "screen", "--manifest", "nope")
    assert unknown.returncode == 2 and "nope" in unknown.stderr


def test_url_lists_reach_rejections_exclusions_and_page_urls(tmp_path: Path):
    config = write_config(tmp_path / "configs", [source_doc("aurora")])
    aurora = config.sources["aurora"]
    listed_page = "https://aurora.example/gallery/listed/"
    on_listed_page = make_item(aurora, "https://aurora.example/gallery/x.jpg",
                               page_url=listed_page)
    clean = make_item(aurora, "https://aurora.example/gallery/ok.jpg")
    link = make_rejection("aurora", "https://elsewhere.example/listed-link", "out_of_scope",
                          stage="consent")
    other = make_rejection("aurora", "https://elsewhere.example/fine", "out_of_scope",
                           stage="consent")
    write_run(tmp_path / "data", RUN, [on_listed_page, clean], [link, other])
    folder = tmp_path / "configs" / "blocklists"
    folder.mkdir()
    from pipeline.safety.urls import normalise_url

    (folder / "urls.txt").write_text("".join(
        hashlib.sha256(normalise_url(u).encode()).hexdigest() + "\n"
        for u in (listed_page, "https://elsewhere.example/listed-link")))
    (folder / "urls.txt").chmod(0o600)
    doc = settings_doc()
    doc["blocklists"] = [{"id": "links", "kind": "url-sha256", "path": "blocklists/urls.txt"}]
    import yaml

    (tmp_path / "configs" / "clearance.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    proc = clearance(tmp_path, "screen", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["rows_withdrawn"] == 1 and result["rejections_removed"] == 1
    assert result["suspended"] == ["aurora"]
    run_dir = tmp_path / "data" / "runs" / RUN
    assert [i["url"] for i in pq.read_table(run_dir / "items.parquet").to_pylist()] == [
        clean["url"]]
    assert [r["url"] for r in pq.read_table(run_dir / "rejections.parquet").to_pylist()] == [
        other["url"]]
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file() and "incidents" not in path.parts:
            blob = path.read_bytes()
            assert b"listed-link" not in blob and b"gallery/listed/" not in blob, path
    records = [json.loads(p.read_text()) for p in (tmp_path / "data" / "incidents").iterdir()]
    assert sorted(r["incident_type"] for r in records) == ["url_list_match", "url_list_match"]
