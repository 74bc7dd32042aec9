"""Rows removed since the previous version, as counts per reason: never which rows.

A published list of what left a dataset is a map to it (LAION's removal diff), so
``manifest.json`` carries only ``removed_since_previous``: for every ``row_id`` of the previous
version that the new one does not publish, the reason of its first build exclusion (in filter
order), or ``not_in_inputs`` when no input run holds it any more.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.build.versions import DATA_DIR

NOT_IN_INPUTS = "not_in_inputs"


def removed_since(previous_dir: Path, kept: pa.Table, excluded: pa.Table) -> dict[str, int]:
    """Counts per reason of the previous version's rows that ``kept`` no longer holds;
    ``excluded`` is the build's exclusion rows in filter order (unsorted)."""
    parts = sorted((Path(previous_dir) / DATA_DIR).glob("part-*.parquet"))
    if not parts:
        return {}
    before = pc.unique(pa.concat_arrays(
        [pq.read_table(p, columns=["row_id"])["row_id"].combine_chunks() for p in parts]))
    gone = before.filter(pc.invert(pc.is_in(before, value_set=kept["row_id"])))
    if not len(gone):
        return {}
    first: dict[str, str] = {}
    matched = excluded.filter(pc.fill_null(pc.is_in(excluded["row_id"], value_set=gone), False))
    for row_id, reason in zip(matched["row_id"].to_pylist(), matched["reason"].to_pylist(),
                              strict=True):
        first.setdefault(row_id, reason)
    counts: dict[str, int] = {}
    for reason in first.values():
        counts[reason] = counts.get(reason, 0) + 1
    missing = len(gone) - len(first)
    if missing:
        counts[NOT_IN_INPUTS] = missing
    return dict(sorted(counts.items()))
