"""Canonical PDQ in numba: the reference's float operations, in its order, without the GIL.

The bits and quality are exactly those of ``pdqhash`` (the Python binding of Meta's C++
reference), which tests/test_pdq.py checks on fixtures, random sizes and synthetic images:

* luma: ``R*0.299 + G*0.587 + B*0.114`` in float64, rounded to float32 (as the binding does it
  in numpy before handing the buffer to the C++);
* two rounds of Jarosz box filters, along rows then along columns, with windows
  ``ceil(n/128)`` and windows that shrink at the edges, every sum and quotient in float32 in
  the reference's order (``sum += in[ri]; sum -= in[li]; out = sum / count``);
* decimation to 64x64 at ``int((k + 0.5) * n / 64)``, the gradient quality metric, a 16x64
  float32 DCT matrix, bits set above the Torben median; the 8 dihedral variants by sign
  changes and transposes of the 16x16 DCT, as in the reference.

Why it is fast where the binding is not: rows are filtered as they stream through a ring of
``window + 1`` rows (the full-size float planes never exist, so the work stays in cache and
memory is a few rows), the last two passes only divide where decimation samples, and the whole
kernel runs with the GIL released, so decoding threads and the reactor run beside it. No
``fastmath``: reassociation or fused multiply-adds would move bits. Compiled once and cached on
disk (``cache=True``): the first image of a process costs the cache load (see
:func:`warm_up`), or the compile where the cache is absent.
"""

from __future__ import annotations

import math

import numba
import numpy as np

MIN_HASHABLE_DIM = 5  # the reference's: smaller images hash to zero with quality 0
VARIANTS = ("original", "rot90", "rot180", "rot270", "flipx", "flipy", "flipplus1", "flipminus1")


def _dct_matrix() -> np.ndarray:
    # float scale (sqrt(2/64) as float32) times a double cosine, stored as float32
    scale = float(np.float32(math.sqrt(2.0 / 64.0)))
    out = np.empty((16, 64), dtype=np.float32)
    for i in range(16):
        for j in range(64):
            out[i, j] = scale * math.cos((math.pi / 2.0 / 64.0) * float(i + 1) * float(2 * j + 1))
    return out


_DCT = _dct_matrix()
_DCT_T = np.ascontiguousarray(_DCT.T)


@numba.njit(nogil=True, cache=True)
def _box_phases(n: int, window: int) -> tuple[int, int, int, int]:
    half = (window + 2) // 2
    return half - 1, window - half + 1, n - window, half - 1


GROUP = 8  # rows filtered together: their running sums are independent chains


@numba.njit(nogil=True, cache=True)
def _box_rows(src: np.ndarray, dst: np.ndarray, dst_rows: np.ndarray, rows: int, n: int,
              window: int, need: np.ndarray) -> None:
    """The reference's one-dimensional box pass (box1DFloat: phases of growing, full and
    shrinking windows) over ``rows`` rows of ``src`` at once, into rows ``dst_rows`` of
    ``dst``, writing only where ``need`` (all when it is empty). Each row's sums and quotients
    are exactly those of its own pass; interleaving the rows only hides the latency of one
    long dependency chain behind the others."""
    p1, p2, p3, p4 = _box_phases(n, window)
    total = np.zeros(GROUP, dtype=np.float32)
    every = need.size == 0
    count = 0
    ri = 0
    li = 0
    oi = 0
    for _ in range(p1):
        for g in range(rows):
            total[g] += src[g, ri]
        count += 1
        ri += 1
    for _ in range(p2):
        count += 1
        divisor = np.float32(count)
        write = every or need[oi]
        for g in range(rows):
            total[g] += src[g, ri]
            if write:
                dst[dst_rows[g], oi] = total[g] / divisor
        ri += 1
        oi += 1
    for _ in range(p3):
        divisor = np.float32(count)
        write = every or need[oi]
        for g in range(rows):
            total[g] += src[g, ri]
            total[g] -= src[g, li]
            if write:
                dst[dst_rows[g], oi] = total[g] / divisor
        li += 1
        ri += 1
        oi += 1
    for _ in range(p4):
        count -= 1
        divisor = np.float32(count)
        write = every or need[oi]
        for g in range(rows):
            total[g] -= src[g, li]
            if write:
                dst[dst_rows[g], oi] = total[g] / divisor
        li += 1
        oi += 1


