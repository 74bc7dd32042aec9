"""pipeline/runs.py: RunWriter streams rows to hidden partial files, commit moves them into place
and writes run.json last; a crashed or discarded run never looks complete to `completed_runs`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from helpers_config import source_doc
from helpers_runs import make_item, make_rejection

import pipeline.runs.writer as runs_module
from pipeline.registry.config import Source
from pipeline.runs.schema import ITEMS_SCHEMA, REJECTIONS_SCHEMA
from pipeline.runs.writer import (
    ITEMS_FILE,
    LOCK_FILE,
    REJECTIONS_FILE,
    RUN_JSON,
    RUNS_DIR,
    RunWriter,
    completed_runs,
    new_run_id,
    sweep_abandoned_runs,
)

TESTS_DIR = Path(__file__).resolve().parent

META = {
    "started_at": "2026-01-02T03:04:05+00:00",
    "finished_at": "2026-01-02T03:05:05+00:00",
    "sources": ["aurora-art"],
    "config_sha256": "0" * 64,
    "versions": {"clearance": "test"},
    "limits_hit": [],
}


@pytest.fixture(scope="module")
def source() -> Source:
    return Source.model_validate(source_doc("aurora-art"))


@pytest.fixture(scope="module")
def other() -> Source:
    return Source.model_validate(source_doc("borealis"))


def url(n: int, host: str = "cdn.aurora-art.example") -> str:
    return f"https://{host}/img/{n}.jpg"


def visible(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.iterdir() if not p.name.startswith("."))


def hidden(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------- ids


def test_new_run_id_is_sortable_utc_and_unique() -> None:
    run_id = new_run_id(datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC))
    assert re.fullmatch(r"20260304T050607Z-[0-9a-f]{6}", run_id)
    assert len({new_run_id() for _ in range(50)}) == 50


def test_run_id_reuse_is_refused(tmp_path: Path) -> None:
    RunWriter(tmp_path, "r1").discard()
    with pytest.raises(FileExistsError):
        RunWriter(tmp_path, "r1")


# --------------------------------------------------------------------------- commit


def test_nothing_visible_before_commit(tmp_path: Path, source: Source) -> None:
    writer = RunWriter(tmp_path, "r1")
    assert writer.dir == tmp_path / RUNS_DIR / "r1"
    for n in range(3):
        writer.add_item(make_item(source, url(n), run_id="r1"))
    writer.add_rejection(make_rejection(source.id, url(9), "robots_disallowed", stage="robots"))
    assert visible(writer.dir) == []
    assert hidden(writer.dir) == [f".{ITEMS_FILE}.partial", LOCK_FILE,
                                  f".{REJECTIONS_FILE}.partial"]
    assert completed_runs(tmp_path) == []
    writer.discard()


def test_commit_writes_parquet_with_the_contract_schemas(tmp_path: Path, source: Source) -> None:
    writer = RunWriter(tmp_path, "r1")
    items = [make_item(source, url(n), run_id="r1") for n in range(3)]
    for row in items:
        writer.add_item(row)
    writer.add_rejection(make_rejection(source.id, url(7), "robots_disallowed", stage="robots"))
    writer.add_rejection(make_rejection(source.id, url(8), "too_large", stage="image"))
    writer.add_rejection(make_rejection(source.id, url(9), "too_large", stage="image"))
    doc = writer.commit(META)

    assert visible(writer.dir) == [ITEMS_FILE, REJECTIONS_FILE, RUN_JSON]
    assert hidden(writer.dir) == []
    assert pq.read_schema(writer.dir / ITEMS_FILE).equals(ITEMS_SCHEMA, check_metadata=False)
    assert pq.read_schema(writer.dir / REJECTIONS_FILE).equals(
        REJECTIONS_SCHEMA, check_metadata=False
    )
    table = pq.read_table(writer.dir / ITEMS_FILE)
    assert table.column("url").to_pylist() == [url(0), url(1), url(2)]
    assert table.to_pylist()[0]["sha256"] == items[0]["sha256"]
    rejections = pq.read_table(writer.dir / REJECTIONS_FILE).to_pylist()
    assert [r["reason"] for r in rejections] == ["robots_disallowed", "too_large", "too_large"]

    assert doc["run_id"] == "r1"
    assert doc["counts"] == {
        "items": 3,
        "rejections": 3,
        "withheld": 0,
        "by_reason": {"robots_disallowed": 1, "too_large": 2},
    }
    for key, value in META.items():
        assert doc[key] == value
    assert json.loads((writer.dir / RUN_JSON).read_text()) == doc


def test_run_json_is_written_last(
    tmp_path: Path, source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When run.json is written, both Parquet files are already in place (and no partials)."""
    seen: list[tuple[str, list[str]]] = []
    real = runs_module.write_json_atomic

    def spy(path: Path, obj: Any) -> None:
        seen.append((path.name, sorted(os.listdir(path.parent))))
        real(path, obj)

    monkeypatch.setattr(runs_module, "write_json_atomic", spy)
    writer = RunWriter(tmp_path, "r1")
    writer.add_item(make_item(source, url(1), run_id="r1"))
    writer.commit(META)
    # the writer's lock is held until run.json is in place, then removed
    assert seen == [(RUN_JSON, [LOCK_FILE, ITEMS_FILE, REJECTIONS_FILE])]
    assert sorted(os.listdir(writer.dir)) == [ITEMS_FILE, REJECTIONS_FILE, RUN_JSON]


