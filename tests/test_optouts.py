"""Contributor opt-outs: declared in a source's YAML (names, a file, a URL the crawl fetches),
honoured by the build like creator takedowns, failing closed when a list cannot be read."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner
from crawlkit import image_bytes, local_source, page, run_crawl_cli, write_settings
from mockserver import MockServer

import pipeline.cli.configs  # noqa: F401 - registers validate
import pipeline.cli.manifests  # noqa: F401 - registers build
from pipeline.build.builder import build_manifest
from pipeline.cli import cli
from pipeline.registry.config import ConfigError, load_config
from pipeline.registry.optouts import OptoutListError, parse_optout_list
from pipeline.runs import reasons
from tests.helpers_config import source_doc, write_config
from tests.helpers_runs import make_item, write_run

GALLERY = "https://aurora.example/gallery/"


def with_optouts(doc: dict, **optouts) -> dict:
    return {**doc, "optouts": optouts}


def items(source, creators: dict[str, str | None]) -> list[dict]:
    return [make_item(source, GALLERY + name, creator=creator) for name, creator in
            creators.items()]


def built(config, data: Path):
    result = build_manifest(config, data, "m")
    kept = pq.read_table(result.path / "data").to_pylist()
    excluded = pq.read_table(result.path / "audit" / "exclusions.parquet").to_pylist()
    return result, kept, excluded


# ----------------------------------------------------------------------------- list files


def test_a_list_is_lines_or_json():
    assert parse_optout_list("\ufeffJane Doe\n# a comment\n\n  Ann  # artist\r\n".encode()) == [
        "Jane Doe", "Ann"]
    assert parse_optout_list(b'["Jane Doe", " Ann "]') == ["Jane Doe", "Ann"]
    assert parse_optout_list(b'{"creators": ["Jane"]}') == ["Jane"]


@pytest.mark.parametrize("data, problem", [
    (b'{"names": []}', 'exactly one key, "creators"'),
    (b"[1, 2]", "a JSON list of names"),
    (b"[\"a\"", "invalid JSON at line 1"),
    (b"\xff\xfe", "not UTF-8"),
    (("x" * 1001).encode(), "longer than 1000 characters"),
])
def test_a_bad_list_says_what_was_expected(data, problem):
    with pytest.raises(OptoutListError, match=problem):
        parse_optout_list(data)


# ----------------------------------------------------------------------------- config


def test_config_refuses_an_optout_url_outside_scope_and_a_missing_file(tmp_path):
    doc = with_optouts(source_doc("aurora"), url="https://elsewhere.example/optouts.txt")
    other = with_optouts(source_doc("borealis"), file="optouts/missing.txt")
    with pytest.raises(ConfigError) as info:
        write_config(tmp_path / "configs", [doc, other])
    text = str(info.value)
    assert "sources/aurora.yaml: optouts: " in text and "outside the source's scope" in text
    assert "sources/borealis.yaml: optouts.file: file not found" in text


def test_validate_exits_2_naming_a_malformed_list_file(tmp_path):
    configs = tmp_path / "configs"
    write_config(configs, [source_doc("aurora")])
    (configs / "optouts.json").write_text('{"names": ["x"]}')
    doc = with_optouts(source_doc("aurora"), file="optouts.json")
    (configs / "sources" / "aurora.yaml").write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(cli, ["--config", str(configs), "validate"])
    assert result.exit_code == 2
    assert "sources/aurora.yaml: optouts.file: " in result.output
    assert 'exactly one key, "creators"' in result.output


# ----------------------------------------------------------------------------- build


def test_creators_listed_in_the_yaml_leave_the_build_like_creator_takedowns(tmp_path):
    doc = with_optouts(source_doc("aurora"), creators=["Jane  DOE"])
    config = write_config(tmp_path / "configs", [doc, source_doc("borealis")])
    source, other = config.sources["aurora"], config.sources["borealis"]
    data = tmp_path / "data"
    write_run(data, "r1", [*items(source, {"a.jpg": "jane doe", "b.jpg": "Ann", "c.jpg": None}),
                           make_item(other, "https://borealis.example/gallery/j.jpg",
                                     creator="Jane Doe")])
    result, kept, excluded = built(config, data)
    assert sorted(r["url"].rsplit("/", 1)[1] for r in kept) == ["b.jpg", "c.jpg", "j.jpg"]
    (row,) = excluded
    assert row["reason"] == reasons.TAKEDOWN
    assert row["detail"] == "contributor opt-out: optouts.creators of sources/aurora.yaml"
    assert row["url"] is None and row["page_url"] is None  # no map of what was removed
    manifest = (result.path / "manifest.json").read_text()
    assert "jane" not in manifest.lower()  # the manifest counts the list, never names anyone
    (summary,) = [f for f in json.loads(manifest)["filters"] if f["name"] == "optouts"]
    assert summary["dropped"] == {"takedown": 1}
    assert summary["lists"]["applied"][0]["names"] == 1


def test_a_list_file_applies_and_a_vanished_file_fails_closed(tmp_path):
    configs = tmp_path / "configs"
    write_config(configs, [source_doc("aurora")])
    (configs / "optouts").mkdir()
    (configs / "optouts" / "aurora.txt").write_text("# opted out\nAnn\n")
    doc = with_optouts(source_doc("aurora"), file="optouts/aurora.txt")
    (configs / "sources" / "aurora.yaml").write_text(yaml.safe_dump(doc))
    config = load_config(configs)
    data = tmp_path / "data"
    write_run(data, "r1", items(config.sources["aurora"], {"a.jpg": "ann", "b.jpg": "Bo"}))
    _, kept, excluded = built(config, data)
    assert [r["creator"] for r in kept] == ["Bo"]
    assert [r["detail"] for r in excluded] == [
        "contributor opt-out: optouts.file optouts/aurora.txt"]

    (configs / "optouts" / "aurora.txt").unlink()
    _, kept, excluded = built(config, data)
    assert kept == []
    assert {r["reason"] for r in excluded} == {reasons.TAKEDOWN}
    assert all("optouts.file optouts/aurora.txt cannot be read" in r["detail"] for r in excluded)


def test_build_through_the_cli_honours_yaml_opt_outs_without_a_crawl(tmp_path):
    configs, data = tmp_path / "configs", tmp_path / "data"
    config = write_config(configs, [source_doc("aurora")])
    write_run(data, "r1", items(config.sources["aurora"], {"a.jpg": "Ann", "b.jpg": "Bo"}))
    args = ["--config", str(configs), "--data", str(data), "build", "m", "--json"]
    first = json.loads(CliRunner().invoke(cli, args).output)
    (configs / "sources" / "aurora.yaml").write_text(
        yaml.safe_dump(with_optouts(source_doc("aurora"), creators=["ann"])))
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0, second.output
    manifest = json.loads(Path(json.loads(second.output)["path"], "manifest.json").read_text())
    assert first["counts"]["kept"] == 2 and manifest["counts"]["kept"] == 1
    assert manifest["removed_since_previous"] == {"takedown": 1}


# ----------------------------------------------------------------------------- crawl


@pytest.fixture
def site():
    with MockServer() as srv:
        srv.route("/robots.txt", body="User-agent: *\nDisallow: /site/private/\n",
                  content_type="text/plain")
        srv.route("/site/", body=page('<img src="/site/img/a.jpg" alt="a">'))
        srv.route("/site/img/a.jpg", body=image_bytes(), content_type="image/jpeg")
        srv.route("/site/optouts.txt", body="Ann\n# comment\nJane Doe\n",
                  content_type="text/plain")
        srv.route("/site/private/optouts.txt", body="Ann\n", content_type="text/plain")
        yield srv


def test_the_crawl_fetches_the_list_through_its_gates_and_the_build_applies_it(tmp_path, site):
    base = site.url("/site/")
    doc = local_source("aurora", base, optouts={"url": base + "optouts.txt"})
    write_settings(tmp_path / "configs", [doc])
    crawl = run_crawl_cli(tmp_path)
    assert crawl.returncode == 0, crawl.stderr[-3000:]
    run_json = tmp_path / "data" / "runs" / crawl.run["run_id"] / "run.json"
    record = json.loads(run_json.read_text())["optout_lists"]["aurora"]
    assert record["names"] == ["Ann", "Jane Doe"] and record["url"] == base + "optouts.txt"
    assert site.count("/site/optouts.txt") == 1

    config = load_config(tmp_path / "configs")
    source = config.sources["aurora"]
    write_run(tmp_path / "data", "20990101T000000Z-later",
              [make_item(source, base + "img/b.jpg", creator="JANE doe")])
    _, kept, excluded = built(config, tmp_path / "data")
    assert [r["url"] for r in kept] == [base + "img/a.jpg"]
    (row,) = excluded
    assert row["detail"].startswith(f"contributor opt-out: optouts.url {base}optouts.txt "
                                    "as fetched at ")


def test_a_list_robots_forbids_is_not_fetched_and_the_source_fails_closed(tmp_path, site):
    base = site.url("/site/")
    doc = local_source("aurora", base, optouts={"url": base + "private/optouts.txt"})
    write_settings(tmp_path / "configs", [doc])
    crawl = run_crawl_cli(tmp_path)
    assert crawl.returncode == 0, crawl.stderr[-3000:]
    assert not site.was_requested("/site/private/optouts.txt")
    assert crawl.reasons_for(base + "private/optouts.txt") == [reasons.ROBOTS_DISALLOWED]
    _, kept, excluded = built(load_config(tmp_path / "configs"), tmp_path / "data")
    assert kept == []
    (row,) = excluded
    assert row["detail"] == (f"contributor opt-out list unavailable: optouts.url {base}private/"
                             "optouts.txt was not fetched by any run of this build")