@numba.njit(nogil=True, cache=True)
def _luma_row(pix: np.ndarray, r: int, luma: np.ndarray) -> None:
    """Luma of pixel row ``r``: float64 sums rounded to float32, as the binding computes it."""
    width = pix.shape[1]
    if pix.shape[2] >= 3:
        for j in range(width):
            luma[j] = np.float32(np.float64(pix[r, j, 0]) * 0.299
                                 + np.float64(pix[r, j, 1]) * 0.587
                                 + np.float64(pix[r, j, 2]) * 0.114)
    else:  # grey: the same luma as its RGB conversion (R = G = B)
        for j in range(width):
            v = np.float64(pix[r, j, 0])
            luma[j] = np.float32(v * 0.299 + v * 0.587 + v * 0.114)


@numba.njit(nogil=True, cache=True)
def _downsample(pix: np.ndarray) -> np.ndarray:
    """The reference's blur and decimation of the luma plane to 64x64 (float32)."""
    height = pix.shape[0]
    width = pix.shape[1]
    win_rows = (width + 127) // 128  # along rows: from the number of columns
    win_cols = (height + 127) // 128
    row_idx = np.empty(64, dtype=np.int64)
    col_idx = np.empty(64, dtype=np.int64)
    for k in range(64):
        row_idx[k] = int(((k + 0.5) * height) / 64)
        col_idx[k] = int(((k + 0.5) * width) / 64)
    need_col = np.zeros(width, dtype=np.bool_)
    for k in range(64):
        need_col[col_idx[k]] = True
    every = np.zeros(0, dtype=np.bool_)

    # rows ri and li = ri - window are both held, and up to GROUP rows computed ahead
    slots = win_cols + GROUP + 1
    ring = np.empty((slots, width), dtype=np.float32)
    lumas = np.empty((GROUP, width), dtype=np.float32)
    slot_of = np.empty(GROUP, dtype=np.int64)
    colsum = np.zeros(width, dtype=np.float32)
    seconds = np.empty((GROUP, width), dtype=np.float32)  # second-pass rows waiting
    third_rows = np.empty((GROUP, width), dtype=np.float32)
    group_rows = np.arange(GROUP)
    out_of = np.empty(GROUP, dtype=np.int64)
    third = np.empty((height, 64), dtype=np.float32)  # third pass, sampled columns only
    state = np.zeros(2, dtype=np.int64)  # rows of the first pass computed; seconds waiting

    def ensure(r: int) -> None:
        # luma + first pass of the next GROUP rows, into their ring slots
        if r < state[0]:
            return
        start = state[0]
        rows = min(GROUP, height - start)
        for g in range(rows):
            _luma_row(pix, start + g, lumas[g])
            slot_of[g] = (start + g) % slots
        _box_rows(lumas, ring, slot_of, rows, width, win_rows, every)
        state[0] = start + rows

    def flush() -> None:
        rows = state[1]
        if rows == 0:
            return
        _box_rows(seconds, third_rows, group_rows, rows, width, win_rows, need_col)
        for g in range(rows):
            for k in range(64):
                third[out_of[g], k] = third_rows[g, col_idx[k]]
        state[1] = 0

    def emit(oi: int, count: int) -> None:
        g = state[1]
        divisor = np.float32(count)
        for j in range(width):
            seconds[g, j] = colsum[j] / divisor
        out_of[g] = oi
        state[1] = g + 1
        if g + 1 == GROUP:
            flush()

    p1, p2, p3, p4 = _box_phases(height, win_cols)
    count = 0
    ri = 0
    li = 0
    oi = 0
    for _ in range(p1):
        ensure(ri)
        slot = ri % slots
        for j in range(width):
            colsum[j] += ring[slot, j]
        count += 1
        ri += 1
    for _ in range(p2):
        ensure(ri)
        slot = ri % slots
        for j in range(width):
            colsum[j] += ring[slot, j]
        count += 1
        emit(oi, count)
        ri += 1
        oi += 1
    for _ in range(p3):
        ensure(ri)
        slot = ri % slots
        old = li % slots
        for j in range(width):
            colsum[j] += ring[slot, j]
            colsum[j] -= ring[old, j]
        emit(oi, count)
        li += 1
        ri += 1
        oi += 1
    for _ in range(p4):
        old = li % slots
        for j in range(width):
            colsum[j] -= ring[old, j]
        count -= 1
        emit(oi, count)
        li += 1
        oi += 1
    flush()

    # fourth pass: columns of the 64 sampled columns, then the 64 sampled rows
    fourth = np.empty((height, 64), dtype=np.float32)
    sums = np.zeros(64, dtype=np.float32)
    count = 0
    ri = 0
    li = 0
    oi = 0
    for _ in range(p1):
        for k in range(64):
            sums[k] += third[ri, k]
        count += 1
        ri += 1
    for _ in range(p2):
        for k in range(64):
            sums[k] += third[ri, k]
        count += 1
        for k in range(64):
            fourth[oi, k] = sums[k] / np.float32(count)
        ri += 1
        oi += 1
    for _ in range(p3):
        for k in range(64):
            sums[k] += third[ri, k]
            sums[k] -= third[li, k]
        for k in range(64):
            fourth[oi, k] = sums[k] / np.float32(count)
        li += 1
        ri += 1
        oi += 1
    for _ in range(p4):
        for k in range(64):
            sums[k] -= third[li, k]
        count -= 1
        for k in range(64):
            fourth[oi, k] = sums[k] / np.float32(count)
        li += 1
        oi += 1

    out = np.empty((64, 64), dtype=np.float32)
    for i in range(64):
        for k in range(64):
            out[i, k] = fourth[row_idx[i], k]
    return out