def test_empty_run_commits_empty_files(tmp_path: Path) -> None:
    writer = RunWriter(tmp_path, "r0")
    doc = writer.commit(META)
    assert doc["counts"] == {"items": 0, "rejections": 0, "withheld": 0, "by_reason": {}}
    assert pq.read_table(writer.dir / ITEMS_FILE).num_rows == 0
    assert pq.read_table(writer.dir / REJECTIONS_FILE).schema.equals(
        REJECTIONS_SCHEMA, check_metadata=False
    )
    assert [r.run_id for r in completed_runs(tmp_path)] == ["r0"]


def test_many_rows_span_several_batches(tmp_path: Path, source: Source) -> None:
    writer = RunWriter(tmp_path, "big")
    n = runs_module._BATCH_ROWS * 2 + 17
    for i in range(n):
        writer.add_item(make_item(source, url(i), run_id="big"))
    doc = writer.commit(META)
    assert doc["counts"]["items"] == n
    assert pq.read_table(writer.dir / ITEMS_FILE, columns=["url"]).column("url").to_pylist() == [
        url(i) for i in range(n)
    ]


def test_withheld_and_per_source_counters(tmp_path: Path, source: Source, other: Source) -> None:
    writer = RunWriter(tmp_path, "r1")
    writer.add_item(make_item(source, url(1), run_id="r1"))
    writer.add_item(make_item(other, url(2, "cdn.borealis.example"), run_id="r1"))
    writer.add_item(make_item(other, url(3, "cdn.borealis.example"), run_id="r1"))
    writer.add_rejection(make_rejection(other.id, url(4), "out_of_scope", stage="consent"))
    writer.add_rejection(make_rejection(None, url(5), "out_of_scope", stage="consent"))
    writer.withheld = 2
    assert dict(writer.items_by_source) == {"aurora-art": 1, "borealis": 2}
    assert {k: dict(v) for k, v in writer.rejections_by_source.items()} == {
        "borealis": {"out_of_scope": 1},
        "": {"out_of_scope": 1},
    }
    assert writer.commit(META)["counts"]["withheld"] == 2


def test_a_row_that_does_not_fit_the_schema_is_refused(tmp_path: Path, source: Source) -> None:
    writer = RunWriter(tmp_path, "bad")
    row = make_item(source, url(1), run_id="bad")
    row["width"] = "wide"
    writer.add_item(row)
    with pytest.raises((TypeError, ValueError)):
        writer.commit(META)
    assert not (writer.dir / ITEMS_FILE).exists()
    assert not (writer.dir / RUN_JSON).exists()


