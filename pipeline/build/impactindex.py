"""A lookup index per committed manifest version, so `clearance impact` answers over many large
versions in about a second instead of scanning every row of every version.

Versions are immutable, so an index never goes stale; it lives beside the versions, not in
them (``manifests/<name>/.impact/v<N>/``: a version folder stays exactly what its
``manifest.json`` lists), records the sha256 of the ``manifest.json`` it was made from (a
version folder replaced by hand is re-indexed), and is written in a hidden temporary folder
and renamed, so a reader sees a whole index or none. ``clearance build`` makes the new
version's index right after committing it; ``impact`` makes any that are missing.

Per part file ``part-K`` of ``data/``:

- ``part-K.sha256.parquet``: the ``sha256`` column, sorted, in small row groups: a lookup reads
  the row groups whose min/max statistics can hold the hash (Parquet predicate pushdown);
- ``part-K.hosts.parquet``: (host, row, url, page_url) sorted by host, one entry per distinct
  host of a row's ``url`` and ``page_url`` (:func:`pipeline.build.takedowns.row_hosts`:
  lower-cased, or ``*`` where only URL normalisation can tell): a URL or URL-prefix lookup
  reads the entries of its host and ``*`` and runs the build's own matcher on them;
- ``part-K.creators.parquet``: (normalised creator, rows);
- ``part-K.pdq.npy``: the packed PDQ hashes, (M, 4) uint64, for a vectorised distance test.

Sources need no index: ``manifest.json`` counts the rows of each (``kept_by_source``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.build.takedowns import UNSURE, TakedownMatcher, host_of, pdq_rows, row_hosts
from pipeline.build.versions import DATA_DIR, MANIFEST_JSON
from pipeline.registry.optouts import normalise_creator
from pipeline.registry.takedowns import Takedown
from pipeline.safety.matching import pdq_within_words
from pipeline.safety.urls import normalise_url

INDEX_DIR = ".impact"
INDEX_JSON = "index.json"
FORMAT = 1
ROW_GROUP = 8192


def index_dir(version_dir: Path) -> Path:
    version_dir = Path(version_dir)
    return version_dir.parent / INDEX_DIR / version_dir.name


def ensure_index(version_dir: Path) -> Path:
    """The version's index folder, made first if missing or made from another manifest.json."""
    version_dir = Path(version_dir)
    folder = index_dir(version_dir)
    digest = _sha256(version_dir / MANIFEST_JSON)
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
    sha = pc.utf8_lower(table["sha256"].combine_chunks())
    _write(pa.table({"sha256": sha}).sort_by("sha256"), out / f"{stem}.sha256.parquet")

    url, page = table["url"].combine_chunks(), table["page_url"].combine_chunks()
    rows = pa.array(np.arange(table.num_rows, dtype=np.int64))
    by_url = pa.table({"host": row_hosts(url), "row": rows, "url": url, "page_url": page})
    page_host = row_hosts(page)
    other = pc.and_(pc.is_valid(page), pc.not_equal(page_host, by_url["host"]))
    other = pc.fill_null(other, False)
    by_page = pa.table({"host": page_host, "row": rows, "url": url, "page_url": page}).filter(other)
    hosts = pa.concat_tables([by_url.filter(pc.is_valid(url)), by_page])
    _write(hosts.sort_by([("host", "ascending"), ("row", "ascending")]),
           out / f"{stem}.hosts.parquet")

    creator = table["creator"].combine_chunks()
    encoded = pc.dictionary_encode(creator)
    names = pa.array([None if v is None else normalise_creator(v)
                      for v in encoded.dictionary.to_pylist()], pa.string())
    normalised = pa.table({"creator": names.take(encoded.indices)})
    counts = normalised.filter(pc.is_valid(normalised["creator"])).group_by("creator").aggregate(
        [([], "count_all")]).rename_columns(["creator", "rows"])
    _write(counts.sort_by("creator"), out / f"{stem}.creators.parquet")

    words, _ = pdq_rows(table["pdq"].combine_chunks())
    np.save(out / f"{stem}.pdq.npy", words)


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
            found = pq.read_table(folder / f"{stem}.sha256.parquet",
                                  filters=[("sha256", "==", value.lower())])
            total += found.num_rows
        elif kind == "creator":
            found = pq.read_table(folder / f"{stem}.creators.parquet",
                                  filters=[("creator", "==", normalise_creator(value))])
            total += int(pc.sum(found["rows"]).as_py() or 0)
        elif kind == "pdq":
            words = np.load(folder / f"{stem}.pdq.npy")
            if len(words):
                total += int(pdq_within_words(words, value, takedown.distance or 0).sum())
        elif kind in ("url", "url-prefix"):
            total += _url_matches(folder / f"{stem}.hosts.parquet", takedown)
        else:
            raise ValueError(f"unknown takedown kind {kind!r}")
    return total


def _url_matches(path: Path, takedown: Takedown) -> int:
    host = host_of(normalise_url(takedown.value))
    candidates = pq.read_table(path, filters=[("host", "in", sorted({host, UNSURE}))])
    if not candidates.num_rows:
        return 0
    hit = TakedownMatcher([takedown]).mask(candidates.select(["url", "page_url"]))
    return len(pc.unique(candidates["row"].filter(pa.array(hit))))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
