"""Hash lists: parsing and validation, exact/PDQ/URL matching, permissions (pipeline.safety)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import write_config

from pipeline.registry.config import ConfigError, load_config
from pipeline.safety.hashlists import (
    Screener,
    _parse_fast,
    _parse_fast_chunked,
    _parse_lines,
    unique_rows,
)
from pipeline.safety.matching import DEFAULT_PDQ_THRESHOLD, PdqIndex, pdq_distance, pdq_within
from pipeline.safety.urls import normalise_url

SHA256_A = hashlib.sha256(b"a").hexdigest()
SHA256_B = hashlib.sha256(b"b").hexdigest()
MD5_A = hashlib.md5(b"a").hexdigest()
SHA1_A = hashlib.sha1(b"a").hexdigest()


def _screener(tmp_path: Path, lists: dict[str, tuple[str, str]], **extra: Any) -> Screener:
    """lists: id -> (kind, file text). Files are written 0600 under configs/blocklists/."""
    configs = tmp_path / "configs"
    (configs / "blocklists").mkdir(parents=True, exist_ok=True)
    specs = []
    for list_id, (kind, text) in lists.items():
        path = configs / "blocklists" / f"{list_id}.txt"
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)
        spec: dict[str, Any] = {"id": list_id, "kind": kind, "path": f"blocklists/{list_id}.txt"}
        spec.update(extra.get(list_id, {}))
        specs.append(spec)
    write_config(configs, [{"id": "src", "start_urls": ["https://src.example/"]}],
                 blocklists=specs)
    return Screener.load(load_config(configs))


def _flip(hex_hash: str, bits: list[int]) -> str:
    value = int(hex_hash, 16)
    for bit in bits:
        value ^= 1 << bit
    return f"{value:064x}"


def _problems(tmp_path: Path, kind: str, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _screener(tmp_path, {"bad": (kind, text)})
    return [str(p) for p in info.value.problems]


# --------------------------------------------------------------------------- parsing


def test_comments_blank_lines_and_any_case(tmp_path: Path) -> None:
    text = f"# partner list\n\n{SHA256_A.upper()}  # trailing comment\n   \n{SHA256_B}\n"
    screener = _screener(tmp_path, {"p": ("sha256", text)})
    (info,) = screener.lists
    assert info.entries == 2
    assert info.version == hashlib.sha256(text.encode()).hexdigest()
    assert info.path == "blocklists/p.txt" and info.threshold is None
    assert screener.match_hashes(sha256=SHA256_A) is not None
    assert screener.match_hashes(sha256=SHA256_B.upper()) is not None
    assert screener.match_hashes(sha256=hashlib.sha256(b"c").hexdigest()) is None


def test_bare_list_fast_path_matches_careful_path(tmp_path: Path) -> None:
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(100)]
    fast = _screener(tmp_path / "fast", {"p": ("sha256", "\n".join(hashes))})
    careful = _screener(tmp_path / "careful", {"p": ("sha256", "# x\n" + "\n".join(hashes))})
    assert fast.lists[0].entries == careful.lists[0].entries == 100
    for h in hashes:
        assert fast.match_hashes(sha256=h) and careful.match_hashes(sha256=h)


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("sha256", f"{SHA256_A}\n{SHA256_B}"),
        ("sha256", f"# header\r\n{SHA256_A.upper()}\r\n\r\n\t{SHA256_B}  # tail\r\n"),
        ("pdq", f"{SHA256_A},100\n{SHA256_B}\t87 # q\n  {SHA256_A}  \n\n"),
        ("md5", f"{MD5_A}#no space before the comment\n"),
    ],
)
def test_fast_parse_agrees_with_the_careful_parse(kind: str, text: str) -> None:
    width = {"sha256": 32, "pdq": 32, "md5": 16}[kind]
    fast = _parse_fast(text, kind, width)
    assert fast is not None
    assert fast.tobytes() == _parse_lines(text, kind, width, "x").tobytes()
    tripled = (text if text.endswith("\n") else text + "\n") * 3
    for chunk in (1, 7, 64, 1 << 20):  # slices cut at line ends give the same rows
        sliced = _parse_fast_chunked(tripled, kind, width, chunk=chunk)
        assert sliced is not None and sliced.tobytes() == fast.tobytes() * 3


@pytest.mark.parametrize(
    "text",
    [f"{SHA256_A} 100\n", f"{SHA256_A}\u00a0\n", f"{SHA256_A}\r{SHA256_B}\n", f"{SHA256_A}0\n",
     f"{SHA256_A},,1\n"],
)
def test_fast_parse_gives_unusual_lines_to_the_careful_parse(text: str) -> None:
    assert _parse_fast(text, "sha256", 32) is None


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("sha256", f"{SHA256_A}\n{SHA256_A[:-1]}\n", "line 2: expected 64 hex characters"),
        ("sha256", f"# c\n\n{SHA256_A[:-1]}g\n", "line 3: not a hex hash"),
        ("sha256", f"{SHA256_A} {SHA256_B}\n", "line 1: expected one hash per line, got 2"),
        ("md5", f"{SHA256_A}\n", "line 1: expected 32 hex characters for kind 'md5', got 64"),
        ("sha1", f"{MD5_A}\n", "line 1: expected 40 hex characters"),
        ("pdq", f"{SHA256_A},100,x.jpg\n", "line 1: expected a hash and an optional quality"),
        ("pdq", f"{SHA256_A} high\n", "line 1: PDQ quality must be an integer 0..100"),
        ("pdq", f"{SHA256_A},101\n", "line 1: PDQ quality must be an integer 0..100"),
        ("sha256", f"{SHA256_A}\u2028{SHA256_B}\n", "line 1: expected one hash per line"),
        ("url-sha256", "https://example.org/a.jpg\n", "line 1: not a hex hash"),
    ],
)
def test_malformed_line_names_file_and_line(
    tmp_path: Path, kind: str, text: str, expected: str
) -> None:
    problems = _problems(tmp_path, kind, text)
    assert len(problems) == 1
    assert problems[0].startswith("blocklists/bad.txt: ") and expected in problems[0]


def test_every_malformed_line_is_reported(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "sha256", f"zz\n{SHA256_A}\n{SHA256_A}0\n")
    assert [p.split(":")[1].strip() for p in problems] == ["line 1", "line 3"]


def test_a_leading_byte_order_mark_is_not_part_of_the_first_hash(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    (configs / "blocklists").mkdir(parents=True)
    raw = f"\ufeff{SHA256_A}\r\n{SHA256_B}\r\n".encode()
    (configs / "blocklists" / "p.txt").write_bytes(raw)
    write_config(configs, [{"id": "src", "start_urls": ["https://src.example/"]}],
                 blocklists=[{"id": "p", "kind": "sha256", "path": "blocklists/p.txt"}])
    screener = Screener.load(load_config(configs))
    assert screener.lists[0].entries == 2
    assert screener.lists[0].version == hashlib.sha256(raw).hexdigest()  # of the bytes as read
    assert screener.match_hashes(sha256=SHA256_A) is not None


def test_not_utf8_is_an_error(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    (configs / "blocklists").mkdir(parents=True)
    (configs / "blocklists" / "p.txt").write_bytes(f"{SHA256_A}\n\xff\n".encode("latin-1"))
    write_config(configs, [{"id": "src", "start_urls": ["https://src.example/"]}],
                 blocklists=[{"id": "p", "kind": "sha256", "path": "blocklists/p.txt"}])
    with pytest.raises(ConfigError) as info:
        Screener.load(load_config(configs))
    assert str(info.value) == "blocklists/p.txt: line 2: not valid UTF-8"


def test_pdq_quality_column_and_default_threshold(tmp_path: Path) -> None:
    base = hashlib.sha256(b"pdq").hexdigest()
    screener = _screener(tmp_path, {"p": ("pdq", f"{base},87\n{SHA256_B}\t100 # q\n")})
    assert screener.lists[0].threshold == DEFAULT_PDQ_THRESHOLD == 31
    assert screener.lists[0].entries == 2
    assert screener.needs_pdq and not screener.needs_sha1


def test_an_empty_list_loads_and_matches_nothing(tmp_path: Path) -> None:
    screener = _screener(tmp_path, {"e": ("pdq", "# nothing yet\n"), "s": ("sha256", "")})
    assert [i.entries for i in screener.lists] == [0, 0]
    assert screener.match_hashes(sha256=SHA256_A, pdq=SHA256_A) is None
    assert screener.match_pdq_all([SHA256_A]) == [None]


def test_refs_sorted_by_id_and_empty(tmp_path: Path) -> None:
    screener = _screener(tmp_path, {"zeta": ("md5", MD5_A), "alpha": ("sha1", SHA1_A)})
    assert [r["id"] for r in screener.refs()] == ["alpha", "zeta"]
    assert screener.refs()[0]["version"] == hashlib.sha256(SHA1_A.encode()).hexdigest()
    assert screener.needs_sha1 and not screener.needs_pdq
    empty = Screener.empty()
    assert empty.refs() == [] and empty.match_hashes(sha256=SHA256_A) is None
    assert empty.match_url("https://example.org/") is None and not empty.needs_pdq


def test_absolute_list_paths_are_not_shown_absolute(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    (configs / "lists").mkdir(parents=True)
    inside, outside = configs / "lists" / "in.txt", tmp_path / "secret-dir" / "out.txt"
    outside.parent.mkdir()
    for path in (inside, outside):
        path.write_text(SHA256_A + "\n")
        path.chmod(0o644)
    write_config(configs, [{"id": "src", "start_urls": ["https://src.example/"]}],
                 blocklists=[{"id": "a", "kind": "sha256", "path": str(inside)},
                             {"id": "b", "kind": "sha256", "path": str(outside)}],
                 screening={"pdq_dihedral": True})
    screener = Screener.load(load_config(configs))
    assert [i.path for i in screener.lists] == ["lists/in.txt", "out.txt"]
    assert all(str(tmp_path) not in w for w in screener.warnings())
    assert screener.pdq_dihedral is True
    outside.write_text("nope\n")
    with pytest.raises(ConfigError) as info:
        Screener.load(load_config(configs))
    assert str(info.value) == "out.txt: line 1: not a hex hash: 'nope'"


# --------------------------------------------------------------------------- exact matching


def test_exact_kinds_match_and_report_the_list(tmp_path: Path) -> None:
    screener = _screener(
        tmp_path, {"s2": ("sha256", SHA256_A), "m5": ("md5", MD5_A), "s1": ("sha1", SHA1_A)}
    )
    other = hashlib.sha256(b"z").hexdigest()
    hit = screener.match_hashes(sha256=other, md5=MD5_A)
    assert hit is not None and (hit.list_id, hit.kind, hit.matched, hit.distance) == (
        "m5", "md5", MD5_A, None)
    assert hit.list_version == screener.lists[0].version
    hit = screener.match_hashes(sha256=other, sha1=SHA1_A.upper())
    assert hit is not None and hit.list_id == "s1" and hit.matched == SHA1_A
    assert screener.match_hashes(sha256=SHA256_A) is not None
    assert screener.match_hashes(sha256=other, md5=hashlib.md5(b"z").hexdigest()) is None
    # A sha256 never matches an md5 list that happens to hold its prefix.
    assert screener.match_hashes(sha256=MD5_A * 2) is None
    # A hash of the wrong length is a caller's bug, never a silent miss.
    with pytest.raises(ValueError, match="md5 must be 32 hex"):
        screener.match_hashes(sha256=other, md5=SHA1_A)
    with pytest.raises(ValueError, match="sha256 must be 64 hex"):
        Screener.empty().match_hashes(sha256=MD5_A)


def test_exact_match_on_many_entries_sharing_prefixes(tmp_path: Path) -> None:
    # Entries that share the first 8 bytes exercise the prefix-range scan.
    rng = np.random.default_rng(1)
    prefix = "00" * 8
    rows = [prefix + rng.bytes(24).hex() for _ in range(50)]
    rows += [rng.bytes(32).hex() for _ in range(500)]
    screener = _screener(tmp_path, {"p": ("sha256", "\n".join(rows))})
    for row in rows:
        assert screener.match_hashes(sha256=row) is not None
    assert screener.match_hashes(sha256=prefix + "ff" * 24) is None
    assert screener.match_hashes(sha256="00" * 32) is None


# --------------------------------------------------------------------------- PDQ matching


def test_pdq_threshold_boundary(tmp_path: Path) -> None:
    base = hashlib.sha256(b"pdq").hexdigest()
    screener = _screener(tmp_path, {"p": ("pdq", base)}, p={"threshold": 10})
    assert screener.lists[0].threshold == 10
    hit = screener.match_hashes(sha256=SHA256_A, pdq=_flip(base, list(range(10))))
    assert hit is not None and (hit.kind, hit.matched, hit.distance) == ("pdq", base, 10)
    assert screener.match_hashes(sha256=SHA256_A, pdq=_flip(base, list(range(11)))) is None
    # A dihedral variant that matches counts.
    hit = screener.match_hashes(sha256=SHA256_A, pdq="0" * 64, pdq_variants=[base.upper()])
    assert hit is not None and hit.distance == 0


def test_nearest_pdq_over_lists_wins(tmp_path: Path) -> None:
    base = hashlib.sha256(b"pdq").hexdigest()
    near, far = _flip(base, [0]), _flip(base, list(range(5)))
    screener = _screener(tmp_path, {"a": ("pdq", far), "b": ("pdq", near)})
    hit = screener.match_hashes(sha256=SHA256_A, pdq=base)
    assert hit is not None and (hit.list_id, hit.distance, hit.matched) == ("b", 1, near)
    results = screener.match_pdq_all([base, None, "f" * 64, base.upper()])
    assert results == [hit, None, None, hit]


@pytest.mark.parametrize("threshold", [31, 10, 47])
def test_multi_index_agrees_with_brute_force(threshold: int) -> None:
    rng = np.random.default_rng(threshold)
    rows = np.unique(rng.integers(0, 256, (PdqIndex.BRUTE_MAX + 5000, 32), dtype=np.uint8),
                     axis=0)
    index = PdqIndex(rows, threshold)
    brute = PdqIndex(rows[:100], threshold)
    brute.rows, brute.words = index.rows, index.words  # same data, brute-force path
    assert not index.brute and brute.brute
    queries = []
    for distance in [*range(threshold + 2), 64, 128]:
        target = rows[int(rng.integers(len(rows)))].tobytes().hex()
        flipped = rng.choice(256, size=distance, replace=False).tolist()
        queries.append((_flip(target, flipped), distance))
    for query, distance in queries:
        got, want = index.nearest(query), brute.nearest(query)
        assert got == want, (distance, got, want)
        if distance <= threshold:
            assert got is not None and got[1] <= distance
        elif distance == threshold + 1:
            # Random 256-bit neighbours are ~128 bits away: nothing else is this close.
            assert got is None


@pytest.mark.parametrize(("threshold", "per_chunk"), [(31, 2), (47, 3), (15, 1), (63, 4)])
def test_multi_index_finds_differences_spread_over_every_chunk(
    threshold: int, per_chunk: int
) -> None:
    # The worst case for the pigeonhole: every chunk but one differs in more bits than the
    # probe radius; the remaining chunk carries what is left of the threshold.
    rng = np.random.default_rng(threshold)
    rows = unique_rows(rng.integers(0, 256, (PdqIndex.BRUTE_MAX * 2, 32), dtype=np.uint8))
    index = PdqIndex(rows, threshold)
    assert not index.brute
    target = rows[17].tobytes().hex()
    for spared in range(16):  # which chunk gets the remainder
        flips: list[int] = []
        for chunk in range(16):
            count = per_chunk if chunk != spared else threshold - 15 * per_chunk
            flips += (chunk * 16 + rng.choice(16, size=count, replace=False)).tolist()
        assert len(flips) == threshold
        # bit b of the hex string counted from the left is bit 255 - b of the integer
        query = _flip(target, [255 - b for b in flips])
        assert pdq_distance(query, target) == threshold
        assert index.nearest(query) == (17, threshold), spared


def test_pdq_distance_and_within() -> None:
    base = hashlib.sha256(b"x").hexdigest()
    assert pdq_distance(base, base) == 0
    assert pdq_distance(base, _flip(base, [0, 100, 255])) == 3
    assert pdq_distance("0" * 64, "f" * 64) == 256
    candidates = [_flip(base, list(range(31))), None, _flip(base, list(range(32))), base]
    assert pdq_within(base, candidates, 31) == [0, 3]
    assert pdq_within(base, [None, None], 31) == []
    with pytest.raises(ValueError, match="64-hex PDQ"):
        pdq_distance(base, base[:-2])
    with pytest.raises(ValueError):
        pdq_distance(base, base[:-1] + "g")
    with pytest.raises(ValueError, match="candidate 1"):
        pdq_within(base, [base, base[:-2], base + "00"], 31)  # would misalign the rest


# --------------------------------------------------------------------------- URL lists


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("HTTP://Example.COM:80/a/./b/../c#frag", "http://example.com/a/c"),
        ("https://example.com:443", "https://example.com/"),
        ("https://example.com:8443/x?", "https://example.com:8443/x"),
        ("https://user:pw@example.com./x", "https://example.com/x"),
        ("https://example.com/%7euser/%2f%e2%82%ac?q=%41%2b", "https://example.com/~user/%2F%E2%82%AC?q=A%2B"),
        ("https://example.com/caf\u00e9 au lait", "https://example.com/caf%C3%A9%20au%20lait"),
        ("https://b\u00fccher.example/", "https://xn--bcher-kva.example/"),
        ("https://example.com/a%zz?b=2&a=1", "https://example.com/a%25zz?b=2&a=1"),
        ("  https://[2001:DB8::1]:443/  ", "https://[2001:db8::1]/"),
    ],
)
def test_normalise_url(given: str, normal: str) -> None:
    assert normalise_url(given) == normal
    assert normalise_url(normal) == normal  # idempotent


def test_url_lists_match_normalised_urls(tmp_path: Path) -> None:
    listed = "https://cdn.example.org/img/a.jpg"
    digest = hashlib.sha256(listed.encode()).hexdigest()
    md5 = hashlib.md5(b"https://cdn.example.org/img/b.jpg").hexdigest()
    screener = _screener(tmp_path, {"links": ("url-sha256", digest), "old": ("url-md5", md5)})
    for variant in ("HTTPS://CDN.example.org:443/img/./a.jpg#x", "http://cdn.example.org/img/a.jpg",
                    "https://cdn.example.org/img/%61.jpg"):
        hit = screener.match_url(variant)
        assert hit is not None and (hit.list_id, hit.kind, hit.matched) == (
            "links", "url-sha256", digest)
    hit = screener.match_url("https://cdn.example.org/img/b.jpg")
    assert hit is not None and hit.list_id == "old"
    assert screener.match_url("https://cdn.example.org/img/A.jpg") is None
    # URL lists never match content hashes, and content lists never match URLs.
    assert screener.match_hashes(sha256=digest) is None


# --------------------------------------------------------------------------- permissions


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_group_or_other_readable_list_warns(tmp_path: Path) -> None:
    screener = _screener(tmp_path, {"p": ("sha256", SHA256_A), "q": ("md5", MD5_A)})
    assert screener.warnings() == []
    configs = tmp_path / "configs"
    (configs / "blocklists" / "p.txt").chmod(0o644)
    (configs / "blocklists" / "q.txt").chmod(0o620)
    screener = Screener.load(load_config(configs))
    assert screener.warnings() == [
        "blocklists/p.txt: readable by group/others (mode 0644); chmod 600 it",
        "blocklists/q.txt: writable by group/others (mode 0620); chmod 600 it",
    ]
    assert len(screener.lists) == 2  # a warning, not an error


# --------------------------------------------------------------------------- the benchmark


def test_bench_screen_lists_load_and_its_screening_path_matches(tmp_path: Path) -> None:
    """bench/screen.py measures real screening: its lists load and its hot path finds hits."""
    import sys

    repo = Path(__file__).resolve().parents[1]
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    from bench import screen as bench_screen
    from crawler.perceptual import pdq_hash

    images = [bench_screen.make_jpeg(i, (128, 96)) for i in range(3)]
    assert images[0] == bench_screen.make_jpeg(0, (128, 96))  # deterministic
    lists = tmp_path / "blocklists"
    lists.mkdir()
    sha_rows = bench_screen.random_rows(50, 32, 1)
    sha_rows[7] = np.frombuffer(hashlib.sha256(images[1]).digest(), dtype=np.uint8)
    pdq_rows = bench_screen.random_rows(50, 32, 2)
    pdq_rows[3] = np.frombuffer(
        bytes.fromhex(pdq_hash(bench_screen.decode(images[2]))[0]), dtype=np.uint8)
    bench_screen.write_list(lists / "sha256.txt", sha_rows, "")
    bench_screen.write_list(lists / "pdq.txt", pdq_rows, "# header\n")
    config = bench_screen.config_for(tmp_path, [
        {"id": "pdq", "kind": "pdq", "path": "blocklists/pdq.txt"},
        {"id": "sha256", "kind": "sha256", "path": "blocklists/sha256.txt"},
    ])
    screener = Screener.load(config)
    assert [i.entries for i in screener.lists] == [50, 50] and screener.warnings() == []
    assert [bench_screen.screened(d, screener) for d in images] == [False, True, True]