@numba.njit(nogil=True, cache=True)
def _quality(a: np.ndarray) -> int:
    hundred = np.float32(100.0)
    scale = np.float32(255.0)
    gradient = 0
    for i in range(63):
        for j in range(64):
            d = int(((a[i, j] - a[i + 1, j]) * hundred) / scale)
            gradient += abs(d)
    for i in range(64):
        for j in range(63):
            d = int(((a[i, j] - a[i, j + 1]) * hundred) / scale)
            gradient += abs(d)
    return min(gradient // 90, 100)


@numba.njit(nogil=True, cache=True)
def _dct(a: np.ndarray, dct: np.ndarray, dct_t: np.ndarray) -> np.ndarray:
    # T = D A, then B = T D^t; each output accumulated over k in order, from 0.0
    t = np.zeros((16, 64), dtype=np.float32)
    for i in range(16):
        for k in range(64):
            d = dct[i, k]
            for j in range(64):
                t[i, j] += d * a[k, j]
    b = np.zeros((16, 16), dtype=np.float32)
    for i in range(16):
        for k in range(64):
            v = t[i, k]
            for j in range(16):
                b[i, j] += v * dct_t[k, j]
    return b


@numba.njit(nogil=True, cache=True)
def _torben(m: np.ndarray) -> np.float32:
    """The median the reference thresholds at (Torben's method, as it implements it)."""
    n = m.size
    lo = m[0]
    hi = m[0]
    for i in range(1, n):
        if m[i] < lo:
            lo = m[i]
        if m[i] > hi:
            hi = m[i]
    half = (n + 1) // 2
    while True:
        guess = (lo + hi) / np.float32(2.0)
        less = 0
        greater = 0
        equal = 0
        max_lt = lo
        min_gt = hi
        for i in range(n):
            if m[i] < guess:
                less += 1
                if m[i] > max_lt:
                    max_lt = m[i]
            elif m[i] > guess:
                greater += 1
                if m[i] < min_gt:
                    min_gt = m[i]
            else:
                equal += 1
        if less <= half and greater <= half:
            break
        if less > greater:
            hi = max_lt
        else:
            lo = min_gt
    if less >= half:
        return max_lt
    if less + equal >= half:
        return guess
    return min_gt


@numba.njit(nogil=True, cache=True)
def _bits(b: np.ndarray, out: np.ndarray) -> None:
    """Bit ``i*16 + j`` set where ``b[i, j]`` is above the median, as 32 big-endian bytes."""
    flat = b.ravel()
    median = _torben(flat)
    for byte in range(32):
        out[byte] = 0
    for k in range(256):
        if flat[k] > median:
            out[31 - (k >> 3)] |= np.uint8(1 << (k & 7))


@numba.njit(nogil=True, cache=True)
def _variant(b: np.ndarray, which: int) -> np.ndarray:
    """The 16x16 DCT of a dihedral transform of the image (the reference's sign patterns)."""
    out = np.empty((16, 16), dtype=np.float32)
    for i in range(16):
        for j in range(16):
            v = b[i, j]
            if which == 1:  # rot90
                out[j, i] = v if j & 1 else -v
            elif which == 2:  # rot180
                out[i, j] = -v if (i + j) & 1 else v
            elif which == 3:  # rot270
                out[j, i] = v if i & 1 else -v
            elif which == 4:  # flip x
                out[i, j] = v if i & 1 else -v
            elif which == 5:  # flip y
                out[i, j] = v if j & 1 else -v
            elif which == 6:  # flip +1 (transpose)
                out[j, i] = v
            else:  # flip -1
                out[j, i] = -v if (i + j) & 1 else v
    return out


@numba.njit(nogil=True, cache=True)
def pdq_kernel(pix: np.ndarray, variants: int, dct: np.ndarray,
               dct_t: np.ndarray) -> tuple[np.ndarray, int]:
    """``(hashes, quality)``: ``hashes[v]`` the 32 bytes of variant ``v`` (first ``variants``)."""
    hashes = np.zeros((variants, 32), dtype=np.uint8)
    if pix.shape[0] < MIN_HASHABLE_DIM or pix.shape[1] < MIN_HASHABLE_DIM:
        return hashes, 0
    a = _downsample(pix)
    quality = _quality(a)
    b = _dct(a, dct, dct_t)
    _bits(b, hashes[0])
    for v in range(1, variants):
        _bits(_variant(b, v), hashes[v])
    return hashes, quality


def pdq_bytes(pixels: np.ndarray, variants: int = 1) -> tuple[np.ndarray, int]:
    """PDQ of a uint8 image array (HxWx3 RGB, HxWx4 whose 4th channel is ignored, as in
    Pillow's RGBX buffer, or HxW / HxWx1 grey): ``(bytes, quality)``.

    ``bytes`` has one row of 32 bytes per variant (``variants`` of :data:`VARIANTS`, in that
    order), the hash as the reference prints it (big-endian: ``bytes.hex()`` is its hex).
    """
    if pixels.dtype != np.uint8:
        raise TypeError(f"PDQ needs uint8 pixels, got {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3, 4):
        raise ValueError(f"PDQ needs HxWx3 RGB or HxW grey pixels, got shape {pixels.shape}")
    if not 1 <= variants <= 8:
        raise ValueError("variants is 1..8")
    hashes, quality = pdq_kernel(np.ascontiguousarray(pixels), variants, _DCT, _DCT_T)
    return hashes, int(quality)


def warm_up() -> float:
    """Compile (or load from the on-disk cache) the kernel now; returns the seconds it took."""
    import time

    start = time.perf_counter()
    pdq_bytes(np.zeros((8, 8, 3), dtype=np.uint8), 8)
    pdq_bytes(np.zeros((8, 8), dtype=np.uint8), 8)
    return time.perf_counter() - start
