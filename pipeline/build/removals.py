"""Rows removed since the previous version, as counts per reason: never which rows.

A published list of what left a dataset is a map to it (LAION's removal diff), so
``manifest.json`` carries only ``removed_since_previous``: for every ``row_id`` of the previous
version that the new one does not publish, the reason of its first build exclusion (in filter
order, then candidate order), or ``not_in_inputs`` when no input run holds it any more.

:class:`Removals` collects the kept row ids and the exclusions while a build streams them, and
counts one hash partition of row ids at a time, so the memory it needs does not grow with the
manifest (the partitions are spilled when there are many rows).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.build.stream import BATCH_ROWS, POS, Spill, partition_of
from pipeline.build.versions import DATA_DIR

NOT_IN_INPUTS = "not_in_inputs"
FILTER = "_filter"  # the index of the filter that excluded a row, in chain order


class Removals:
    """Counts per reason of the previous version's rows that the new one no longer holds."""

    def __init__(self, previous_dir: Path, parts: int = 1, folder: Path | None = None):
        self.parts = max(parts, 1)
        self.folder = folder if self.parts > 1 else None
        self.previous = sorted((Path(previous_dir) / DATA_DIR).glob("part-*.parquet"))
        self._kept = Spill(self._sub("kept"), self.parts, "kept")
        self._excluded = Spill(self._sub("excluded"), self.parts, "excluded")

    def _sub(self, name: str) -> Path | None:
        return None if self.folder is None else self.folder / name

    def kept(self, row_ids: pa.Array | pa.ChunkedArray) -> None:
        table = pa.table({"row_id": row_ids})
        self._kept.add(table, partition_of(table, ["row_id"], self.parts))

    def excluded(self, rows: pa.Table, filter_index: int) -> None:
        """Exclusion rows (``row_id``, ``reason`` and ``_pos``) of the filter at that index."""
        n = rows.num_rows
        pos = rows[POS] if POS in rows.column_names else pa.array(np.full(n, -1, np.int64))
        table = pa.table({
            "row_id": rows["row_id"],
            "reason": rows["reason"],
            FILTER: pa.array(np.full(n, filter_index, np.int64)),
            POS: pos,
        })
        self._excluded.add(table, partition_of(table, ["row_id"], self.parts))

    def counts(self) -> dict[str, int]:
        if not self.previous:
            return {}
        before = Spill(self._sub("previous"), self.parts, "previous")
        for part in self.previous:
            for batch in pq.ParquetFile(part).iter_batches(BATCH_ROWS, columns=["row_id"]):
                table = pa.Table.from_batches([batch])
                before.add(table, partition_of(table, ["row_id"], self.parts))
        counts: dict[str, int] = {}
        for p in range(self.parts):
            ids = before.read(p)
            kept, excluded = self._kept.read(p), self._excluded.read(p)
            if ids is None:
                continue
            _count(ids["row_id"], kept, excluded, counts)
        return dict(sorted(counts.items()))


def _count(ids: pa.ChunkedArray, kept: pa.Table | None, excluded: pa.Table | None,
           counts: dict[str, int]) -> None:
    before = pc.unique(ids.combine_chunks())
    if kept is not None:
        before = before.filter(pc.invert(pc.is_in(before, value_set=kept["row_id"])))
    if not len(before):
        return
    found = 0
    if excluded is not None:
        matched = excluded.filter(pc.fill_null(pc.is_in(excluded["row_id"], value_set=before),
                                               False))
        matched = matched.sort_by([("row_id", "ascending"), (FILTER, "ascending"),
                                   (POS, "ascending")])
        n = matched.num_rows
        if n:
            first = np.ones(n, dtype=bool)
            ids_sorted = matched["row_id"].combine_chunks()
            if n > 1:
                same = pc.equal(ids_sorted.slice(1), ids_sorted.slice(0, n - 1))
                first[1:] = ~pc.fill_null(same, False).to_numpy(zero_copy_only=False)
            reasons = matched["reason"].filter(pa.array(first))
            for c in pc.value_counts(reasons).to_pylist():
                counts[c["values"]] = counts.get(c["values"], 0) + c["counts"]
            found = int(first.sum())
    missing = len(before) - found
    if missing:
        counts[NOT_IN_INPUTS] = counts.get(NOT_IN_INPUTS, 0) + missing


def removed_since(previous_dir: Path, kept: pa.Table, excluded: pa.Table) -> dict[str, int]:
    """Counts per reason of the previous version's rows that ``kept`` no longer holds;
    ``excluded`` is the build's exclusion rows in filter order (unsorted)."""
    removals = Removals(previous_dir)
    removals.kept(kept["row_id"])
    rows = excluded.append_column(POS, pa.array(np.arange(excluded.num_rows, dtype=np.int64)))
    removals.excluded(rows, 0)
    return removals.counts()
