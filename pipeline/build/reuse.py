"""A version's rows re-used from the previous version: the fast way to the next version after a
takedown or a revocation.

The previous version's part files already hold its rows in the published order. When the new
build's kept rows are nearly all among them (a takedown or a revocation removes rows; dedupe may
promote a few), the new parts are the previous rows that stay, read front to back, with the few
new rows merged in at their place: no full read of the runs, no sort. The bytes are those a
build from scratch writes, because the rows are the same values in the same order, written by
the same :class:`pipeline.build.stream.PartWriter`. So it is used only when that is certain:
the same schema version, every run the previous version was built from an input now with the
same items.parquet sha256, every kept row's order key unique among all candidates (so the
previous row with that key is that candidate), and few new rows; otherwise the build takes the
ordinary path.

Faster still: every build that holds its key columns in memory records which candidate each of
its published rows is (:func:`write_positions`, ``manifests/<name>/.positions/v<N>.arrow``,
beside the versions, with the inputs and part checksums it holds for). When the previous
version's runs are this build's first inputs, unchanged, its row i is candidate
``positions[i]`` again: the rows that stay are a lookup (:func:`plan_from_positions`), no order
key of any candidate or previous row is made or matched, and the new rows are merged in by
(order key, ``_pos``), the order of a build from scratch, ties included. A missing, unreadable
or stale record only means the way by order keys.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import SCHEMA_VERSION
from pipeline.build.stream import POS, buckets_of, conform, sort_key
from pipeline.build.versions import DATA_DIR, read_manifest
from pipeline.runs.schema import ITEMS_SCHEMA

logger = logging.getLogger(__name__)

MAX_NEW_SHARE = 0.02  # more new rows than this share of the kept: the ordinary path
MAX_NEW_ROWS = 20_000
POSITIONS_DIR = ".positions"  # beside the versions: each version's rows' candidate positions
# (previous parts, keep mask over their rows, the new rows in order with "_key", each previous
# row's candidate position)
Plan = tuple[list[Path], pa.Array, pa.Table, np.ndarray]


def reusable(previous_dir: Path, inputs: list[dict[str, Any]]) -> bool:
    """Whether the previous version was built from runs that are all inputs now, unchanged."""
    try:
        before = read_manifest(previous_dir)
    except (FileNotFoundError, ValueError):
        return False
    if before.get("schema_version") != SCHEMA_VERSION:
        logger.debug("no re-use: the previous version has another schema version")
        return False
    now = {i["run_id"]: i["items_sha256"] for i in inputs}
    if any(now.get(i.get("run_id")) != i.get("items_sha256") for i in before.get("inputs", [])):
        logger.debug("no re-use: a run the previous version was built from changed or is gone")
        return False
    return True


def plan(
    previous_dir: Path, order: tuple[str, ...], kept: pa.Table, candidates: pa.ChunkedArray
) -> Plan | None:
    """(previous parts, keep mask over their rows, the new rows' keys and positions in order,
    each previous row's candidate position) or None when re-use is not certain or not worth
    it. ``kept`` has the ``order`` columns and ``_pos`` of every kept row, ``candidates`` the
    binary order key of every candidate: no kept row's key may be another candidate's too, so
    that the previous row with a kept key is the candidate with it."""
    parts = sorted((Path(previous_dir) / DATA_DIR).glob("part-*.parquet"))
    if isinstance(candidates, pa.ChunkedArray):  # a take from one chunk is several times faster
        candidates = candidates.combine_chunks()
    kept_pos = kept[POS].to_numpy()
    kept_keys = candidates.take(pa.array(kept_pos))  # a candidate's key is at its _pos
    if pc.count_distinct(candidates).as_py() != len(candidates):
        counts = pc.value_counts(candidates)
        shared = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
        if pc.any(pc.is_in(kept_keys, value_set=shared)).as_py():
            logger.debug("no re-use: a kept row's order key is another candidate's too")
            return None
    previous = pa.chunked_array(
        [sort_key(pq.read_table(p, columns=list(order)), order) for p in parts] or [[]],
        pa.binary()).combine_chunks()
    # Each previous row's candidate: the first with its key. A kept key is no other
    # candidate's, so a previous row holding one is that kept candidate; a previous row whose
    # key is shared or no candidate's does not stay.
    at = pc.fill_null(pc.index_in(previous, value_set=candidates), -1).to_numpy(
        zero_copy_only=False)
    is_kept = np.zeros(len(candidates) + 1, dtype=bool)
    is_kept[kept_pos] = True
    stays_np = is_kept[at]  # at -1 reads the padding False
    held = at[stays_np]
    seen = np.zeros(len(candidates), dtype=bool)
    seen[held] = True
    if int(seen.sum()) != len(held):
        logger.debug("no re-use: the previous rows' order keys are not unique")
        return None
    new = kept.filter(pa.array(~seen[kept_pos]))
    if len(new) > _max_new(kept.num_rows):
        logger.debug("no re-use: %d kept rows are not in the previous version", len(new))
        return None
    return parts, pa.array(stays_np), _with_keys(new, order), at


def plan_from_positions(
    previous_dir: Path, order: tuple[str, ...], kept: pa.Table, candidates: int,
    positions: np.ndarray,
) -> Plan | None:
    """:func:`plan` when the previous version's row positions are known
    (:func:`previous_positions`): its row i is candidate ``positions[i]``, so no order key of
    any candidate or previous row is needed; the few new rows are merged in by (order key,
    ``_pos``), the order of a build from scratch, ties included."""
    parts = sorted((Path(previous_dir) / DATA_DIR).glob("part-*.parquet"))
    if len(positions) and (positions.min() < 0 or positions.max() >= candidates):
        return None
    kept_pos = kept[POS].to_numpy()
    is_kept = np.zeros(candidates, dtype=bool)
    is_kept[kept_pos] = True
    stays = is_kept[positions]
    seen = np.zeros(candidates, dtype=bool)
    seen[positions[stays]] = True
    if int(seen.sum()) != int(stays.sum()):
        logger.debug("no re-use: a candidate is twice in the previous version")
        return None
    new = kept.filter(pa.array(~seen[kept_pos]))
    if len(new) > _max_new(kept.num_rows):
        logger.debug("no re-use: %d kept rows are not in the previous version", len(new))
        return None
    return parts, pa.array(stays), _with_keys(new, order), positions


def _max_new(kept: int) -> float:
    return min(MAX_NEW_ROWS, max(1000, MAX_NEW_SHARE * kept))


def _with_keys(new: pa.Table, order: tuple[str, ...]) -> pa.Table:
    """The new rows with their merge key (:func:`_merge_keys`), sorted by it."""
    keys = _merge_keys(new, order, new[POS].to_numpy())
    return new.append_column("_key", keys).sort_by([("_key", "ascending")])


def _merge_keys(table: pa.Table, order: tuple[str, ...], pos: np.ndarray) -> pa.Array:
    """Binary keys in the order of a build from scratch: the order key, then ``_pos`` as 8
    big-endian bytes (the tie-break of :class:`pipeline.build.stream.RangeSorter`)."""
    n = len(pos)
    suffix = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(8), n, [None, pa.py_buffer(np.ascontiguousarray(pos, dtype=">u8").tobytes())])
    return pc.binary_join_element_wise(sort_key(table, order), suffix.cast(pa.binary()), b"")


def positions_path(version_dir: Path) -> Path:
    """Where a version's row positions are kept: beside the versions, not in one (a version
    folder's files are its checksummed contents)."""
    version_dir = Path(version_dir)
    return version_dir.parent / POSITIONS_DIR / f"{version_dir.name}.arrow"


def _position_facts(inputs: list[dict[str, Any]], files: dict[str, Any]) -> dict[str, Any]:
    return {
        "inputs": [[i["run_id"], i["items_sha256"]] for i in inputs],
        "parts": {k: v["sha256"] for k, v in sorted(files.items())
                  if k.startswith(f"{DATA_DIR}/")},
    }


def write_positions(version_dir: Path, positions: np.ndarray, inputs: list[dict[str, Any]],
                    files: dict[str, Any]) -> None:
    """Record which candidate each published row of the version is (``positions[i]``: row i
    of its parts in order), with the inputs and part checksums they hold for, so that the next
    build re-uses the version without matching order keys. Derived data: a missing or stale
    file only means the slower way (:func:`previous_positions` checks it)."""
    path = positions_path(version_dir)
    path.parent.mkdir(exist_ok=True)
    meta = {"clearance_positions": json.dumps(_position_facts(inputs, files))}
    table = pa.table({POS: pa.array(positions, pa.int64())}).replace_schema_metadata(meta)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    os.replace(tmp, path)


def previous_positions(previous_dir: Path, inputs: list[dict[str, Any]]) -> np.ndarray | None:
    """The previous version's row positions (:func:`write_positions`) when they hold for
    this build: recorded for exactly that version's part files, and its input runs are the
    first of this build's inputs, unchanged (so every candidate keeps its position)."""
    path = positions_path(previous_dir)
    try:
        before = read_manifest(previous_dir)
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()
        facts = json.loads((table.schema.metadata or {})[b"clearance_positions"])
    except (OSError, ValueError, KeyError, pa.ArrowException):
        return None
    if facts != _position_facts(before.get("inputs", []), before.get("files", {})):
        logger.debug("no recorded positions: they are not of %s's parts", previous_dir.name)
        return None
    if facts["inputs"] != _position_facts(inputs, {})["inputs"][:len(facts["inputs"])]:
        logger.debug("no recorded positions: the inputs before this build's changed")
        return None
    positions = table[POS].to_numpy()
    if len(positions) != (before.get("counts") or {}).get("kept"):
        return None
    return np.asarray(positions, dtype=np.int64)


def rows(
    parts: list[Path], stays: pa.Array, new: pa.Table, previous: np.ndarray,
    run_paths: list[Path], order: tuple[str, ...], published: list[np.ndarray] | None = None,
) -> Iterator[pa.Table]:
    """The kept rows in the published order: the previous parts' rows that stay, with the new
    rows (read from the runs) merged in at their place by (order key, ``_pos``).
    ``previous``: each previous row's candidate position; ``published``, when given, gets the
    candidate positions of the rows yielded, in order."""
    fresh = _fresh_rows(new, run_paths)
    fresh_keys = new["_key"].combine_chunks()
    fresh_pos = new[POS].to_numpy()
    done = 0  # fresh rows emitted
    offset = 0  # rows of the previous parts read

    def emit_fresh(start: int, count: int) -> pa.Table:
        if published is not None:
            published.append(fresh_pos[start:start + count])
        return fresh.slice(start, count)

    for part in parts:
        file = pq.ParquetFile(part)
        for group in range(file.num_row_groups):
            table = conform(file.read_row_group(group), ITEMS_SCHEMA)
            n = table.num_rows
            keep = stays.slice(offset, n)
            pos = previous[offset:offset + n]
            if not pc.all(keep).as_py():  # most groups keep every row: no copy of them
                table = table.filter(keep)
                pos = pos[keep.to_numpy(zero_copy_only=False)]
            offset += n
            if not table.num_rows:
                continue
            if done == fresh.num_rows:  # no new row left to merge in
                if published is not None:
                    published.append(pos)
                yield table
                continue
            keys = _merge_keys(table.select(list(order)), order, pos)
            last = keys[len(keys) - 1]
            upto = done + int(pc.sum(pc.less(fresh_keys.slice(done), last)).as_py() or 0)
            if upto == done:
                if published is not None:
                    published.append(pos)
                yield table
                continue
            # Each new row goes before the first previous row whose key is greater.
            at = buckets_of(fresh_keys.slice(done, upto - done), keys)
            start = 0
            for i, where in enumerate(at.tolist()):
                if where > start:
                    if published is not None:
                        published.append(pos[start:where])
                    yield table.slice(start, where - start)
                    start = where
                yield emit_fresh(done + i, 1)
            if start < table.num_rows:
                if published is not None:
                    published.append(pos[start:])
                yield table.slice(start)
            done = upto
    if done < fresh.num_rows:
        yield emit_fresh(done, fresh.num_rows - done)


def _fresh_rows(new: pa.Table, run_paths: list[Path]) -> pa.Table:
    """The full rows of the new kept rows, in ``new``'s order, read from the row groups of the
    runs that hold them."""
    if not new.num_rows:
        return ITEMS_SCHEMA.empty_table()
    wanted = new[POS].to_numpy()
    pieces: list[pa.Table] = []
    found: list[np.ndarray] = []
    offset = 0
    for path in run_paths:
        file = pq.ParquetFile(path)
        for group in range(file.num_row_groups):
            n = file.metadata.row_group(group).num_rows
            inside = wanted[(wanted >= offset) & (wanted < offset + n)]
            if len(inside):
                table = conform(file.read_row_group(group), ITEMS_SCHEMA)
                pieces.append(table.take(pa.array(np.sort(inside) - offset)))
                found.append(np.sort(inside))
            offset += n
    table = pa.concat_tables(pieces)
    positions = np.concatenate(found)  # ascending: runs, row groups and rows in order
    return table.take(pa.array(np.searchsorted(positions, wanted))).combine_chunks()
