"""Matching in memory: exact hashes by binary search, PDQ by multi-index, and the PDQ helpers
that the crawl, re-screening and (later) takedowns share.

Matching never touches disk: exact kinds are binary searches over sorted fixed-width rows;
PDQ uses a multi-index over 16 16-bit chunks (see :class:`PdqIndex`) with brute force for
small lists.
"""


from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING

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


def pdq_within_words(words: np.ndarray, centre: str, threshold: int) -> np.ndarray:
    """Boolean mask over packed hashes ((N, 4) uint64, see :func:`pdq_words`): which lie
    within ``threshold`` bits of ``centre`` (the vectorised form of :func:`pdq_within`)."""
    return _distances(words, hex_to_words(centre)) <= threshold


def pdq_distance(a: str, b: str) -> int:
    """Hamming distance of two 64-hex PDQ hashes."""
    return int(np.bitwise_count(hex_to_words(a) ^ hex_to_words(b)).sum())


def pdq_within(centre: str, candidates: Sequence[str | None], threshold: int) -> list[int]:
    """Indexes of the candidates (None skipped) within ``threshold`` bits of ``centre``."""
    present = [i for i, c in enumerate(candidates) if c]
    if not present:
        return []
    bad = next((i for i in present if len(candidates[i] or "") != 2 * PDQ_BYTES), None)
    if bad is not None:
        raise ValueError(f"candidate {bad} is not a 64-hex PDQ hash")
    blob = bytes.fromhex("".join(candidates[i] for i in present))  # type: ignore[misc]
    words = np.frombuffer(blob, dtype=np.uint64).reshape(-1, 4)
    dist = _distances(words, hex_to_words(centre))
    return [present[k] for k in np.flatnonzero(dist <= threshold).tolist()]
