"""Takedowns: validation, matching per kind, the build applying them, and no removal map."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import pipeline.cli.manifests  # noqa: F401 - registers build, report
import pipeline.cli.takedowns  # noqa: F401 - registers takedown, impact
from pipeline.build.takedowns import TakedownMatcher, normalise_creator
from pipeline.cli import cli
from pipeline.registry.state import State
from pipeline.registry.takedowns import Takedown, TakedownError
from tests.helpers_config import source_doc, write_config
from tests.helpers_runs import make_item, write_run

PDQ = "f" * 64
PDQ_31 = "0" * 7 + "e" + "f" * 56  # 31 bits from PDQ (7 zero nibbles + one bit)
PDQ_32 = "0" * 8 + "f" * 56  # 32 bits from PDQ


def td(kind: str, value: str, distance: int | None = None, ident: str = "T-000001") -> Takedown:
    return Takedown(ident, kind, value, distance, "asked", None, datetime.now(UTC))


def table(**columns: list) -> pa.Table:
    n = len(next(iter(columns.values())))
    base = {c: [None] * n for c in ("url", "page_url", "sha256", "pdq", "creator", "source_id")}
    base.update(columns)
    return pa.table({k: pa.array(v, pa.string()) for k, v in base.items()})


# ----------------------------------------------------------------------------- matching


def test_url_matches_normalised_on_url_and_page_url():
    rows = table(url=["HTTPS://Aurora.Example:443/gallery/./a%7E.jpg",
                      "https://aurora.example/gallery/b.jpg",
                      "https://aurora.example/gallery/A~.jpg"],
                 page_url=[None, "https://aurora.example/gallery/a~.jpg", None])
    matcher = TakedownMatcher([td("url", "https://aurora.example/gallery/a~.jpg")])
    assert matcher.mask(rows).tolist() == [True, True, False]  # path case matters


def test_url_prefix_matches_by_normalised_prefix():
    rows = table(url=["https://aurora.example/private/a.jpg", "https://aurora.example/pub/a.jpg",
                      "https://AURORA.example/private/../private/b.jpg",
                      "https://other.example/private/a.jpg"])
    matcher = TakedownMatcher([td("url-prefix", "https://aurora.example/private/")])
    assert matcher.mask(rows).tolist() == [True, False, True, False]


def test_non_ascii_host_matches_its_idna_form():
    rows = table(url=["https://bücher.example/a.jpg", "https://b.example/a.jpg"])
    matcher = TakedownMatcher([td("url", "https://xn--bcher-kva.example/a.jpg")])
    assert matcher.mask(rows).tolist() == [True, False]


@pytest.mark.parametrize("extra_hosts", [0, 12], ids=["substring-test", "regex-test"])
def test_host_test_never_misses_a_row(extra_hosts):
    """Few takedown hosts take the substring host test, many the regex one: same answer."""
    rows = table(url=["https://***@A.Example./x.jpg", "https://a.example/y.jpg",
                      "https://b.example/x.jpg", "https://a.example.evil.example/x.jpg"])
    takedowns = [td("url", f"https://h{i}.example/x.jpg", ident=f"T-{i:06d}")
                 for i in range(extra_hosts)]
    takedowns.append(td("url", "https://a.example/x.jpg", ident="T-999999"))
    assert TakedownMatcher(takedowns).mask(rows).tolist() == [True, False, False, False]


def test_pdq_distance_edge_31_and_32():
    rows = table(pdq=[PDQ, PDQ_31, PDQ_32, None, "zz" * 32])
    assert TakedownMatcher([td("pdq", PDQ, 31)]).mask(rows).tolist() == [
        True, True, False, False, False]
    assert TakedownMatcher([td("pdq", PDQ, 32)]).mask(rows).tolist() == [
        True, True, True, False, False]
    assert TakedownMatcher([td("pdq", PDQ, 0)]).mask(rows).tolist() == [
        True, False, False, False, False]


def test_creator_casefold_and_whitespace():
    rows = table(creator=["Ana  Ruiz", " ANA\tRUIZ ", "Ana Ruiz-Lee", None, "Straße"])
    assert TakedownMatcher([td("creator", "ana ruiz")]).mask(rows).tolist() == [
        True, True, False, False, False]
    assert TakedownMatcher([td("creator", "STRASSE")]).mask(rows).tolist() == [
        False, False, False, False, True]
    assert normalise_creator("  A \n b ") == "a b"


def test_sha256_and_source_and_first_takedown_wins():
    rows = table(sha256=["AB" * 32, "cd" * 32, "ef" * 32], source_id=["s1", "s2", "s2"])
    matcher = TakedownMatcher([td("sha256", "ab" * 32, ident="T-000001"),
                               td("source", "s2", ident="T-000002"),
                               td("sha256", "cd" * 32, ident="T-000003")])
    assert matcher.positions(rows).tolist() == [0, 1, 1]


# ----------------------------------------------------------------------------- state


def test_state_records_removal_and_never_deletes(tmp_path):
    state = State(tmp_path / "state.sqlite")
    first = state.add_takedown("sha256", "AB" * 32, "hotline", "NCMEC")
    assert (first.id, first.value, first.requested_by) == ("T-000001", "ab" * 32, "NCMEC")
    assert state.add_takedown("pdq", PDQ, "artist").distance == 31
    removed = state.remove_takedown(first.id, "withdrawn")
    assert removed.removal_reason == "withdrawn" and not removed.active
    assert [t.id for t in state.takedowns()] == ["T-000001", "T-000002"]
    assert [t.id for t in state.takedowns(active_only=True)] == ["T-000002"]
    with pytest.raises(TakedownError, match="already removed"):
        state.remove_takedown(first.id, "again")


# ----------------------------------------------------------------------------- CLI


@pytest.fixture
def world(tmp_path):
    config = write_config(tmp_path / "configs", [source_doc("aurora"), source_doc("boreal")])
    data = tmp_path / "data"
    a, b = config.sources["aurora"], config.sources["boreal"]
    items = [
        make_item(a, "https://aurora.example/gallery/1.jpg", creator="Ana Ruiz"),
        make_item(a, "https://aurora.example/gallery/2.jpg", pdq=PDQ),
        make_item(a, "https://aurora.example/gallery/private/3.jpg"),
        make_item(a, "https://aurora.example/gallery/4.jpg"),
        make_item(a, "https://aurora.example/gallery/5.jpg"),
        make_item(b, "https://boreal.example/gallery/6.jpg"),
        make_item(b, "https://boreal.example/gallery/7.jpg"),
    ]
    write_run(data, "20260102T030405Z-aaaaaa", items)
    return tmp_path / "configs", data, items


def run(world, *args: str, ok: int = 0):
    configs, data, _ = world
    result = CliRunner().invoke(cli, ["--config", str(configs), "--data", str(data), *args])
    assert result.exit_code == ok, result.output
    return result


@pytest.mark.parametrize("args, flag", [
    (["--sha256", "abc"], "--sha256"),
    (["--sha256", "g" * 64], "--sha256"),
    (["--pdq", "f" * 63], "--pdq"),
    (["--pdq", PDQ, "--distance", "257"], "--distance"),
    (["--pdq", PDQ, "--distance", "-1"], "--distance"),
    (["--url", "ftp://x.example/a"], "--url"),
    (["--url-prefix", "not a url"], "--url-prefix"),
    (["--source", "nobody"], "--source"),
    (["--creator", "  "], "--creator"),
    (["--url", "https://a.example/", "--sha256", "ab" * 32], "--url, --sha256"),
    ([], "give exactly one"),
])
def test_add_refuses_bad_input_naming_the_flag(world, args, flag):
    result = run(world, "takedown", "add", *args, "--reason", "x", ok=2)
    assert flag in result.output


def test_add_refuses_empty_reason_and_remove_unknown_id(world):
    assert "--reason" in run(world, "takedown", "add", "--source", "aurora", "--reason", " ",
                             ok=2).output
    assert "T-000009" in run(world, "takedown", "remove", "T-000009", "--reason", "x",
                             ok=2).output
    assert "--reason" in run(world, "takedown", "remove", "T-000001", "--reason", "",
                             ok=2).output


def test_add_list_remove_export(world, tmp_path):
    ident = run(world, "takedown", "add", "--url", "https://aurora.example/gallery/1.jpg",
                "--reason", "artist asked", "--requested-by", "Ana").output.strip()
    assert ident == "T-000001"
    doc = json.loads(run(world, "takedown", "add", "--pdq", PDQ.upper(), "--distance", "0",
                         "--reason", "r", "--json").output)
    assert (doc["id"], doc["value"], doc["distance"], doc["active"]) == ("T-000002", PDQ, 0, True)
    run(world, "takedown", "remove", ident, "--reason", "withdrawn")
    listed = json.loads(run(world, "takedown", "list", "--json").output)
    assert [(t["id"], t["active"], t["removal_reason"]) for t in listed] == [
        ("T-000001", False, "withdrawn"), ("T-000002", True, None)]
    out = tmp_path / "export.jsonl"
    run(world, "takedown", "export", "--out", str(out))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [t["id"] for t in lines] == ["T-000001", "T-000002"]
    assert lines[0]["requested_by"] == "Ana" and lines[0]["removed_at"]


# ----------------------------------------------------------------------------- build


def version(data: Path, n: int) -> Path:
    return data / "manifests" / "set" / f"v{n}"


def published_rows(data: Path, n: int) -> list[dict]:
    return pq.read_table(version(data, n) / "data").to_pylist()


def test_build_excludes_then_restores_after_remove(world):
    _, data, items = world
    run(world, "build", "set")
    ident = run(world, "takedown", "add", "--url", items[0]["url"], "--reason", "x").output
    run(world, "build", "set")
    v2 = {r["row_id"] for r in published_rows(data, 2)}
    assert items[0]["row_id"] not in v2 and len(v2) == len(items) - 1
    audit = pq.read_table(version(data, 2) / "audit" / "exclusions.parquet").to_pylist()
    (row,) = [r for r in audit if r["reason"] == "takedown"]
    assert row["detail"] == f"takedown {ident.strip()}" and row["row_id"] == items[0]["row_id"]
    assert row["url"] is None and row["page_url"] is None
    manifest = json.loads((version(data, 2) / "manifest.json").read_text())
    assert manifest["removed_since_previous"] == {"takedown": 1}
    assert manifest["previous_version"] == 1
    run(world, "takedown", "remove", ident.strip(), "--reason", "withdrawn")
    run(world, "build", "set")
    assert items[0]["row_id"] in {r["row_id"] for r in published_rows(data, 3)}
    manifest = json.loads((version(data, 3) / "manifest.json").read_text())
    assert manifest["removed_since_previous"] == {}


KIND_ARGS = [
    (["--url", "https://AURORA.example/gallery/1.jpg"], [0]),
    (["--url-prefix", "https://aurora.example/gallery/private/"], [2]),
    (["--sha256", "{sha256_3}"], [3]),
    (["--pdq", PDQ_31, "--distance", "31"], [1]),
    (["--creator", "  ana   RUIZ"], [0]),
    (["--source", "boreal"], [5, 6]),
]


def _published_text(data: Path, n: int) -> str:
    """Every published file of a version, Parquet decoded too."""
    texts = [(version(data, n) / "manifest.json").read_text()]
    for part in sorted((version(data, n) / "data").glob("*.parquet")):
        texts.append(part.read_bytes().decode("latin-1"))
        texts.append(json.dumps(pq.read_table(part).to_pylist(), default=str))
    return "\n".join(texts)


@pytest.mark.parametrize("args, removed", KIND_ARGS, ids=[a[0] for a, _ in KIND_ARGS])
def test_no_removal_map_in_published_files_or_reports(world, args, removed):
    _, data, items = world
    run(world, "build", "set")
    args = [a.format(sha256_3=items[3]["sha256"]) for a in args]
    run(world, "takedown", "add", *args, "--reason", "taken down")
    run(world, "build", "set")
    kept = {r["row_id"] for r in published_rows(data, 2)}
    assert kept == {it["row_id"] for i, it in enumerate(items) if i not in removed}
    manifest = json.loads((version(data, 2) / "manifest.json").read_text())
    assert manifest["removed_since_previous"] == {"takedown": len(removed)}
    haystack = _published_text(data, 2)
    for fmt in ("md", "json", "attribution"):
        haystack += run(world, "report", "set", "--format", fmt).output
    for i in removed:
        item = items[i]
        for needle in (item["url"], item["row_id"], item["sha256"], item["md5"],
                       item["url"].split("://", 1)[1]):
            assert needle not in haystack, (needle, args)
    # the kept rows are still named (the grep is not vacuous)
    other = next(it for i, it in enumerate(items) if i not in removed)
    assert other["url"] in haystack and other["row_id"] in haystack
