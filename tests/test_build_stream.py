"""pipeline.build.stream and the streaming build: any batch, partition or bucket size gives the
same bytes, and the vectorised filters give the row-by-row verdicts."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers_config import source_doc, write_config
from helpers_runs import FETCHED_AT, make_item, write_run

from pipeline.build import stream
from pipeline.build.builder import Tuning, build_manifest
from pipeline.build.filters import (
    BuildFilter,
    ConsentFilter,
    DedupeFilter,
    LicenceFilter,
    TakedownFilter,
)
from pipeline.registry.takedowns import Takedown
from pipeline.runs.schema import ITEMS_SCHEMA

LICENCES = ["CC-BY-4.0", "CC0-1.0", "CC-BY-NC-4.0", "Not-A-Licence", "LicenseRef-x", " ",
            "CC-BY-4.0 OR MIT"]
TINY = Tuning(batch_rows=3, key_rows=7, memory_rows=7, sort_rows=5)
WIDE = Tuning(batch_rows=10_000, key_rows=10_000, memory_rows=10_000, sort_rows=10_000)


def _takedown(kind: str, value: str, n: int = 1) -> Takedown:
    return Takedown(f"T-{n:06d}", kind, value, 31 if kind == "pdq" else None, "asked", None,
                    datetime(2026, 1, 1, tzinfo=UTC))


@pytest.fixture
def world(tmp_path: Path):
    """Four runs of three sources (one revoked), shared content, repeated URLs, many licences."""
    config = write_config(
        tmp_path / "configs",
        [source_doc("aurora"), source_doc("birch", status="revoked"), source_doc("cedar")],
    )
    rng = random.Random(7)
    data = tmp_path / "data"
    for r in range(4):
        items = []
        for i in range(30):
            source = config.sources[rng.choice(["aurora", "birch", "cedar", "cedar"])]
            url = f"https://{source.id}.example/gallery/{rng.randrange(100)}.jpg"
            items.append(make_item(
                source, url, content=str(rng.randrange(60)).encode(),
                licence=rng.choice(LICENCES[:2] * 4 + LICENCES),
                creator=rng.choice([None] * 8 + ["Ann Example", "  ann   EXAMPLE "]),
                fetched_at=FETCHED_AT + timedelta(days=r, seconds=i),
                pdq=rng.choice([None, "f" * 64, "0" * 64]),
            ))
        write_run(data, f"2026010{r + 1}T000000Z-run{r}", items)
    return config, data


def _files(version: Path) -> dict[str, bytes]:
    return {p.relative_to(version).as_posix(): p.read_bytes()
            for p in sorted(version.rglob("*.parquet"))}


def _doc(version: Path) -> dict:
    doc = json.loads((version / "manifest.json").read_text())
    for key in ("created_at", "version", "previous_version", "name"):
        doc.pop(key, None)
    return doc


def test_tiny_batches_partitions_and_buckets_give_the_same_bytes(world, tmp_path, monkeypatch):
    config, data = world
    takedowns = [_takedown("creator", "ann example"), _takedown("sha256", "0" * 64, 2)]
    one = build_manifest(config, data, "one", part_rows=5, takedowns=takedowns,
                         tuning=WIDE)
    spilled: list[str] = []
    real_add = stream.Spill._add

    def spy(self, part, table):
        if self.folder is not None:
            spilled.append(self.name)
        real_add(self, part, table)

    monkeypatch.setattr(stream.Spill, "_add", spy)
    many = build_manifest(config, data, "many", part_rows=5, takedowns=takedowns, tuning=TINY)
    # Every spill was used: key partitions of the global filters, both sorters.
    assert {"keys", "kept", "excluded", "exclusions"} <= set(spilled)
    assert _files(one.path) == _files(many.path)
    assert len([f for f in _files(one.path) if f.startswith("data/")]) > 2
    assert _doc(one.path)["counts"] == _doc(many.path)["counts"]
    assert _doc(one.path)["filters"] == _doc(many.path)["filters"]
    assert _doc(one.path)["consent_changed"] == _doc(many.path)["consent_changed"]
    assert not (many.path / ".spill").exists()


def test_removed_since_previous_is_the_same_streamed(world):
    config, data = world
    wide = WIDE
    build_manifest(config, data, "a", tuning=wide)
    build_manifest(config, data, "b", tuning=TINY)
    takedowns = [_takedown("source", "cedar")]
    a2 = build_manifest(config, data, "a", takedowns=takedowns, tuning=wide)
    b2 = build_manifest(config, data, "b", takedowns=takedowns, tuning=TINY)
    removed = _doc(a2.path)["removed_since_previous"]
    assert removed.get("takedown")  # first exclusion of the row_id, in filter order
    assert removed == _doc(b2.path)["removed_since_previous"]
    assert _files(a2.path) == _files(b2.path)


def _random_table(config, rows: int, seed: int) -> pa.Table:
    rng = random.Random(seed)
    items = []
    for _ in range(rows):
        source_id = rng.choice(["aurora", "birch", "cedar", "gone"])
        source = config.sources[source_id if source_id != "gone" else "aurora"]
        items.append({**make_item(
            source, f"https://{source_id}.example/g/{rng.randrange(rows // 3)}.jpg",
            content=str(rng.randrange(rows // 4)).encode(), licence=rng.choice(LICENCES),
            creator=rng.choice([None, "Ann Example", "Bo"]),
            pdq=rng.choice([None, "f" * 64, "f" * 60 + "0000", "zz"]),
            fetched_at=FETCHED_AT + timedelta(seconds=rng.randrange(5)),
        ), "source_id": source_id, "run_id": rng.choice(["r1", "r2"])})
    return pa.Table.from_pylist(items, ITEMS_SCHEMA)


def _verdicts(mask, codes, details) -> tuple[list[bool], list[str], list[str | None]]:
    def plain(values):
        return values.to_pylist() if hasattr(values, "to_pylist") else list(values)
    return plain(mask), plain(codes), plain(details)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_vectorised_filters_match_the_row_by_row_rule(world, seed):
    config, _ = world
    table = _random_table(config, 400, seed)
    takedowns = [_takedown("creator", "ann example"), _takedown("pdq", "f" * 64, 2),
                 _takedown("url-prefix", "https://cedar.example/g/1", 3)]
    steps = [
        lambda: ConsentFilter(config, date.today(), {"cedar"}),
        lambda: TakedownFilter(takedowns),
        lambda: LicenceFilter(["CC-BY-4.0", "CC0-1.0", "LicenseRef-x"]),
        DedupeFilter,
    ]
    for make in steps:
        fast, slow = make(), make()
        prepared = fast.prepare(table)
        assert prepared.equals(slow.prepare(table))
        got = _verdicts(*fast.decide(prepared))
        want = _verdicts(*BuildFilter.decide(slow, prepared))
        assert got == want, fast.name
        assert got[1], f"{fast.name} dropped nothing: the table tests too little"


def test_sort_key_orders_like_sort_by_with_nulls_last():
    rng = random.Random(3)
    words = ["", "a", "ab", "b", "a\u00e9", None]
    table = pa.table({
        "x": [rng.choice(words) for _ in range(300)],
        "y": [rng.choice(words) for _ in range(300)],
        stream.POS: np.arange(300, dtype=np.int64),
    })
    keys = stream.sort_key(table, ["x", "y"])
    by_key = sorted(range(300), key=lambda i: (keys[i].as_py(), i))
    by_arrow = table.sort_by([("x", "ascending"), ("y", "ascending"),
                              (stream.POS, "ascending")])[stream.POS].to_pylist()
    assert by_key == by_arrow


def test_hash_partitions_put_equal_values_together():
    values = [f"https://x.example/{i % 97}.jpg" for i in range(5000)] + [None] * 3
    table = pa.table({"url": values, "s": ["a", "b"] * 2501 + ["a"]})
    parts = stream.partition_of(table, ["url", "s"], 8)
    seen: dict[tuple, int] = {}
    for key, part in zip(zip(values, table["s"].to_pylist(), strict=True), parts, strict=True):
        assert seen.setdefault(key, part) == part
    counts = np.bincount(parts, minlength=8)
    assert counts.min() > 300  # spread, not all in one


def test_range_sorter_and_part_writer_equal_one_write_table(tmp_path):
    rng = np.random.default_rng(0)
    n = 1234
    table = pa.table({
        "source_id": pa.array(rng.choice(["a", "b", "c"], n)),
        "url": pa.array([f"u{v}" for v in rng.integers(0, 300, n)]),
        "v": pa.array(rng.integers(0, 10, n)),
        stream.POS: pa.array(np.arange(n, dtype=np.int64)),
    })
    order = ["source_id", "url", "v"]
    sample = stream.KeySample(n)
    sample.add(table, order[:2])
    sorter = stream.RangeSorter(tmp_path / "spill", order, order[:2], sample.bounds(n, 100), "t")
    for start in range(0, n, 77):
        sorter.add(table.slice(start, 77))
    (tmp_path / "a").mkdir()
    writer = stream.PartWriter(tmp_path / "a", table.schema.remove(3), 500,
                               lambda i: f"p{i}.parquet", group_rows=64)
    for piece in sorter.sorted_tables():
        writer.write(piece)
    assert writer.close() == 3
    whole = table.sort_by([(c, "ascending") for c in [*order, stream.POS]]).drop_columns(
        [stream.POS])
    for i in range(3):
        expected = tmp_path / f"e{i}.parquet"
        pq.write_table(whole.slice(i * 500, 500), expected, row_group_size=64,
                       **stream.PARQUET_OPTIONS)
        assert (tmp_path / "a" / f"p{i}.parquet").read_bytes() == expected.read_bytes()


def _kept_row_with_duplicates(version: Path) -> tuple[str, str]:
    """(url, sha256) of a published row that other candidates duplicate."""
    rows = pq.read_table(version / "data").to_pylist()
    dups = [e for e in pq.read_table(version / "audit" / "exclusions.parquet").to_pylist()
            if e["reason"] == "duplicate"]
    for row in rows:
        if any(f"kept row_id {row['row_id']}" in e["detail"] for e in dups):
            return row["url"], row["sha256"]
    raise AssertionError("no kept row with duplicates")


@pytest.mark.parametrize("positions", ["recorded", "missing", "garbled"])
def test_next_version_re_uses_the_previous_rows_with_the_same_bytes(world, tmp_path, caplog,
                                                                    positions):
    """A takedown of a row with duplicates: one duplicate is promoted (a new row merged into
    the previous rows); the version equals a build from scratch, byte for byte, whether the
    previous version's row positions are recorded (pipeline.build.reuse.write_positions) or
    the rows are matched by their order keys (no such record, or one that cannot be read)."""
    import logging
    import shutil

    from pipeline.build.reuse import positions_path

    config, data = world
    v1 = build_manifest(config, data, "m", part_rows=5, tuning=WIDE)
    assert positions_path(v1.path).is_file()
    if positions == "missing":
        positions_path(v1.path).unlink()
    elif positions == "garbled":
        positions_path(v1.path).write_bytes(b"not arrow")
    url, _ = _kept_row_with_duplicates(v1.path)
    takedowns = [_takedown("url", url), _takedown("creator", "ann example", 2)]
    with caplog.at_level(logging.DEBUG, logger="pipeline.build.builder"):
        v2 = build_manifest(config, data, "m", part_rows=5, takedowns=takedowns, tuning=WIDE)
    assert "re-using the rows of v1" in caplog.text
    assert "(0 new rows" not in caplog.text
    assert ("by its recorded row positions" in caplog.text) == (positions == "recorded")
    fresh = tmp_path / "fresh"
    shutil.copytree(data / "runs", fresh / "runs")
    scratch = build_manifest(config, fresh, "m", part_rows=5, takedowns=takedowns, tuning=WIDE)
    assert _files(v2.path) == _files(scratch.path)
    assert _doc(v2.path)["counts"] == _doc(scratch.path)["counts"]
    # Taking the takedowns back restores rows the previous version lacks: still the same bytes.
    v3 = build_manifest(config, data, "m", part_rows=5, tuning=WIDE)
    assert _files(v3.path) == _files(v1.path)


def test_recorded_positions_hold_when_a_later_run_is_added(world, tmp_path, caplog):
    """The previous version's runs are the first inputs, unchanged: its recorded row
    positions still name the same candidates, and the new run's rows (new rows, rows that
    supersede previous ones) are merged in by (order key, position): the bytes of a build
    from scratch."""
    import logging
    import shutil

    config, data = world
    runs = sorted(p.name for p in (data / "runs").iterdir())
    build_manifest(config, data, "m", runs[:3], part_rows=7, tuning=WIDE)
    with caplog.at_level(logging.DEBUG, logger="pipeline.build.builder"):
        v2 = build_manifest(config, data, "m", part_rows=7, tuning=WIDE)
    assert "by its recorded row positions" in caplog.text
    fresh = tmp_path / "fresh"
    shutil.copytree(data / "runs", fresh / "runs")
    scratch = build_manifest(config, fresh, "m", part_rows=7, tuning=WIDE)
    assert _files(v2.path) == _files(scratch.path)
    assert _doc(v2.path)["counts"] == _doc(scratch.path)["counts"]
    from pipeline.build.reuse import positions_path
    assert positions_path(v2.path).read_bytes() == positions_path(scratch.path).read_bytes()


def test_re_use_is_refused_when_a_run_changed(world, caplog):
    import logging

    config, data = world
    build_manifest(config, data, "m", tuning=WIDE)
    run = sorted((data / "runs").iterdir())[0]
    (run / "run.json").write_text((run / "run.json").read_text())  # same items: still re-used
    items = pq.read_table(run / "items.parquet")
    pq.write_table(items.slice(1), run / "items.parquet")  # a changed input: not re-used
    with caplog.at_level(logging.DEBUG, logger="pipeline.build.builder"):
        build_manifest(config, data, "m", tuning=WIDE)
    assert "re-using" not in caplog.text


def test_urls_the_takedown_matcher_takes_as_normal_are_normal():
    """Only URLs normalise_url leaves unchanged skip it (the fast path of the takedown matcher
    and of the impact index), and the vectorised form equals normalise_url everywhere."""
    from pipeline.safety.urls import is_normal, normalise_url, normalise_urls

    rng = random.Random(1)
    pieces = [*"abcXYZ09-._~!$&'()*+,;=:@/?%#. \u00e9[]", "/./", "/../", "%41", "%2f", ":443",
              "@", ".."]
    hosts = ["cdn.src1.example", "A.example", "x..y", "host.", "h_st.com", "a-.b",
             "user@h.com", "h.com:8080", "xn--bcher-kva.ch", "x" * 70 + ".com"]
    urls = [rng.choice(["https://", "http://", "HTTPS://", "ftp://"]) + rng.choice(hosts)
            + rng.choice(["", "/"]) + "".join(rng.choice(pieces) for _ in range(rng.randrange(9)))
            for _ in range(20_000)]
    urls += ["https://cdn.src1.example/img/0/17.jpg", "https://a.b/x/.", "https://a.b/?"]
    array = pa.array(urls)
    plain = is_normal(array).to_pylist()
    assert sum(plain) > 500
    assert [u for u, p in zip(urls, plain, strict=True) if p and normalise_url(u) != u] == []
    assert plain[-3:] == [True, False, False]
    def reference(url: str) -> str:
        try:
            return normalise_url(url)
        except ValueError:  # unparseable (e.g. "[" in the host): kept as it is
            return url

    assert normalise_urls(array).to_pylist() == [reference(u) for u in urls]


def test_bench_build_data_builds_and_the_raw_baseline_runs(tmp_path, monkeypatch):
    """bench/build.py's generated runs are valid items and build; not timed."""
    import sys

    repo = Path(__file__).resolve().parents[1]
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    from bench import build as bench_build

    monkeypatch.setattr(bench_build, "RUN_ROWS", 1500)
    bench_build.write_configs(tmp_path / "configs")
    runs = bench_build.generate(tmp_path / "data", 4000)
    assert len(runs) == 3
    table = pq.read_table(runs[1] / "items.parquet")
    assert table.schema.equals(ITEMS_SCHEMA.remove_metadata(), check_metadata=False)
    assert len(table["signals"][0].as_py()) == len(bench_build.CHECKS)
    ours = bench_build.child_ours(str(tmp_path / "configs"), str(tmp_path / "data"), "b")
    raw = bench_build.child_raw(str(tmp_path / "data"), str(tmp_path / "raw"))
    assert raw["rows"] == ours["candidates"] == 4000
    assert 0 < ours["kept"] < 4000  # revoked source, refused licences, duplicates, refetches