# --------------------------------------------------------------------------- discard


def test_discard_removes_the_partials(tmp_path: Path, source: Source) -> None:
    writer = RunWriter(tmp_path, "gone")
    for i in range(runs_module._BATCH_ROWS + 5):  # some rows already flushed to disk
        writer.add_item(make_item(source, url(i), run_id="gone"))
    writer.add_rejection(make_rejection(source.id, url(0), "fetch_failed", stage="fetch"))
    assert hidden(writer.dir)
    writer.discard()
    assert list(writer.dir.iterdir()) == []
    assert completed_runs(tmp_path) == []


# --------------------------------------------------------------------------- late removal


def test_remove_items_before_and_after_a_flush(tmp_path: Path, source: Source) -> None:
    writer = RunWriter(tmp_path, "r1")
    n = runs_module._BATCH_ROWS + 10  # the first batch is on disk, the rest in memory
    for i in range(n):
        writer.add_item(make_item(source, url(i), run_id="r1"))
    gone = {url(3), url(n - 2), "https://never.example/added.jpg"}
    removed = writer.remove_items(gone)
    assert sorted(r["url"] for r in removed) == sorted([url(3), url(n - 2)])
    assert removed[0]["source_id"] == "aurora-art"
    assert writer.items_by_source["aurora-art"] == n - 2
    assert writer.counts()["items"] == n - 2

    # Still hidden, and the writer keeps working afterwards.
    assert visible(writer.dir) == []
    writer.add_item(make_item(source, url(n), run_id="r1"))
    doc = writer.commit(META)
    assert doc["counts"]["items"] == n - 1
    kept = pq.read_table(writer.dir / ITEMS_FILE, columns=["url"]).column("url").to_pylist()
    assert len(kept) == n - 1
    assert url(3) not in kept and url(n - 2) not in kept
    assert kept[-1] == url(n)


def test_remove_items_of_one_source_only_changes_that_sources_count(
    tmp_path: Path, source: Source, other: Source
) -> None:
    writer = RunWriter(tmp_path, "r1")
    writer.add_item(make_item(source, url(1), run_id="r1"))
    writer.add_item(make_item(other, url(2, "cdn.borealis.example"), run_id="r1"))
    writer.remove_items({url(2, "cdn.borealis.example")})
    assert dict(writer.items_by_source) == {"aurora-art": 1, "borealis": 0}
    writer.commit(META)
    assert pq.read_table(writer.dir / ITEMS_FILE).column("source_id").to_pylist() == [
        "aurora-art"
    ]


def test_remove_nothing(tmp_path: Path, source: Source) -> None:
    writer = RunWriter(tmp_path, "r1")
    writer.add_item(make_item(source, url(1), run_id="r1"))
    assert writer.remove_items(set()) == []
    assert writer.remove_items({"https://elsewhere.example/x.jpg"}) == []
    writer.add_item(make_item(source, url(2), run_id="r1"))
    assert writer.commit(META)["counts"]["items"] == 2


def test_remove_where_on_rejections_by_reason(tmp_path: Path, source: Source) -> None:
    writer = RunWriter(tmp_path, "r1")
    writer.add_rejection(make_rejection(source.id, url(1), "too_large"))
    writer.add_rejection(make_rejection(source.id, url(2), "fetch_failed"))
    removed = writer.rejections.remove_where("reason", {"fetch_failed"})
    assert [r["url"] for r in removed] == [url(2)]
    assert writer.rejections.count == 1
    writer.commit(META)
    assert pq.read_table(writer.dir / REJECTIONS_FILE).column("url").to_pylist() == [url(1)]


# --------------------------------------------------------------------------- credentials


