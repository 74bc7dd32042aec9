"""After the first build, end to end through the CLI: every way a row leaves the next version
(opt-out, revocation, suspension, gone, superseded) takes effect without a crawl, is counted per
reason in manifest.json, and leaves no trace of the removed item in any published file or in any
report format; `impact` still finds the versions that held it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

import pipeline.cli.manifests  # noqa: F401 - registers build, report
import pipeline.cli.sources  # noqa: F401 - registers source
import pipeline.cli.takedowns  # noqa: F401 - registers impact
from pipeline.cli import cli
from pipeline.registry.state import STATE_FILE, State
from pipeline.reports.formats import FORMATS
from pipeline.runs import reasons
from tests.helpers_config import source_doc, write_config
from tests.helpers_runs import FETCHED_AT, make_item, make_rejection, write_run

R1, R2 = "20260102T030405Z-aaaaaa", "20260109T030405Z-bbbbbb"
A = "https://aurora.example/gallery/"


@pytest.fixture
def world(tmp_path):
    configs, data = tmp_path / "configs", tmp_path / "data"
    config = write_config(configs, [source_doc("aurora"), source_doc("boreal")])
    a, b = config.sources["aurora"], config.sources["boreal"]
    items = [
        make_item(a, A + "1.jpg", creator="Ana Ruiz"),
        make_item(a, A + "2.jpg", creator="Bo Lind"),
        make_item(a, A + "3.jpg"),
        make_item(b, "https://boreal.example/gallery/4.jpg"),
    ]
    write_run(data, R1, items)
    return configs, data, items


def run(world, *args: str, ok: int = 0):
    configs, data, _ = world
    result = CliRunner().invoke(cli, ["--config", str(configs), "--data", str(data), *args])
    assert result.exit_code == ok, result.output
    return result


def rewrite_source(configs: Path, source_id: str, **changes) -> None:
    doc = source_doc(source_id)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    (configs / "sources" / f"{source_id}.yaml").write_text(yaml.safe_dump(doc))


def opt_out(world):
    rewrite_source(world[0], "aurora", optouts={"creators": ["ANA  ruiz"]})


def revoke(world):
    rewrite_source(world[0], "aurora", consent={"status": "revoked"})


def suspend(world):
    State(world[1] / STATE_FILE).suspend("aurora", "blocklist hit (partner-sha256)")


def gone(world):
    _, data, items = world
    rejection = {**make_rejection("aurora", items[1]["url"], reasons.GONE, stage="fetch",
                                  detail="HTTP 410"), "at": FETCHED_AT + timedelta(days=7)}
    write_run(data, R2, [], [rejection])


def changed(world):
    _, data, items = world
    source_config = write_config(world[0].parent / "c2", [source_doc("aurora")])
    fresh = make_item(source_config.sources["aurora"], items[2]["url"], content=b"new bytes",
                      fetched_at=FETCHED_AT + timedelta(days=7))
    write_run(data, R2, [fresh])


CHANGES = {
    # name: (apply, indices of items that leave, reason counted)
    "opt-out": (opt_out, [0], reasons.TAKEDOWN),
    "revoked": (revoke, [0, 1, 2], reasons.REVOKED),
    "suspended": (suspend, [0, 1, 2], reasons.REVOKED),
    "gone": (gone, [1], reasons.GONE),
    "superseded": (changed, [2], reasons.SUPERSEDED),
}


def published(data: Path, n: int) -> tuple[list[dict], str]:
    """(rows, every published file's text with Parquet decoded too) of version n."""
    folder = data / "manifests" / "set" / f"v{n}"
    rows = pq.read_table(folder / "data").to_pylist()
    texts = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "audit" not in path.relative_to(folder).parts:
            texts.append(path.read_bytes().decode("latin-1"))
    texts.append(json.dumps(rows, default=str))
    return rows, "\n".join(texts)


@pytest.mark.parametrize("name", list(CHANGES))
def test_a_change_reaches_the_next_version_with_no_trace_of_what_left(world, name):
    apply, removed, reason = CHANGES[name]
    _, data, items = world
    run(world, "build", "set")
    apply(world)
    run(world, "build", "set")
    rows, haystack = published(data, 2)
    left = {items[i]["row_id"] for i in removed}
    assert not left & {r["row_id"] for r in rows}
    manifest = json.loads((data / "manifests" / "set" / "v2" / "manifest.json").read_text())
    assert manifest["removed_since_previous"] == {reason: len(removed)}
    for fmt in FORMATS:
        haystack += run(world, "report", "set", "--format", fmt).output
    stays = [it for i, it in enumerate(items) if i not in removed and it["source_id"] == "boreal"]
    assert stays[0]["url"] in haystack and stays[0]["row_id"] in haystack  # not a vacuous grep
    for i in removed:
        item = items[i]
        # a superseded row's URL stays, serving its new content: only the old content left
        urls = [] if reason == reasons.SUPERSEDED else [item["url"], item["url"].split("://")[1]]
        for needle in (*urls, item["row_id"], item["sha256"], item["md5"]):
            assert needle not in haystack, (name, needle)
        if item["creator"]:
            assert item["creator"] not in haystack, (name, item["creator"])
    # the version built before still holds it, and impact says so
    found = json.loads(run(world, "impact", "--sha256", items[removed[0]]["sha256"],
                           "--json").output)
    assert [(v["version"], v["rows"]) for v in found] == [(1, 1)]


def test_revocation_and_opt_out_need_no_crawl_and_lifting_them_restores(world):
    configs, data, items = world
    run(world, "build", "set")
    revoke(world)
    run(world, "build", "set")
    rewrite_source(configs, "aurora")  # consent granted again
    run(world, "build", "set")
    rows, _ = published(data, 3)
    assert {r["row_id"] for r in rows} == {it["row_id"] for it in items}
    assert sorted(p.name for p in (data / "runs").iterdir()) == [R1]  # no crawl happened
