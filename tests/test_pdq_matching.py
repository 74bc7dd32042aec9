"""Batched PDQ matching (PdqIndex.nearest_many, Screener.match_pdq_all) against brute force.

Planted near-matches at every distance 0..threshold+1 from each query, over lists large
enough for the multi-index and small enough for brute force, at several thresholds: the
batched answer must be the one-by-one answer (same index, same distance) and the brute-force
nearest distance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.safety.matching import PdqIndex, pdq_words


def _flip(row: np.ndarray, bits: np.ndarray) -> np.ndarray:
    out = row.copy()
    for bit in bits:
        out[bit // 8] ^= np.uint8(1 << (bit % 8))
    return out


def _planted(rng: np.random.Generator, n_random: int, queries: int, threshold: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """(list rows, query rows): each query has entries at distance 0..threshold+1 planted,
    except that every third query has none below threshold+1 (a near miss only)."""
    qs = rng.integers(0, 256, (queries, 32), dtype=np.uint8)
    planted = []
    for k, q in enumerate(qs):
        distances = range(threshold + 1, threshold + 3) if k % 3 == 2 else range(threshold + 2)
        for d in distances:
            planted.append(_flip(q, rng.choice(256, d, replace=False)))
    rows = np.concatenate([rng.integers(0, 256, (n_random, 32), dtype=np.uint8),
                           np.array(planted)])
    rows = np.unique(rows.view("V32").ravel()).view(np.uint8).reshape(-1, 32)
    return rows, qs


def _brute_nearest(rows: np.ndarray, query: np.ndarray, threshold: int) -> int:
    d = np.bitwise_count(pdq_words(rows) ^ pdq_words(query[None])).sum(axis=1)
    return int(d.min()) if d.min() <= threshold else -1


@pytest.mark.parametrize("threshold", [0, 15, 31, 40])
@pytest.mark.parametrize("n_random", [300, 20_000])
def test_nearest_many_is_nearest_and_brute_force(threshold: int, n_random: int) -> None:
    rng = np.random.default_rng(threshold * 7 + n_random)
    rows, queries = _planted(rng, n_random, 30, threshold)
    extra = rng.integers(0, 256, (20, 32), dtype=np.uint8)  # unrelated queries: no match
    queries = np.concatenate([queries, extra])
    index = PdqIndex(rows, threshold)
    assert index.brute == (len(rows) < PdqIndex.BRUTE_MAX)
    got_index, got_distance = index.nearest_many(queries)
    joined = index.nearest_many(queries, join=True)
    assert (joined[0] == got_index).all() and (joined[1] == got_distance).all()
    for k, query in enumerate(queries):
        one = index.nearest(query.tobytes().hex())
        assert (got_index[k], got_distance[k]) == ((-1, -1) if one is None else one), k
        assert got_distance[k] == _brute_nearest(rows, query, threshold), k
    planted_hits = got_distance[:30]
    assert (planted_hits[np.arange(30) % 3 != 2] == 0).all()  # the exact copy wins
    assert (planted_hits[np.arange(30) % 3 == 2] == -1).all()  # threshold+1 is a miss


def test_each_planted_distance_is_found_when_it_is_the_nearest() -> None:
    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, (1, 32), dtype=np.uint8)[0]
    noise = rng.integers(0, 256, (10_000, 32), dtype=np.uint8)
    for d in range(0, 33):
        rows = np.concatenate([noise, _flip(base, rng.choice(256, d, replace=False))[None]])
        index = PdqIndex(rows, 31)
        found_index, found_distance = index.nearest_many(base[None], threads=1)
        if d <= 31:
            assert (found_index[0], found_distance[0]) == (len(rows) - 1, d)
        else:
            assert found_index[0] == -1


def test_threads_do_not_change_the_answer() -> None:
    rng = np.random.default_rng(9)
    rows, queries = _planted(rng, 50_000, 40, 31)
    index = PdqIndex(rows, 31)
    one = index.nearest_many(queries, threads=1, join=False)
    for threads in (1, 2, 3, 7):
        for join in (False, True):
            many = index.nearest_many(queries, threads=threads, join=join)
            assert (one[0] == many[0]).all() and (one[1] == many[1]).all()


def test_screener_match_pdq_all_is_match_hashes_one_by_one(tmp_path: Path) -> None:
    from conftest import write_config

    from pipeline.registry.config import load_config
    from pipeline.safety.hashlists import Screener

    rng = np.random.default_rng(11)
    rows_a, queries = _planted(rng, 6_000, 20, 31)
    # exact copies of five queries in the second list too
    rows_b = np.concatenate([rng.integers(0, 256, (500, 32), dtype=np.uint8), queries[:5]])
    configs = tmp_path / "configs"
    (configs / "blocklists").mkdir(parents=True)
    for name, rows in (("a", rows_a), ("b", rows_b)):
        lines = [r.tobytes().hex() + (",10" if i % 7 == 0 else "") for i, r in enumerate(rows)]
        path = configs / "blocklists" / f"{name}.txt"
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
    write_config(configs, [{"id": "src", "start_urls": ["https://src.example/"]}],
                 blocklists=[{"id": n, "kind": "pdq", "path": f"blocklists/{n}.txt"}
                             for n in ("a", "b")])
    screener = Screener.load(load_config(configs))
    hexes = [q.tobytes().hex() for q in queries] + [None, queries[0].tobytes().hex().upper()]
    batched = screener.match_pdq_all(hexes)
    one_by_one = [screener.match_hashes(sha256="0" * 64, pdq=h) if h else None for h in hexes]
    assert batched == one_by_one
    assert sum(hit is not None for hit in batched) >= 14


def test_screener_match_exact_all_is_match_hashes_one_by_one(tmp_path: Path) -> None:
    import hashlib

    from conftest import write_config

    from pipeline.registry.config import load_config
    from pipeline.safety.hashlists import Screener

    bodies = [f"body {i}".encode() for i in range(300)]
    sha = [hashlib.sha256(b).hexdigest() for b in bodies]
    md5 = [hashlib.md5(b).hexdigest() for b in bodies]
    sha1 = [hashlib.sha1(b).hexdigest() for b in bodies]
    configs = tmp_path / "configs"
    (configs / "blocklists").mkdir(parents=True)
    lists = {"s1": ("sha256", sha[::7]), "s2": ("sha256", sha[::5]), "m": ("md5", md5[::3]),
             "h": ("sha1", sha1[::2])}
    for name, (_kind, values) in lists.items():
        path = configs / "blocklists" / f"{name}.txt"
        path.write_text("\n".join(v.upper() if i % 2 else v for i, v in enumerate(values)))
        path.chmod(0o600)
    write_config(configs, [{"id": "src", "start_urls": ["https://src.example/"]}],
                 blocklists=[{"id": n, "kind": k, "path": f"blocklists/{n}.txt"}
                             for n, (k, _v) in lists.items()])
    screener = Screener.load(load_config(configs))
    md5_col: list[str | None] = [None if i % 11 == 0 else v for i, v in enumerate(md5)]
    sha1_col: list[str | None] = ["" if i % 13 == 0 else v for i, v in enumerate(sha1)]
    batched = screener.match_exact_all({"sha256": sha, "md5": md5_col, "sha1": sha1_col})
    one_by_one = [screener.match_hashes(sha256=s, md5=m, sha1=h)
                  for s, m, h in zip(sha, md5_col, sha1_col, strict=True)]
    assert batched == one_by_one and sum(h is not None for h in batched) > 150


def test_ties_are_broken_as_one_by_one() -> None:
    """Several entries at the same smallest distance: every path answers the same one."""
    rng = np.random.default_rng(21)
    queries = rng.integers(0, 256, (25, 32), dtype=np.uint8)
    tied = [_flip(q, rng.choice(256, d, replace=False))
            for q in queries for d in (3, 3, 3, 17, 17) for _ in range(2)]
    rows = np.concatenate([rng.integers(0, 256, (8_000, 32), dtype=np.uint8), np.array(tied)])
    rows = np.unique(rows.view("V32").ravel()).view(np.uint8).reshape(-1, 32)
    index = PdqIndex(rows, 31)
    want = [index.nearest(q.tobytes().hex()) for q in queries]
    for join in (False, True):
        got = index.nearest_many(queries, threads=2, join=join)
        assert [(int(i), int(d)) for i, d in zip(*got, strict=True)] == want