def test_no_row_carries_url_credentials(tmp_path: Path, source: Source) -> None:
    """Whoever records a row, a URL's user info reaches the disk as ``***``: in `url`,
    `page_url` and any text quoting a URL (a rejection's detail, an item's caption or signals);
    in the Parquet footer's column statistics too."""
    writer = RunWriter(tmp_path, "r1")
    secret = "s3cret"
    writer.add_rejection({
        **make_rejection(source.id, f"http://user:{secret}@other.example/landing.html",
                         "out_of_scope", stage="consent",
                         detail=f"redirected from http://{secret}@aurora-art.example/hop"),
        "page_url": f"https://u:{secret}%40x@aurora-art.example/gallery/",
    })
    item = make_item(source, url(1), run_id="r1", caption=f"mirror: http://u:{secret}@m/1.jpg")
    item["signals"][0]["detail"] = f"http://u:{secret}@cdn.aurora-art.example/robots.txt"
    writer.add_item(item)
    assert item["caption"] == f"mirror: http://u:{secret}@m/1.jpg"  # the caller's row untouched
    writer.commit(META)

    (rejection,) = pq.read_table(writer.dir / REJECTIONS_FILE).to_pylist()
    assert rejection["url"] == "http://***@other.example/landing.html"
    assert rejection["page_url"] == "https://***@aurora-art.example/gallery/"
    assert rejection["detail"] == "redirected from http://***@aurora-art.example/hop"
    (row,) = pq.read_table(writer.dir / ITEMS_FILE).to_pylist()
    assert row["url"] == url(1) and row["caption"] == "mirror: http://***@m/1.jpg"
    assert row["signals"][0]["detail"] == "http://***@cdn.aurora-art.example/robots.txt"
    for name in (ITEMS_FILE, REJECTIONS_FILE, RUN_JSON):
        assert secret.encode() not in (writer.dir / name).read_bytes(), name


def test_remove_items_finds_rows_whose_url_was_redacted(tmp_path: Path, source: Source) -> None:
    writer = RunWriter(tmp_path, "r1")
    with_userinfo = "https://u:s3cret@cdn.aurora-art.example/img/1.jpg"
    writer.add_item(make_item(source, with_userinfo, run_id="r1"))
    writer.add_item(make_item(source, url(2), run_id="r1"))
    assert [r["url"] for r in writer.remove_items({with_userinfo})] == [
        "https://***@cdn.aurora-art.example/img/1.jpg"]
    assert writer.commit(META)["counts"]["items"] == 1


# --------------------------------------------------------------------------- completed_runs


def test_completed_runs_sorted_and_selected(tmp_path: Path, source: Source) -> None:
    for run_id in ("r2", "r1", "r3"):
        writer = RunWriter(tmp_path, run_id)
        writer.add_item(make_item(source, url(1), run_id=run_id))
        writer.commit({**META, "note": run_id})
    found = completed_runs(tmp_path)
    assert [r.run_id for r in found] == ["r1", "r2", "r3"]
    assert found[0].path == tmp_path / RUNS_DIR / "r1"
    assert found[0].items_path == tmp_path / RUNS_DIR / "r1" / ITEMS_FILE
    assert found[0].rejections_path == tmp_path / RUNS_DIR / "r1" / REJECTIONS_FILE
    assert found[0].meta["note"] == "r1"
    assert [r.run_id for r in completed_runs(tmp_path, ["r3", "r1", "r3"])] == ["r1", "r3"]


def test_completed_runs_of_an_empty_data_dir(tmp_path: Path) -> None:
    assert completed_runs(tmp_path / "never-created") == []
    with pytest.raises(FileNotFoundError, match="r9"):
        completed_runs(tmp_path / "never-created", ["r9"])


def test_unknown_run_ids_raise_naming_them(tmp_path: Path, source: Source) -> None:
    writer = RunWriter(tmp_path, "r1")
    writer.commit(META)
    with pytest.raises(FileNotFoundError) as info:
        completed_runs(tmp_path, ["r1", "nope-1", "nope-2"])
    message = str(info.value)
    assert "nope-1" in message and "nope-2" in message
    assert RUN_JSON in message


