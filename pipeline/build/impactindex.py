"""A lookup index per committed manifest version, so `clearance impact` answers over many large
versions in about a second instead of scanning every row of every version.

Versions are immutable, so an index never goes stale; it lives beside the versions, not in
them (``manifests/<name>/.impact/v<N>/``: a version folder stays exactly what its
``manifest.json`` lists), records the sha256 of the ``manifest.json`` it was made from (a
version folder replaced by hand is re-indexed), and is written in a hidden temporary folder
and renamed, so a reader sees a whole index or none. ``clearance build`` makes the new
version's index right after committing it; ``impact`` makes any that are missing.

Per part file ``part-K`` of ``data/``:

- ``part-K.sha256.npy``: the ``sha256`` hashes as sorted 32-byte strings (memory-mapped and
  binary-searched), and ``part-K.sha256-other.json`` for any value that is not 64 hex digits;
- ``part-K.urls.parquet``: (host, norm, row) sorted by host, one entry per distinct host of a
  row's ``url`` and ``page_url`` (:func:`pipeline.build.takedowns.row_hosts`: lower-cased, or
  ``*`` where only URL normalisation can tell), ``norm`` the URL normalised as takedowns match
  it (:func:`pipeline.safety.urls.normalise_url`; a URL already in normal form, which a
  conservative pattern recognises, is kept as it is): a URL or URL-prefix lookup reads the
  entries of its host and ``*`` (row-group pruning) and compares ``norm`` with Arrow;
- ``part-K.creators.parquet``: (normalised creator, rows);
- ``part-K.pdq.npy``: the packed PDQ hashes, (M, 4) uint64, for a vectorised distance test.

Sources need no index: ``manifest.json`` counts the rows of each (``kept_by_source``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.build.takedowns import _HEX, UNSURE, host_of, pdq_rows, row_hosts
from pipeline.build.versions import DATA_DIR, MANIFEST_JSON, sha256_file
from pipeline.registry.optouts import normalise_creator
from pipeline.registry.takedowns import Takedown
from pipeline.safety.matching import pdq_within_words
from pipeline.safety.urls import normalise_url, normalise_urls

INDEX_DIR = ".impact"
INDEX_JSON = "index.json"
FORMAT = 2
ROW_GROUP = 8192


def index_dir(version_dir: Path) -> Path:
    version_dir = Path(version_dir)
    return version_dir.parent / INDEX_DIR / version_dir.name


def ensure_index(version_dir: Path) -> Path:
    """The version's index folder, made first if missing or made from another manifest.json."""
    version_dir = Path(version_dir)
    folder = index_dir(version_dir)
    digest = sha256_file(version_dir / MANIFEST_JSON)
    meta = folder / INDEX_JSON
    if meta.is_file():
        try:
            doc = json.loads(meta.read_text(encoding="utf-8"))
            if doc.get("format") == FORMAT and doc.get("manifest_sha256") == digest:
                return folder
        except (OSError, ValueError):
            pass
    tmp = folder.with_name(f".tmp-{folder.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        parts = sorted((version_dir / DATA_DIR).glob("part-*.parquet"))
        for part in parts:
            _index_part(part, tmp)
        (tmp / INDEX_JSON).write_text(json.dumps(
            {"format": FORMAT, "manifest_sha256": digest, "parts": [p.stem for p in parts]},
            indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _index_part(part: Path, out: Path) -> None:
    table = pq.read_table(part, columns=["url", "page_url", "sha256", "creator", "pdq"])
    stem = part.stem
    packed, other = _hex64(_array(table, "sha256"))
    keys = np.sort(np.ascontiguousarray(packed).view("S32").ravel())
    np.save(out / f"{stem}.sha256.npy", keys)
    (out / f"{stem}.sha256-other.json").write_text(json.dumps(sorted(other)), encoding="utf-8")

    url, page = _array(table, "url"), _array(table, "page_url")
    rows = pa.array(np.arange(table.num_rows, dtype=np.int64))
    by_url = pa.table({"host": row_hosts(url), "norm": normalise_urls(url), "row": rows})
    by_page = pa.table({"host": row_hosts(page), "norm": normalise_urls(page), "row": rows})
    by_url = by_url.filter(pc.is_valid(url))
    by_page = by_page.filter(pc.is_valid(page))  # a row found twice counts once (unique row)
    entries = pa.concat_tables([by_url, by_page])
    _write(_sorted_by_host(entries), out / f"{stem}.urls.parquet")

    creator = _array(table, "creator")
    encoded = pc.dictionary_encode(creator)
    names = pa.array([None if v is None else normalise_creator(v)
                      for v in encoded.dictionary.to_pylist()], pa.string())
    normalised_creators = pa.table({"creator": names.take(encoded.indices)})
    valid = normalised_creators.filter(pc.is_valid(normalised_creators["creator"]))
    counts = valid.group_by("creator").aggregate([([], "count_all")])
    _write(counts.rename_columns(["creator", "rows"]).sort_by("creator"),
           out / f"{stem}.creators.parquet")

    words, _ = pdq_rows(_array(table, "pdq"))
    np.save(out / f"{stem}.pdq.npy", words)


def _sorted_by_host(entries: pa.Table) -> pa.Table:
    """Sorted by host, then row: ranks of the (few) distinct hosts, sorted in numpy."""
    encoded = pc.dictionary_encode(entries["host"].combine_chunks())
    hosts = encoded.dictionary.to_pylist()
    rank = np.empty(len(hosts), dtype=np.int64)
    rank[np.argsort(np.array(hosts, dtype=object), kind="stable")] = np.arange(len(hosts))
    codes = rank[encoded.indices.to_numpy(zero_copy_only=False)]
    order = np.lexsort((entries["row"].to_numpy(), codes))
    return entries.take(pa.array(order))


def _hex64(column: pa.Array) -> tuple[np.ndarray, list[str]]:
    """(the 64-hex values as (M, 32) uint8 bytes, the other non-null values lower-cased)."""
    lowered = pc.utf8_lower(column)
    ok = pc.fill_null(pc.match_substring_regex(lowered, r"^[0-9a-f]{64}$"), False)
    fixed = lowered.filter(ok).cast(pa.binary()).cast(pa.binary(64))
    start = fixed.offset * 64
    raw = np.frombuffer(fixed.buffers()[1], dtype=np.uint8)[start:start + len(fixed) * 64]
    nibbles = _HEX[raw.reshape(-1, 64)]
    packed = ((nibbles[:, 0::2] << 4) | nibbles[:, 1::2]).astype(np.uint8)
    others = lowered.filter(pc.and_(pc.invert(ok), pc.is_valid(lowered))).to_pylist()
    return packed, [o for o in others if o is not None]


def _array(table: pa.Table, column: str) -> pa.Array:
    data = table.column(column)
    return data.combine_chunks() if isinstance(data, pa.ChunkedArray) else data


def _write(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, row_group_size=ROW_GROUP, write_statistics=True,
                   compression="zstd")


def count_matches(version_dir: Path, manifest: dict[str, Any], takedown: Takedown) -> int:
    """Rows of the version the takedown (or query) names, from its index."""
    folder = ensure_index(version_dir)
    parts = json.loads((folder / INDEX_JSON).read_text(encoding="utf-8"))["parts"]
    kind, value = takedown.kind, takedown.value
    if kind == "source":
        return int(manifest.get("counts", {}).get("kept_by_source", {}).get(value, 0))
    total = 0
    for stem in parts:
        if kind == "sha256":
            total += _sha256_matches(folder, stem, value.lower())
        elif kind == "creator":
            found = pq.read_table(folder / f"{stem}.creators.parquet",
                                  filters=[("creator", "==", normalise_creator(value))])
            total += int(pc.sum(found["rows"]).as_py() or 0)
        elif kind == "pdq":
            words = np.load(folder / f"{stem}.pdq.npy")
            if len(words):
                total += int(pdq_within_words(words, value, takedown.distance or 0).sum())
        elif kind in ("url", "url-prefix"):
            total += _url_matches(folder / f"{stem}.urls.parquet", takedown)
        else:
            raise ValueError(f"unknown takedown kind {kind!r}")
    return total


def _sha256_matches(folder: Path, stem: str, value: str) -> int:
    keys = np.load(folder / f"{stem}.sha256.npy", mmap_mode="r")
    wanted = np.frombuffer(bytes.fromhex(value), dtype="S32")[0]
    found = int(np.searchsorted(keys, wanted, side="right") - np.searchsorted(keys, wanted))
    others = json.loads((folder / f"{stem}.sha256-other.json").read_text(encoding="utf-8"))
    return found + others.count(value)


def _url_matches(path: Path, takedown: Takedown) -> int:
    """Rows whose url or page_url the URL (prefix) takedown names, as its matcher decides:
    ``norm`` equal to (or starting with) the normalised value."""
    wanted = normalise_url(takedown.value)
    host = host_of(wanted)
    candidates = pq.read_table(path, filters=[("host", "in", sorted({host, UNSURE}))])
    if not candidates.num_rows:
        return 0
    norm = candidates["norm"]
    hit = (pc.equal(norm, wanted) if takedown.kind == "url"
           else pc.starts_with(norm, wanted))
    return len(pc.unique(candidates["row"].filter(pc.fill_null(hit, False))))
