"""Time `clearance impact` (pipeline.build.impact) over many synthetic manifest versions: the
per-version lookup index (pipeline.build.impactindex) against the scan with the build's matcher
over the same versions, one lookup per kind, in one run.

Writes N versions of R rows (the matched columns plus a wide `signals`-like text column, so
column projection is exercised; the versions share one part file by hard link) into a temporary
data dir, times making each version's index (what `clearance build` adds after committing), then
each kind's lookup by index and by scan (the scan over at most --scan-versions versions,
extrapolated to all when fewer, and said so).

    .venv/bin/python -m bench.impact --versions 20 --rows 100000
    .venv/bin/python -m bench.impact --versions 100 --rows 1000000 --scan-versions 10
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.build.impact import impact
from pipeline.build.impactindex import ensure_index
from pipeline.build.takedowns import query
from pipeline.registry.takedowns import Takedown


def write_versions(data: Path, versions: int, rows: int) -> dict[str, str]:
    rng = np.random.default_rng(0)
    sha = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(rows)]
    pdq = [bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex() for _ in range(rows)]
    table = pa.table({
        "row_id": sha,
        "url": [f"https://src{i % 50}.example/img/{i}.jpg" for i in range(rows)],
        "page_url": [f"https://src{i % 50}.example/gallery/{i // 20}/" for i in range(rows)],
        "source_id": [f"src{i % 50}" for i in range(rows)],
        "sha256": sha,
        "pdq": pdq,
        "creator": [f"Creator {i % 5000}" for i in range(rows)],
        "signals": ["x" * 1000] * rows,
    })
    shared = data / "part.parquet"
    pq.write_table(table, shared, compression="zstd")
    by_source = {k: v for k, v in sorted(Counter(table["source_id"].to_pylist()).items())}
    for v in range(1, versions + 1):
        folder = data / "manifests" / "bench" / f"v{v}"
        (folder / "data").mkdir(parents=True)
        os.link(shared, folder / "data" / "part-00000.parquet")
        (folder / "manifest.json").write_text(json.dumps(
            {"created_at": datetime.now(UTC).isoformat(timespec="seconds"), "version": v,
             "counts": {"kept_by_source": by_source}}))
    return {"url": table["url"][123].as_py(), "sha256": sha[456],
            "creator": "creator 77", "source": "src3", "url-prefix": "https://src4.example/img/1",
            "pdq": pdq[789]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--scan-versions", type=int, default=None,
                        help="scan at most this many versions and extrapolate (default: all)")
    args = parser.parse_args()
    scanned = min(args.scan_versions or args.versions, args.versions)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        keys = write_versions(data, args.versions, args.rows)
        folders = sorted((data / "manifests" / "bench").glob("v*"))
        start = time.perf_counter()
        for folder in folders:
            ensure_index(folder)
        made = time.perf_counter() - start
        print(f"{args.versions} versions x {args.rows:,} rows; index: "
              f"{made / args.versions:.2f} s per version to make")
        for kind, value in keys.items():
            q = query(kind, value)
            start = time.perf_counter()
            found = impact(data, q)
            took = time.perf_counter() - start
            scan = _scan_time(data, q, folders, scanned) * args.versions / scanned
            rows = sum(f["rows"] for f in found)
            note = "" if scanned == args.versions else f" (from {scanned} versions)"
            print(f"{kind:<11} index {took:7.3f} s  scan {scan:8.2f} s{note}  "
                  f"{scan / took:7.0f}x  {len(found)} versions, {rows} rows matched")


def _scan_time(data: Path, q: Takedown, folders: list[Path], count: int) -> float:
    """The scan over the first ``count`` versions only (the others moved aside meanwhile)."""
    aside = data / "aside"
    aside.mkdir(exist_ok=True)
    moved = folders[count:]
    for folder in moved:
        folder.rename(aside / folder.name)
    try:
        start = time.perf_counter()
        impact(data, q, scan=True)
        return time.perf_counter() - start
    finally:
        for folder in moved:
            (aside / folder.name).rename(folder)


if __name__ == "__main__":
    main()