def test_latest_filter_decides_only_repeated_or_named_urls_with_the_same_verdicts():
    from pipeline.build.filters import LatestFetchFilter
    from pipeline.build.latest import EVENTS_SCHEMA, latest_verdicts

    rng = random.Random(5)
    n = 3000
    table = pa.table({
        "source_id": pa.array([rng.choice(["a", "b"]) for _ in range(n)]),
        "url": pa.array([f"https://x.example/{rng.randrange(2000)}.jpg" for _ in range(n)]),
        "fetched_at": pa.array([FETCHED_AT + timedelta(seconds=rng.randrange(4))
                                for _ in range(n)], pa.timestamp("us", tz="UTC")),
        "run_id": pa.array([rng.choice(["r1", "r2", "r3"]) for _ in range(n)]),
    })
    events = pa.table({
        "source_id": ["a", "b"], "url": ["https://x.example/7.jpg", "https://x.example/9.jpg"],
        "at": pa.array([FETCHED_AT, FETCHED_AT], pa.timestamp("us", tz="UTC")),
        "reason": ["gone", "gone"], "detail": ["HTTP 404", "HTTP 410"], "run_id": ["r9", "r9"],
    }, schema=EVENTS_SCHEMA)
    got = _verdicts(*LatestFetchFilter(events).decide(table))
    want = _verdicts(*latest_verdicts(table, events))
    assert got == want
    assert "superseded" in got[1] and "gone" in got[1]
