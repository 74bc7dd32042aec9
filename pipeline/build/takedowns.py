"""Takedown matching over Arrow tables: which rows each takedown names, for a whole table.

One matcher serves the build (:class:`pipeline.build.filters.TakedownFilter`) and
``clearance impact`` (:mod:`pipeline.lifecycle.impact`), so a version is found to hold exactly
what a build would now exclude. Work is per column, not per row: exact kinds are one
``pc.index_in``; URLs are normalised the way URL hash lists are
(:func:`pipeline.safety.urls.normalise_url`) only for rows whose host a URL takedown names (a
vectorised host test finds them); creators are normalised once per distinct value; PDQ hashes
are decoded from hex with numpy and compared with :func:`pipeline.safety.matching.pdq_within_words`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.registry.optouts import normalise_creator
from pipeline.registry.state import STATE_FILE, State
from pipeline.registry.takedowns import MATCH_COLUMNS, Takedown, check_request
from pipeline.safety.matching import pdq_within_words, pdq_words
from pipeline.safety.urls import normalise_url, normalise_urls

NONE = -1
UNSURE = "*"  # a row host only normalise_url can judge (row_hosts)
# Up to this many takedown hosts, the host test is a case-insensitive substring search per host
# (~8x faster than extracting every row's host with a regex); past it, the regex.
SUBSTRING_HOSTS = 8
# scheme://[userinfo@]host — the host as written (brackets kept for IPv6).
_HOST_RE = r"^[A-Za-z][A-Za-z0-9+.\-]*://(?:[^@/?#]*@)?(?P<host>\[[^\]]*\]|[^:/?#]*)"
_HOST = re.compile(_HOST_RE)
_HEX = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i


def query(kind: str, value: str, distance: int | None = None) -> Takedown:
    """A takedown-shaped question (``clearance impact --url ...``), validated, not recorded."""
    value, distance = check_request(kind, value, distance)
    return Takedown("query", kind, value, distance, "impact query", None, datetime.now(UTC))


def active_takedowns(data_dir: str | Path) -> list[Takedown]:
    """The takedowns a build applies now; none when the data dir has no state database yet
    (a build on a machine with runs only does not create one)."""
    path = Path(data_dir) / STATE_FILE
    return State(path).takedowns(active_only=True) if path.is_file() else []


class TakedownMatcher:
    """Which takedown (the first, in the order given) matches each row of a table."""

    def __init__(self, takedowns: Sequence[Takedown]):
        self.takedowns = list(takedowns)
        by_kind: dict[str, list[int]] = {}
        for position, takedown in enumerate(self.takedowns):
            by_kind.setdefault(takedown.kind, []).append(position)
        self.by_kind = by_kind
        self.urls = {normalise_url(t.value) for t in self._of("url")}
        self.prefixes = [normalise_url(t.value) for t in self._of("url-prefix")]
        self.hosts = sorted({host_of(u) for u in [*self.urls, *self.prefixes]})

    @property
    def columns(self) -> list[str]:
        """The item columns this matcher reads (for Parquet column projection)."""
        needed = {c for kind in self.by_kind for c in MATCH_COLUMNS[kind]}
        return sorted(needed)

    def _of(self, kind: str) -> list[Takedown]:
        return [self.takedowns[p] for p in self.by_kind.get(kind, [])]

    def positions(self, table: pa.Table) -> np.ndarray:
        """Per row, the position of the first matching takedown, or ``NONE`` (-1)."""
        n = table.num_rows
        best = np.full(n, len(self.takedowns), dtype=np.int64)
        if not n or not self.takedowns:
            return np.full(n, NONE, dtype=np.int64)
        for kind, positions in self.by_kind.items():
            for column in MATCH_COLUMNS[kind]:
                found = self._match(kind, positions, _array(table, column))
                hit = found != NONE
                best[hit] = np.minimum(best[hit], found[hit])
        best[best == len(self.takedowns)] = NONE
        return best

    def mask(self, table: pa.Table) -> np.ndarray:
        return self.positions(table) != NONE

    def _match(self, kind: str, positions: list[int], column: pa.Array) -> np.ndarray:
        values = [self.takedowns[p].value for p in positions]
        if kind == "sha256":
            return _index_in(pc.utf8_lower(column), values, positions)
        if kind == "source":
            return _index_in(column, values, positions)
        if kind == "creator":
            return _creator(column, values, positions)
        if kind == "pdq":
            return _pdq(column, [self.takedowns[p] for p in positions], positions)
        normalised, rows = self._normalised_candidates(column)
        out = np.full(len(column), NONE, dtype=np.int64)
        if not len(rows):
            return out
        if kind == "url":
            out[rows] = _index_in(normalised, [normalise_url(v) for v in values], positions)
            return out
        found = np.full(len(rows), NONE, dtype=np.int64)
        for position, prefix in reversed(list(zip(positions, map(normalise_url, values),
                                                  strict=True))):
            hit = pc.fill_null(pc.starts_with(normalised, prefix), False)
            found[hit.to_numpy(zero_copy_only=False)] = position
        out[rows] = found
        return out

    def _normalised_candidates(self, column: pa.Array) -> tuple[pa.Array, np.ndarray]:
        """(normalised URLs, their row indexes) of the rows a URL takedown could name: its
        host, or a host the vectorised test cannot judge (non-ASCII URL, no host found)."""
        unsure = pc.invert(pc.string_is_ascii(column))
        if len(self.hosts) <= SUBSTRING_HOSTS:
            # "//host" or "@host" anywhere: a superset of the rows whose host is one of them.
            named = pa.array(np.zeros(len(column), dtype=bool))
            for host in self.hosts:
                for marker in (f"//{host}", f"@{host}"):
                    found = pc.match_substring(column, marker, ignore_case=True)
                    named = pc.or_kleene(named, found)
            unsure = pc.or_kleene(unsure, pc.invert(pc.match_substring(column, "://")))
        else:
            hosts = row_hosts(column)
            named = pc.is_in(hosts, value_set=pa.array([*self.hosts, UNSURE], pa.string()))
        candidate = pc.and_kleene(pc.is_valid(column), pc.or_kleene(named, unsure))
        rows = np.flatnonzero(pc.fill_null(candidate, False).to_numpy(zero_copy_only=False))
        urls = column.take(pa.array(rows, pa.int64()))
        return normalise_urls(urls), rows


def row_hosts(column: pa.Array) -> pa.Array:
    """Per URL, the host as a URL takedown's host is compared with it (lower-cased, trailing
    dots trimmed), or :data:`UNSURE` where only :func:`normalise_url` can tell (a non-ASCII
    URL, no ``scheme://host`` form): a URL takedown for host H can name a row only if its host
    is H or UNSURE. The impact index stores these (:mod:`pipeline.build.impactindex`)."""
    host = pc.struct_field(pc.extract_regex(column, _HOST_RE), [0])
    host = pc.utf8_rtrim(pc.utf8_lower(host), characters=".")
    unsure = pc.or_kleene(pc.invert(pc.string_is_ascii(column)), pc.is_null(host))
    # A URL with no "scheme://" host form is normalised too (normalise_url decides).
    unsure = pc.or_kleene(unsure, pc.invert(pc.match_substring(column, "://")))
    return pc.if_else(pc.fill_null(unsure, True), pa.scalar(UNSURE, pa.string()), host)


def host_of(url: str) -> str:
    match = _HOST.match(url)
    return match["host"].lower().rstrip(".") if match else ""


def _array(table: pa.Table, column: str) -> pa.Array:
    data = table.column(column)
    return data.combine_chunks() if isinstance(data, pa.ChunkedArray) else data


def _index_in(column: pa.Array, values: list[str], positions: list[int]) -> np.ndarray:
    """Per row, the position of the first takedown whose value equals the row's, or NONE."""
    first: dict[str, int] = {}
    for value, position in zip(values, positions, strict=True):
        first.setdefault(value, position)
    value_set = pa.array(list(first), pa.string())
    index = pc.fill_null(pc.index_in(column, value_set=value_set), NONE)
    lookup = np.array([*first.values(), NONE], dtype=np.int64)  # NONE (-1) picks the last
    return lookup[index.to_numpy(zero_copy_only=False)]


def _creator(column: pa.Array, values: list[str], positions: list[int]) -> np.ndarray:
    """Normalise each distinct creator once, then map rows through the dictionary."""
    encoded = pc.dictionary_encode(column)
    names = [normalise_creator(v) if v is not None else None
             for v in encoded.dictionary.to_pylist()]
    wanted = _index_in(pa.array(names, pa.string()), [normalise_creator(v) for v in values],
                       positions)
    wanted = np.append(wanted, NONE)
    indices = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
    return wanted[indices]


def _pdq(column: pa.Array, takedowns: list[Takedown], positions: list[int]) -> np.ndarray:
    out = np.full(len(column), NONE, dtype=np.int64)
    words, rows = pdq_rows(column)
    if not len(rows):
        return out
    found = np.full(len(rows), NONE, dtype=np.int64)
    for takedown, position in reversed(list(zip(takedowns, positions, strict=True))):
        found[pdq_within_words(words, takedown.value, takedown.distance or 0)] = position
    out[rows] = found
    return out


def pdq_rows(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(packed hashes (M, 4) uint64, their row indexes) of the rows holding a 64-hex PDQ;
    decoded from hex in numpy, not per row in Python."""
    if pa.types.is_null(column.type):
        return np.zeros((0, 4), np.uint64), np.zeros(0, np.int64)
    ok = pc.fill_null(pc.equal(pc.binary_length(column), 64), False)
    rows = np.flatnonzero(ok.to_numpy(zero_copy_only=False))
    if not len(rows):
        return np.zeros((0, 4), np.uint64), rows
    fixed = column.filter(ok).cast(pa.binary()).cast(pa.binary(64))
    start = fixed.offset * 64
    raw = np.frombuffer(fixed.buffers()[1], dtype=np.uint8)[start:start + len(fixed) * 64]
    nibbles = _HEX[raw.reshape(-1, 64)]
    valid = (nibbles != 255).all(axis=1)
    packed = ((nibbles[valid, 0::2] << 4) | nibbles[valid, 1::2]).astype(np.uint8)
    return pdq_words(packed), rows[valid]
