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
"""

from __future__ import annotations

import logging
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
) -> tuple[list[Path], pa.Array, pa.Table] | None:
    """(previous parts, keep mask over their rows, the new rows' keys and positions in order)
    or None when re-use is not certain or not worth it. ``kept`` has the ``order`` columns and
    ``_pos`` of every kept row, ``candidates`` the binary order key of every candidate: no
    kept row's key may be another candidate's too, so that the previous row with a kept key is
    the candidate with it."""
    parts = sorted((Path(previous_dir) / DATA_DIR).glob("part-*.parquet"))
    kept_keys = candidates.take(kept[POS]).combine_chunks()  # a candidate's key is at its _pos
    if pc.count_distinct(candidates).as_py() != len(candidates):
        counts = pc.value_counts(candidates)
        shared = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
        if pc.any(pc.is_in(kept_keys, value_set=shared)).as_py():
            logger.debug("no re-use: a kept row's order key is another candidate's too")
            return None
    previous = pa.chunked_array(
        [sort_key(pq.read_table(p, columns=list(order)), order) for p in parts] or [[]],
        pa.binary()).combine_chunks()
    if pc.count_distinct(previous).as_py() != len(previous):
        logger.debug("no re-use: the previous rows' order keys are not unique")
        return None
    known = pc.is_in(kept_keys, value_set=previous)
    new = kept.append_column("_key", kept_keys).filter(pc.invert(known))
    if len(new) > min(MAX_NEW_ROWS, max(1000, MAX_NEW_SHARE * kept.num_rows)):
        logger.debug("no re-use: %d kept rows are not in the previous version", len(new))
        return None
    stays = pc.is_in(previous, value_set=kept_keys)
    new = new.sort_by([("_key", "ascending")])
    return parts, stays, new


def rows(
    parts: list[Path], stays: pa.Array, new: pa.Table, run_paths: list[Path],
    order: tuple[str, ...],
) -> Iterator[pa.Table]:
    """The kept rows in the published order: the previous parts' rows that stay, with the new
    rows (read from the runs) merged in at their place."""
    fresh = _fresh_rows(new, run_paths)
    fresh_keys = new["_key"].combine_chunks()
    done = 0  # fresh rows emitted
    offset = 0  # rows of the previous parts read
    for part in parts:
        file = pq.ParquetFile(part)
        for group in range(file.num_row_groups):
            table = conform(file.read_row_group(group), ITEMS_SCHEMA)
            n = table.num_rows
            table = table.filter(stays.slice(offset, n))
            offset += n
            if not table.num_rows:
                continue
            if done == fresh.num_rows:  # no new row left to merge in
                yield table
                continue
            keys = sort_key(table.select(list(order)), order)
            last = keys[len(keys) - 1]
            upto = done + int(pc.sum(pc.less(fresh_keys.slice(done), last)).as_py() or 0)
            if upto == done:
                yield table
                continue
            # Each new row goes before the first previous row whose key is greater.
            at = buckets_of(fresh_keys.slice(done, upto - done), keys)
            start = 0
            for i, where in enumerate(at.tolist()):
                if where > start:
                    yield table.slice(start, where - start)
                    start = where
                yield fresh.slice(done + i, 1)
            if start < table.num_rows:
                yield table.slice(start)
            done = upto
    if done < fresh.num_rows:
        yield fresh.slice(done)


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