def test_incomplete_and_hidden_run_dirs_are_ignored(tmp_path: Path, source: Source) -> None:
    done = RunWriter(tmp_path, "done")
    done.commit(META)
    open_run = RunWriter(tmp_path, "open")  # never committed
    open_run.add_item(make_item(source, url(1), run_id="open"))
    # run.json without items.parquet (half-copied by hand) does not count either.
    half = tmp_path / RUNS_DIR / "half"
    half.mkdir()
    (half / RUN_JSON).write_text(json.dumps({"run_id": "half"}))
    # A hidden directory, complete or not, is never a run.
    dotted = tmp_path / RUNS_DIR / ".staging"
    dotted.mkdir()
    (dotted / RUN_JSON).write_text("{}")
    (dotted / ITEMS_FILE).write_bytes((done.dir / ITEMS_FILE).read_bytes())

    assert [r.run_id for r in completed_runs(tmp_path)] == ["done"]
    for run_id in ("open", "half", ".staging"):
        with pytest.raises(FileNotFoundError, match=re.escape(run_id)):
            completed_runs(tmp_path, [run_id])
    open_run.discard()


CRASH = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from helpers_config import source_doc
    from helpers_runs import make_item, make_rejection
    from pipeline.registry.config import Source
    from pipeline.runs.writer import RunWriter, _BATCH_ROWS

    source = Source.model_validate(source_doc("aurora-art"))
    writer = RunWriter(Path(sys.argv[1]), sys.argv[2])
    for i in range(_BATCH_ROWS + 50):  # one batch reaches the disk
        writer.add_item(make_item(source, f"https://cdn.aurora-art.example/img/{i}.jpg"))
        writer.add_rejection(make_rejection(source.id, f"https://x.example/{i}", "fetch_failed"))
    writer.items.flush()
    print("wrote", flush=True)
    os._exit(1)  # a crash: no commit, no discard, no atexit
    """
)


def test_a_crashed_run_is_never_listed(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, str(tmp_path), "crashed", str(TESTS_DIR)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.strip() == "wrote"
    run_dir = tmp_path / RUNS_DIR / "crashed"
    assert run_dir.is_dir()
    assert (run_dir / f".{ITEMS_FILE}.partial").stat().st_size > 0  # rows did reach the disk
    assert not list(tmp_path.rglob(ITEMS_FILE))
    assert not list(tmp_path.rglob(REJECTIONS_FILE))
    assert not list(tmp_path.rglob(RUN_JSON))
    assert completed_runs(tmp_path) == []
    with pytest.raises(FileNotFoundError, match="crashed"):
        completed_runs(tmp_path, ["crashed"])

    # A later run in the same data dir is unaffected.
    RunWriter(tmp_path, "next").commit(META)
    assert [r.run_id for r in completed_runs(tmp_path)] == ["next"]


# --------------------------------------------------------------------------- abandoned runs


def test_sweep_removes_runs_whose_writer_died_and_spares_live_and_complete_ones(
    tmp_path: Path, source: Source
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    proc = subprocess.run(  # a writer killed mid-run: its partial rows reached the disk
        [sys.executable, "-c", CRASH, str(tmp_path), "20260101T000000Z-dead00", str(TESTS_DIR)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 1, proc.stderr
    live = RunWriter(tmp_path, "20260101T000000Z-live00")
    live.add_item(make_item(source, url(1)))
    done = RunWriter(tmp_path, "20260101T000000Z-done00")
    done.commit(META)
    young = RunWriter(tmp_path, new_run_id())
    young.discard()  # dead, but too young to be told from a writer still starting
    assert sweep_abandoned_runs(tmp_path) == ["20260101T000000Z-dead00"]
    left = sorted(p.name for p in (tmp_path / RUNS_DIR).iterdir())
    assert left == ["20260101T000000Z-done00", "20260101T000000Z-live00", young.run_id]
    assert sweep_abandoned_runs(tmp_path, now=later) == [young.run_id]
    assert sweep_abandoned_runs(tmp_path, now=later) == []  # the live writer's lock holds
    live.discard()
    assert sweep_abandoned_runs(tmp_path, now=later) == ["20260101T000000Z-live00"]
    assert [r.run_id for r in completed_runs(tmp_path)] == ["20260101T000000Z-done00"]
