"""Matching in memory: exact hashes by binary search, PDQ by multi-index, and the PDQ helpers
that the crawl, re-screening and (later) takedowns share.

Matching never touches disk: exact kinds are binary searches over sorted fixed-width rows;
PDQ uses a multi-index over 16 16-bit chunks (see :class:`PdqIndex`) with brute force for
small lists.
"""


from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING

import numba
import numpy as np

if TYPE_CHECKING:
    pass

DEFAULT_PDQ_THRESHOLD = 31
PDQ_BYTES = 32
# Neighbour expansion uses only PDQ hashes the reference calls reliable (quality >= 50): flat,
# featureless images all hash alike and would otherwise "neighbour" any flat hit. A hit itself
# is matched whatever its quality; unknown quality (rows from before the column) counts.
NEIGHBOUR_MIN_QUALITY = 50


def reliable(pdq: str | None, quality: int | None) -> bool:
    return bool(pdq) and (quality is None or quality >= NEIGHBOUR_MIN_QUALITY)


@dataclass(frozen=True)
class Hit:
    list_id: str
    list_version: str
    kind: str
    matched: str  # the list entry that matched (hex)
    distance: int | None  # PDQ Hamming distance; None for exact kinds
    # The matched PDQ entry's quality when its list gave one below NEIGHBOUR_MIN_QUALITY (the
    # reference's "unreliable"): still a hit, recorded with the quality for the reviewer.
    entry_quality: int | None = None



# --------------------------------------------------------------------------- exact matching


class ExactIndex:
    """Sorted fixed-width rows with a uint64 prefix key: ~(width + 8) bytes per entry.

    A Python set of 1M ``bytes`` costs ~100 MB; this costs 40 MB for sha256 and answers a
    look-up with one ``searchsorted`` over the prefixes (see bench/screen.py).
    """

    def __init__(self, rows: np.ndarray):
        self.rows = rows  # (N, width) uint8, sorted lexicographically (np.unique)
        self.keys = np.ascontiguousarray(rows[:, :8]).view(">u8").ravel().astype(np.uint64)

    def __len__(self) -> int:
        return len(self.rows)

    def contains(self, digest: bytes) -> bool:
        if len(digest) != self.rows.shape[1] or not len(self.rows):
            return False
        key = np.uint64(int.from_bytes(digest[:8], "big"))
        lo = int(np.searchsorted(self.keys, key, side="left"))
        hi = int(np.searchsorted(self.keys, key, side="right"))
        return any(self.rows[i].tobytes() == digest for i in range(lo, hi))

    def contains_many(self, digests: np.ndarray) -> np.ndarray:
        """:meth:`contains` of many digests at once ((Q, width) uint8): a boolean mask."""
        found = np.zeros(len(digests), dtype=bool)
        if not len(digests) or not len(self.rows) or digests.shape[1] != self.rows.shape[1]:
            return found
        keys = np.ascontiguousarray(digests[:, :8]).view(">u8").ravel().astype(np.uint64)
        lo = np.searchsorted(self.keys, keys, side="left")
        hi = np.searchsorted(self.keys, keys, side="right")
        for k in np.flatnonzero(hi > lo).tolist():  # prefix hits: verify the whole digest
            digest = digests[k]
            found[k] = any((self.rows[i] == digest).all() for i in range(lo[k], hi[k]))
        return found


# --------------------------------------------------------------------------- PDQ matching


def pdq_words(rows: np.ndarray) -> np.ndarray:
    """(N, 32) uint8 big-endian hash bytes -> (N, 4) uint64 (bit order is irrelevant to XOR)."""
    return np.ascontiguousarray(rows).view(np.uint64).reshape(-1, 4)


def hex_to_words(pdq: str) -> np.ndarray:
    if len(pdq) != 2 * PDQ_BYTES:
        raise ValueError(f"expected a 64-hex PDQ hash, got {len(pdq)} characters")
    return np.frombuffer(bytes.fromhex(pdq), dtype=np.uint64)


