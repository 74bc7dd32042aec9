"""Streaming pieces of the build: bounded-memory reading, partitioning, spilling and ordering.

A build never holds all its rows at once. It decides on narrow key columns read in record
batches (:func:`key_batches`), runs each filter per batch or, for a filter whose verdicts
depend on other rows (dedupe), per hash partition of the columns it declares
(:func:`run_chain`, partitions spilled as Arrow IPC files by :class:`Spill`), and then streams
the full rows of the kept positions into range buckets of the published order
(:class:`RangeSorter`), sorted one bucket at a time and written row group by row group
(:class:`PartWriter`) exactly as one ``pq.write_table`` of the whole table would lay them out.
Every step breaks ties by the candidate position ``_pos`` (run order, then row order), so batch
sizes, partition counts and bucket boundaries never change a byte of the output.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

POS = "_pos"
BATCH_ROWS = 65_536  # rows of one record batch read from a run
KEY_ROWS = 250_000  # key-column rows of one spilled partition of a global filter
MEMORY_ROWS = 1_500_000  # up to this many candidates, key columns are not spilled at all
SORT_ROWS = 32_768  # full rows of one bucket of the published order
ROW_GROUP_ROWS = 100_000
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "write_statistics": True,
    "use_dictionary": True,
}
_SAMPLE = 16_384  # kept keys sampled to place bucket boundaries
# _LOW_BYTES[v]: the low v bytes of a little-endian word (the bytes of a window inside its value)
_LOW_BYTES = np.array([(1 << (8 * v)) - 1 for v in range(9)], dtype=np.uint64)


# -- reading ---------------------------------------------------------------------------------


def conform(batch: pa.RecordBatch | pa.Table, schema: pa.Schema) -> pa.Table:
    """``batch`` with exactly ``schema``'s columns: missing ones (older runs) null, others cast."""
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    columns = []
    for field in schema:
        if field.name in table.column_names:
            column = table[field.name]
            columns.append(column if column.type == field.type else column.cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.table(columns, schema=schema)


def read_batches(
    paths: Sequence[Path], schema: pa.Schema, batch_rows: int, *, with_pos: bool = True
) -> Iterator[pa.Table]:
    """The rows of ``paths`` in order, ``schema``'s columns only, in tables of at most
    ``batch_rows`` rows; with ``with_pos`` an int64 ``_pos`` column numbers them from 0."""
    offset = 0
    for path in paths:
        file = pq.ParquetFile(path)
        present = [n for n in schema.names if n in file.schema_arrow.names]
        if file.metadata.num_rows == 0:
            continue
        for batch in file.iter_batches(batch_size=batch_rows, columns=present, use_threads=True):
            table = conform(batch, schema)
            if with_pos:
                pos = np.arange(offset, offset + table.num_rows, dtype=np.int64)
                table = table.append_column(POS, pa.array(pos))
            offset += table.num_rows
            yield table


# -- hashing and spilling --------------------------------------------------------------------


def hash_column(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A 64-bit hash of every value, for partitions (null hashes like the empty string).

    Strings are hashed on their length and five 8-byte windows (start, quarter, middle,
    three quarters, end), gathered for all rows at once with numpy: equal values always hash
    alike, and values that differ anywhere but in the gaps between windows spread."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(array.type):
        return hash_column(array.dictionary)[pc.fill_null(array.indices, 0).to_numpy()]
    if not (pa.types.is_string(array.type) or pa.types.is_binary(array.type)
            or pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type)):
        array = array.cast(pa.string())
    array = array.cast(pa.large_binary())
    n = len(array)
    if not n:
        return np.zeros(0, np.uint64)
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], np.int64)[array.offset:array.offset + n + 1]
    if array.null_count:
        offsets = offsets.copy()
        valid = pc.is_valid(array).to_numpy(zero_copy_only=False)
        ends = np.where(valid, offsets[1:], offsets[:-1])
    else:
        ends = offsets[1:]
    starts = offsets[:-1]
    lengths = ends - starts
    if buffers[2] is None or not len(buffers[2]):
        data = np.zeros(1, np.uint8)
    else:
        data = np.frombuffer(buffers[2], np.uint8)
    data = np.concatenate([data, np.zeros(8, np.uint8)])  # every 8-byte load stays inside
    h = lengths.astype(np.uint64)
    lane = np.arange(8, dtype=np.int64)
    with np.errstate(over="ignore"):
        for k, at in enumerate((starts, starts + lengths // 4, starts + lengths // 2,
                                starts + 3 * lengths // 4, ends - 8)):
            at = np.maximum(at, starts)
            word = data[at[:, None] + lane].view("<u8")[:, 0]
            word = word & _LOW_BYTES[np.clip(ends - at, 0, 8)]
            h = _mix(h ^ (word + np.uint64(k)))
    return h


def _mix(h: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint64(33))
        h = h * np.uint64(0xFF51AFD7ED558CCD)
        h = h ^ (h >> np.uint64(33))
        h = h * np.uint64(0xC4CEB9FE1A85EC53)
        return h ^ (h >> np.uint64(33))


def partition_of(table: pa.Table, columns: Sequence[str], parts: int) -> np.ndarray:
    """Per row, its partition in ``range(parts)`` by a hash of ``columns``: rows equal in
    those columns share a partition."""
    if parts <= 1 or not columns:
        return np.zeros(table.num_rows, np.int64)
    h = np.zeros(table.num_rows, np.uint64)
    with np.errstate(over="ignore"):
        for column in columns:
            h = _mix(h * np.uint64(31) + hash_column(table[column]))
    return (h % np.uint64(parts)).astype(np.int64)


class Spill:
    """Tables appended to numbered partitions and read back one partition at a time: Arrow IPC
    stream files under ``folder``, or plain lists when ``folder`` is None (small inputs)."""

    def __init__(self, folder: Path | None, parts: int, name: str = "spill"):
        self.folder, self.parts, self.name = folder, max(parts, 1), name
        self.rows = [0] * self.parts
        self._memory: list[list[pa.Table]] = [[] for _ in range(self.parts)]
        self._writers: dict[int, pa.ipc.RecordBatchStreamWriter] = {}
        self.schema: pa.Schema | None = None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    def _path(self, part: int) -> Path:
        assert self.folder is not None
        return self.folder / f"{self.name}-{part:05d}.arrow"

    def add(self, table: pa.Table, part: np.ndarray | int = 0) -> None:
        if not table.num_rows:
            return
        if self.schema is None:
            self.schema = table.schema
        if isinstance(part, int):
            self._add(part, table)
            return
        order = np.argsort(part, kind="stable")
        self.add_sorted(table.take(pa.array(order)), part[order])

    def add_sorted(self, table: pa.Table, sorted_parts: np.ndarray) -> None:
        """Add a table already ordered by partition (``sorted_parts``, ascending)."""
        if not table.num_rows:
            return
        if self.schema is None:
            self.schema = table.schema
        bounds = np.flatnonzero(np.diff(sorted_parts)) + 1
        for start, stop in zip(np.r_[0, bounds], np.r_[bounds, len(sorted_parts)], strict=True):
            self._add(int(sorted_parts[start]), table.slice(start, stop - start))

    def _add(self, part: int, table: pa.Table) -> None:
        self.rows[part] += table.num_rows
        if self.folder is None:
            self._memory[part].append(table)
            return
        writer = self._writers.get(part)
        if writer is None:
            assert self.schema is not None
            writer = pa.ipc.new_stream(str(self._path(part)), self.schema)
            self._writers[part] = writer
        writer.write_table(table.cast(self.schema) if table.schema != self.schema else table)

    def finish(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def read(self, part: int) -> pa.Table | None:
        """The whole partition (None when nothing was added to it), then forgotten."""
        self.finish()
        # What the previous partition freed goes back to the system before this one is read.
        pa.default_memory_pool().release_unused()
        if not self.rows[part]:
            return None
        if self.folder is None:
            tables, self._memory[part] = self._memory[part], []
            return pa.concat_tables(tables)
        path = self._path(part)
        with pa.OSFile(str(path)) as source:
            table = pa.ipc.open_stream(source).read_all()
        path.unlink()
        return table

    def __iter__(self) -> Iterator[pa.Table]:
        for part in range(self.parts):
            table = self.read(part)
            if table is not None:
                yield table

    def stream(self, part: int = 0) -> Iterator[pa.Table]:
        """The partition's tables as they were added, read one at a time, then forgotten."""
        self.finish()
        if not self.rows[part]:
            return
        if self.folder is None:
            while self._memory[part]:
                yield self._memory[part].pop(0)
            return
        path = self._path(part)
        with pa.OSFile(str(path)) as source:
            for batch in pa.ipc.open_stream(source):
                yield pa.Table.from_batches([batch])
        path.unlink()


# -- ordering --------------------------------------------------------------------------------


def sort_key(table: pa.Table, columns: Sequence[str]) -> pa.Array:
    """One binary value per row whose byte order is the order of ``columns`` under
    ``sort_by`` (strings by bytes, nulls last): each value as 0x01 + bytes + 0x00, null 0xff."""
    parts: list[Any] = []
    for column in columns:
        values = table[column]
        values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        values = values.cast(pa.binary())
        framed = pc.binary_join_element_wise(pa.scalar(b"\x01"), values, pa.scalar(b"\x00"), b"")
        parts.append(pc.fill_null(framed, pa.scalar(b"\xff")))
    if not parts:
        return pa.array([b""] * table.num_rows, pa.binary())
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, b"")


def buckets_of(keys: pa.Array, bounds: pa.Array) -> np.ndarray:
    """Per key, how many of the sorted ``bounds`` are <= it (its range bucket)."""
    if not len(bounds):
        return np.zeros(len(keys), np.int64)
    flags = np.r_[np.zeros(len(bounds), np.int8), np.ones(len(keys), np.int8)]
    both = pa.table({"k": pa.concat_arrays([bounds, keys]), "f": flags})
    order = pc.sort_indices(both, [("k", "ascending"), ("f", "ascending")]).to_numpy()
    is_bound = order < len(bounds)
    seen = np.cumsum(is_bound)
    out = np.empty(len(keys), np.int64)
    out[order[~is_bound] - len(bounds)] = seen[~is_bound]
    return out


class KeySample:
    """A deterministic sample of range keys (every ``step``-th position), to place bounds."""

    def __init__(self, total: int):
        self.step = max(1, total // _SAMPLE)
        self.keys: list[pa.Array] = []

    def add(self, table: pa.Table, columns: Sequence[str]) -> None:
        """Sample the rows of ``table`` (which has ``_pos``) by the binary key of ``columns``."""
        picked = np.flatnonzero(table[POS].to_numpy() % self.step == 0)
        if len(picked):
            self.keys.append(sort_key(table.take(pa.array(picked)), columns))

    def bounds(self, rows: int, bucket_rows: int) -> pa.Array:
        buckets = -(-rows // max(bucket_rows, 1))
        if buckets <= 1 or not self.keys:
            return pa.array([], pa.binary())
        sample = pa.concat_arrays(self.keys)
        sample = sample.take(pc.sort_indices(sample))
        picks = sorted({int(len(sample) * i / buckets) for i in range(1, buckets)})
        bounds = pc.unique(sample.take(pa.array(picks, pa.int64())))
        return bounds.take(pc.sort_indices(bounds))


class RangeSorter:
    """Rows in the order of ``order`` (ties: ``_pos``), one range bucket in memory at a time.

    Rows are routed to buckets by a binary key of the ``range_columns`` prefix of the order
    (rows equal in it share a bucket), spilled, then each bucket is sorted and yielded in
    bucket order: the concatenation is the whole table sorted."""

    def __init__(self, folder: Path | None, order: Sequence[str], range_columns: Sequence[str],
                 bounds: pa.Array, name: str):
        self.order = [(c, "ascending") for c in [*order, POS]]
        self.range_columns = list(range_columns)
        self.bounds = bounds
        self.spill = Spill(folder if len(bounds) else None, len(bounds) + 1, name)

    def add(self, table: pa.Table, rows: np.ndarray | None = None) -> None:
        """Add ``table``'s rows, or only those at the indices ``rows``: the wide columns are
        moved once, by one take in bucket order (ascending within a bucket, so it reads the
        batch front to back)."""
        if rows is None:
            rows = np.arange(table.num_rows)
        if not len(rows):
            return
        if not len(self.bounds):
            self.spill.add(table if len(rows) == table.num_rows else table.take(pa.array(rows)))
            return
        keys = sort_key(table.select(self.range_columns).take(pa.array(rows)), self.range_columns)
        buckets = buckets_of(keys, self.bounds)
        order = np.argsort(buckets, kind="stable")
        self.spill.add_sorted(table.take(pa.array(rows[order])), buckets[order])

    def sorted_tables(self, positions: list[np.ndarray] | None = None) -> Iterator[pa.Table]:
        """The rows in order, without ``_pos``; ``positions``, when given, gets the ``_pos``
        of the rows yielded, in order."""
        for table in self.spill:
            table = table.sort_by(self.order)
            if positions is not None:
                positions.append(table[POS].to_numpy())
            yield table.drop_columns([POS])


# -- writing ---------------------------------------------------------------------------------


class PartWriter:
    """Parquet files of ``part_rows`` rows in row groups of ``group_rows``, fed in order.

    The bytes equal ``pq.write_table(rows.slice(i * part_rows, part_rows), ...,
    row_group_size=group_rows)`` of the whole table for every part: each row group is handed
    to the writer as one contiguous table of exactly the rows it holds (chunking changes the
    bytes). Encoding runs on a thread of its own while the caller prepares the next rows (at
    most one group waits). With no rows at all, one empty file is still written (so
    ``data/*.parquet`` globs resolve)."""

    def __init__(self, folder: Path, schema: pa.Schema, part_rows: int | None,
                 name: Callable[[int], str], group_rows: int = ROW_GROUP_ROWS):
        if part_rows is not None and part_rows < 1:
            raise ValueError(f"part_rows must be positive, got {part_rows}")
        self.folder, self.schema, self.part_rows = folder, schema, part_rows
        self.name, self.group_rows = name, group_rows
        self.parts = 0
        self._in_part = 0
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="parquet-writer")
        self._pending: Future[None] | None = None
        # owned by the writer thread
        self._writer: pq.ParquetWriter | None = None
        self._path: Path | None = None

    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        self._buffer.append(table)
        self._buffered += table.num_rows
        while self._buffered >= self._next_group():
            self._flush(self._next_group())

    def _next_group(self) -> int:
        if self.part_rows is None:
            return self.group_rows
        return min(self.group_rows, self.part_rows - self._in_part)

    def _flush(self, rows: int) -> None:
        # One group in the writer's hands at a time: it encodes while the caller sorts the
        # next rows, but two groups are never both held here.
        self._wait()
        buffered = pa.concat_tables(self._buffer)
        group = buffered.slice(0, rows).combine_chunks()
        rest = buffered.slice(rows)
        self._buffer, self._buffered = ([rest] if rest.num_rows else []), rest.num_rows
        del buffered
        if not self._in_part:
            self.parts += 1
        self._in_part += rows
        last = self.part_rows is not None and self._in_part >= self.part_rows
        if last:
            self._in_part = 0
        self._pending = self._pool.submit(self._write_group, self.parts - 1, group, last)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def _write_group(self, part: int, group: pa.Table, last: bool) -> None:
        if self._writer is None:
            self._path = self.folder / self.name(part)
            self._writer = pq.ParquetWriter(self._path, self.schema, **PARQUET_OPTIONS)
        self._writer.write_table(group, row_group_size=self.group_rows)
        if last:
            self._close_part()

    def _close_part(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        assert self._path is not None
        _fsync(self._path)
        self._writer, self._path = None, None

    def close(self) -> int:
        try:
            if self._buffered:
                self._flush(self._buffered)
            self._wait()
            self._close_part()
        finally:
            self._pool.shutdown()
        if not self.parts:
            path = self.folder / self.name(0)
            pq.write_table(self.schema.empty_table(), path, row_group_size=self.group_rows,
                           **PARQUET_OPTIONS)
            _fsync(path)
            self.parts = 1
        return self.parts


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def concat(tables: Iterable[pa.Table], schema: pa.Schema) -> pa.Table:
    tables = list(tables)
    return pa.concat_tables(tables) if tables else schema.empty_table()


# -- the filter chain ------------------------------------------------------------------------


def run_chain(
    batches: Iterable[pa.Table],
    filters: Sequence[Any],
    *,
    total_rows: int,
    key_rows: int,
    memory_rows: int,
    spill_dir: Path,
    keep_columns: Iterable[str],
    on_excluded: Callable[[int, pa.Table], None],
) -> Iterator[pa.Table]:
    """The rows that pass every filter, as a stream of tables (with ``_pos``).

    A filter whose ``partition_by`` is None decides each row alone and runs per batch; one
    with a tuple of columns sees, at once, every surviving row that shares their values (one
    hash partition of about ``key_rows`` at a time, spilled when the input is larger than
    ``memory_rows``); ``()`` means
    the whole table at once. Exclusion rows go to ``on_excluded(filter index, rows)``. Before a
    partitioned filter, columns no later filter and no caller (``keep_columns``) reads are
    dropped, so spills stay narrow."""
    keep = set(keep_columns) | {POS}
    stream: Iterable[pa.Table] = batches
    index = 0
    while index < len(filters):
        step = filters[index]
        if step.partition_by is None:
            group = index
            while index < len(filters) and filters[index].partition_by is None:
                index += 1
            stream = _local(range(group, index), filters, stream, on_excluded)
            continue
        needed = keep | {c for later in filters[index:] for c in later.columns}
        parts = 1
        if step.partition_by and total_rows > memory_rows:
            parts = -(-total_rows // key_rows)
        folder = spill_dir / f"filter-{index}" if parts > 1 else None
        stream = _partitioned(index, step, stream, needed, Spill(folder, parts, "keys"),
                              on_excluded)
        index += 1
    return iter(stream)


# The columns exclusion rows are made of (pipeline.build.filters.exclusion_rows).
EXCLUSION_SOURCE = ("url", "page_url", "source_id", "fetched_at", "row_id", "run_id")


def _view(step: Any, table: pa.Table) -> pa.Table:
    """Only the columns ``step`` reads, its exclusion rows need and ``_pos``: a filter copies
    what it keeps, so it is handed a narrow table and the wide one is taken from once."""
    wanted = {*step.columns, *EXCLUSION_SOURCE, POS}
    columns = [c for c in table.column_names if c in wanted]
    return table if len(columns) == table.num_columns else table.select(columns)


def _local(indices: range, filters: Sequence[Any], stream: Iterable[pa.Table],
           on_excluded: Callable[[int, pa.Table], None]) -> Iterator[pa.Table]:
    """Consecutive row-local filters over each table: each decides on a narrow view of the
    rows still in, and the wide table is cut once, at the end."""
    for table in stream:
        rows: pa.Array | None = None  # indices into table of the rows still in; None: all
        for index in indices:
            view = _view(filters[index], table)
            if rows is not None:
                view = view.take(rows)
            kept, excluded = _apply(filters[index], view)
            on_excluded(index, excluded)
            del excluded
            if kept is not None:  # something left
                rows = _indices_of(kept, table)
            del view, kept
            if rows is not None and not len(rows):
                break
        out = table if rows is None else table.take(rows)
        # Nothing of the input stays referenced while the consumer works.
        del table
        if out.num_rows:
            yield out
        del out


def _apply(step: Any, view: pa.Table) -> tuple[pa.ChunkedArray | pa.Array | None, pa.Table]:
    """(the ``_pos`` of the rows ``step`` keeps, or None when it keeps them all; its exclusion
    rows). A filter whose call is BuildFilter's own (``uses_split``) is asked for its keep
    mask only (:meth:`pipeline.build.filters.BuildFilter.split`): the kept rows are taken once,
    from the wide table, not copied first; any other callable is called."""
    if getattr(type(step).__call__, "uses_split", False):
        prepared, mask, excluded = step.split(view)
        return (None if mask is None else prepared[POS].filter(mask)), excluded
    kept, excluded = step(view)
    return (None if kept is view else kept[POS]), excluded


def _indices_of(kept: pa.Array | pa.ChunkedArray, table: pa.Table) -> pa.Array:
    """The indices into ``table`` of the rows whose ``_pos`` is in ``kept`` (a subset of
    its), in ``table``'s order (a filter may reorder what it keeps: dedupe sorts). Ascending,
    so a take reads each column front to back (a random take costs several times more)."""
    pos = table[POS].to_numpy()
    wanted = np.sort(kept.to_numpy())
    if len(pos) < 2 or bool(np.all(pos[1:] > pos[:-1])):  # in _pos order: a binary search
        return pa.array(np.searchsorted(pos, wanted))
    return pa.array(np.sort(pc.index_in(kept, value_set=table[POS]).to_numpy(
        zero_copy_only=False)))


def _partitioned(index: int, step: Any, stream: Iterable[pa.Table], needed: set[str],
                 spill: Spill, on_excluded: Callable[[int, pa.Table], None]
                 ) -> Iterator[pa.Table]:
    schema = None
    for table in stream:
        table = table.select([c for c in table.column_names if c in needed])
        schema = schema or table.schema
        spill.add(table, partition_of(table, step.partition_by, spill.parts)
                  if spill.parts > 1 else 0)
    if schema is None:
        return
    for table in spill:
        view = _view(step, table)
        kept, excluded = _apply(step, view)
        on_excluded(index, excluded)
        del excluded
        out = table if kept is None else table.take(_indices_of(kept, table))
        del table, view, kept
        if out.num_rows:
            yield out
        del out