def _distances(words: np.ndarray, query: np.ndarray) -> np.ndarray:
    return np.bitwise_count(words ^ query).sum(axis=1, dtype=np.int32)


class PdqIndex:
    """Multi-index hashing over 16 chunks of 16 bits.

    If two hashes differ in at most T bits, by pigeonhole at least one of the 16 chunks differs
    in at most floor(T / 16) bits (for T = 31: at most 1). So probing, in every chunk table, the
    query's chunk value and all values within that radius (1 + 16 = 17 probes per chunk at
    T = 31) finds every candidate; each candidate is then verified with the full distance.
    Lists under ``BRUTE_MAX`` entries or thresholds over 63 (too many probes) use brute force.
    """

    BRUTE_MAX = 4096  # measured crossover ~1-2k entries (bench/screen.py); tables cost 8 MB
    CHUNKS = 16

    def __init__(self, rows: np.ndarray, threshold: int, brute: bool | None = None):
        self.rows = rows
        self.words = pdq_words(rows)
        self.threshold = threshold
        self.radius = threshold // self.CHUNKS
        if brute is None:
            brute = len(rows) < self.BRUTE_MAX or self.radius > 3
        self.brute = brute
        if self.brute:
            return
        n = len(rows)
        chunks = np.ascontiguousarray(rows).view(">u2").astype(np.uint16)  # (N, 16) native
        # One flat table: chunk j's row indexes, sorted by chunk value, at [j*N, (j+1)*N);
        # offsets[j, v] is where value v's bucket starts (global position).
        self.order = np.empty(self.CHUNKS * n, dtype=np.int32)
        self.offsets = np.empty((self.CHUNKS, 65537), dtype=np.int64)
        for j in range(self.CHUNKS):
            col = chunks[:, j]
            self.order[j * n:(j + 1) * n] = np.argsort(col, kind="stable")
            self.offsets[j, 0] = j * n
            np.cumsum(np.bincount(col, minlength=65536), out=self.offsets[j, 1:])
            self.offsets[j, 1:] += j * n
        masks = [0]
        for r in range(1, self.radius + 1):
            for bits in combinations(range(16), r):
                masks.append(sum(1 << b for b in bits))
        self.masks = np.array(masks, dtype=np.int64)
        self.rows_of_table = np.arange(self.CHUNKS)[:, None]

    def __len__(self) -> int:
        return len(self.rows)

    def nearest(self, pdq: str) -> tuple[int, int] | None:
        """(row index, distance) of the nearest entry within the threshold, or None."""
        if not len(self.rows):
            return None
        query = hex_to_words(pdq)
        if self.brute:
            idx = np.arange(len(self.rows))
            dist = _distances(self.words, query)
        else:
            idx = self._candidates(bytes.fromhex(pdq))
            if not len(idx):
                return None
            dist = _distances(self.words[idx], query)
        best = int(np.argmin(dist))
        if dist[best] > self.threshold:
            return None
        return int(idx[best]), int(dist[best])

    def _candidates(self, digest: bytes) -> np.ndarray:
        """Row indexes in every probed bucket (duplicates possible), in one vectorised pass."""
        values = np.frombuffer(digest, dtype=">u2").astype(np.int64)
        probes = values[:, None] ^ self.masks[None, :]  # (16, P)
        starts = self.offsets[self.rows_of_table, probes].ravel()
        lengths = self.offsets[self.rows_of_table, probes + 1].ravel() - starts
        total = int(lengths.sum())
        if not total:
            return np.zeros(0, dtype=np.int32)
        # positions = concatenation of range(start, start + length) for every bucket
        shift = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
        return self.order[shift + np.arange(total)]


    JOIN_MIN = 20_000  # queries from which the chunk-by-chunk join beats probing per query

    def nearest_many(self, queries: np.ndarray, threads: int = 2,
                     join: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`nearest` for many hashes at once ((Q, 32) uint8 rows): ``(index, distance)``
        arrays, index -1 where nothing is within the threshold.

        The same answer as :meth:`nearest` for each query (the first candidate at the smallest
        distance, in the same probe order), in compiled loops without the GIL over
        ``threads`` threads. Many queries are joined chunk by chunk instead of probed one by
        one: for each of the 16 chunk tables, queries and entries are both laid out sorted by
        that chunk's value, and every query bucket meets the entry buckets within the radius
        in sequential memory (the per-query probes jump around the whole list).
        """
        q = len(queries)
        index = np.full(q, -1, dtype=np.int64)
        distance = np.full(q, -1, dtype=np.int64)
        if not q or not len(self.rows):
            return index, distance
        q_words = pdq_words(queries)
        if self.brute:
            self._split(q, threads, lambda lo, hi: _brute_many(
                q_words[lo:hi], self.words, self.threshold, index[lo:hi], distance[lo:hi]))
            return index, distance
        q_chunks = np.ascontiguousarray(queries).view(">u2").astype(np.int64)
        if join if join is not None else q >= self.JOIN_MIN:
            self._join(q_chunks, q_words, threads, index, distance)
        else:
            self._split(q, threads, lambda lo, hi: _mih_many(
                q_chunks[lo:hi], q_words[lo:hi], self.words, self.order, self.offsets,
                self.masks, self.threshold, index[lo:hi], distance[lo:hi]))
        return index, distance

    @staticmethod
    def _split(n: int, threads: int, job: Callable[[int, int], None]) -> None:
        bounds = np.linspace(0, n, max(1, min(threads, n)) + 1).astype(int).tolist()
        if len(bounds) == 2:
            job(0, n)
            return
        with ThreadPoolExecutor(len(bounds) - 1) as pool:
            list(pool.map(job, bounds[:-1], bounds[1:]))

    def _join(self, q_chunks: np.ndarray, q_words: np.ndarray, threads: int,
              index: np.ndarray, distance: np.ndarray) -> None:
        n = len(self.rows)
        best = np.full(len(q_words), self.threshold + 1, dtype=np.int64)
        for j in range(self.CHUNKS):
            order = self.order[j * n:(j + 1) * n]
            l_words = self.words[order]  # entries sorted by chunk j (row order within a value)
            l_offsets = self.offsets[j] - j * n
            q_order = np.argsort(q_chunks[:, j], kind="stable")
            s_words = q_words[q_order]
            q_offsets = np.zeros(65537, dtype=np.int64)
            np.cumsum(np.bincount(q_chunks[:, j], minlength=65536), out=q_offsets[1:])
            args = (q_offsets, q_order, s_words, l_offsets, order, l_words, self.masks, best,
                    index)

            def job(lo: int, hi: int, args: tuple[np.ndarray, ...] = args) -> None:
                _join_chunk(lo, hi, *args)

            self._split(65536, threads, job)
        found = index >= 0
        distance[found] = best[found]


_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


@numba.njit(nogil=True, cache=True)
def _popcount(x: np.uint64) -> int:
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return int((x * _H01) >> np.uint64(56))


@numba.njit(nogil=True, cache=True)
def _distance(a: np.ndarray, b: np.ndarray) -> int:
    return (_popcount(a[0] ^ b[0]) + _popcount(a[1] ^ b[1]) + _popcount(a[2] ^ b[2])
            + _popcount(a[3] ^ b[3]))


@numba.njit(nogil=True, cache=True)
def _brute_many(q_words: np.ndarray, words: np.ndarray, threshold: int, index: np.ndarray,
                distance: np.ndarray) -> None:
    for k in range(q_words.shape[0]):
        best = threshold + 1
        at = -1
        for i in range(words.shape[0]):
            d = _distance(q_words[k], words[i])
            if d < best:
                best = d
                at = i
        if at >= 0:
            index[k] = at
            distance[k] = best


@numba.njit(nogil=True, cache=True)
def _mih_many(q_chunks: np.ndarray, q_words: np.ndarray, words: np.ndarray, order: np.ndarray,
              offsets: np.ndarray, masks: np.ndarray, threshold: int, index: np.ndarray,
              distance: np.ndarray) -> None:
    for k in range(q_words.shape[0]):
        best = threshold + 1
        at = -1
        for j in range(16):
            value = q_chunks[k, j]
            for m in range(masks.shape[0]):
                probe = value ^ masks[m]
                for pos in range(offsets[j, probe], offsets[j, probe + 1]):
                    i = order[pos]
                    d = _distance(q_words[k], words[i])
                    if d < best:
                        best = d
                        at = i
        if at >= 0:
            index[k] = at
            distance[k] = best


@numba.njit(nogil=True, cache=True)
def _join_chunk(lo: int, hi: int, q_offsets: np.ndarray, q_order: np.ndarray,
                s_words: np.ndarray, l_offsets: np.ndarray, l_rows: np.ndarray,
                l_words: np.ndarray, masks: np.ndarray, best: np.ndarray,
                index: np.ndarray) -> None:
    """One chunk table, query values ``lo..hi``: each query's first nearest candidate in this
    table (masks in order, rows in order) replaces its answer only when strictly nearer, so
    tables taken in order give :meth:`PdqIndex.nearest`'s answer."""
    for value in range(lo, hi):
        for qpos in range(q_offsets[value], q_offsets[value + 1]):
            k = q_order[qpos]
            limit = best[k]
            at = -1
            for m in range(masks.shape[0]):
                probe = value ^ masks[m]
                for pos in range(l_offsets[probe], l_offsets[probe + 1]):
                    d = _distance(s_words[qpos], l_words[pos])
                    if d < limit:
                        limit = d
                        at = l_rows[pos]
            if at >= 0:
                best[k] = limit
                index[k] = at


def pdq_within_words(words: np.ndarray, centre: str, threshold: int) -> np.ndarray:
    """Boolean mask over packed hashes ((N, 4) uint64, see :func:`pdq_words`): which lie
    within ``threshold`` bits of ``centre`` (the vectorised form of :func:`pdq_within`)."""
    return _distances(words, hex_to_words(centre)) <= threshold


def pdq_distance(a: str, b: str) -> int:
    """Hamming distance of two 64-hex PDQ hashes."""
    return int(np.bitwise_count(hex_to_words(a) ^ hex_to_words(b)).sum())


def pdq_within(centre: str, candidates: Sequence[str | None], threshold: int) -> list[int]:
    """Indexes of the candidates (None skipped) within ``threshold`` bits of ``centre``."""
    return PackedPdqs(candidates).within(centre, threshold)


class PackedPdqs:
    """Hex PDQ hashes (None skipped) packed once, for many :func:`pdq_within` questions."""

    def __init__(self, candidates: Sequence[str | None]):
        self.present = [i for i, c in enumerate(candidates) if c]
        bad = next((i for i in self.present if len(candidates[i] or "") != 2 * PDQ_BYTES),
                   None)
        if bad is not None:
            raise ValueError(f"candidate {bad} is not a 64-hex PDQ hash")
        blob = bytes.fromhex("".join(candidates[i] or "" for i in self.present))
        self.words = np.frombuffer(blob, dtype=np.uint64).reshape(-1, 4)

    def within(self, centre: str, threshold: int) -> list[int]:
        if not self.present:
            return []
        dist = _distances(self.words, hex_to_words(centre))
        return [self.present[k] for k in np.flatnonzero(dist <= threshold).tolist()]


def warm_up() -> None:
    """Compile the batched matching kernels now (or load them from numba's on-disk cache)."""
    rows = np.random.default_rng(0).integers(0, 256, (PdqIndex.BRUTE_MAX + 1, PDQ_BYTES),
                                              dtype=np.uint8)
    for brute in (False, True):
        index = PdqIndex(rows, DEFAULT_PDQ_THRESHOLD, brute=brute)
        for join in (False, True):
            index.nearest_many(rows[:3], threads=1, join=join)
