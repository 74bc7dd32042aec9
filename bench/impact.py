"""Time `clearance impact` (pipeline.build.impact) over many synthetic manifest versions.

Writes N versions of R rows (the matched columns plus a wide `signals`-like text column, so
column projection is exercised) into a temporary data dir and times one lookup per kind.

    .venv/bin/python -m bench.impact --versions 20 --rows 100000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.build.impact import impact
from pipeline.build.takedowns import query


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
    for v in range(1, versions + 1):
        folder = data / "manifests" / "bench" / f"v{v}"
        (folder / "data").mkdir(parents=True)
        pq.write_table(table, folder / "data" / "part-00000.parquet", compression="zstd")
        (folder / "manifest.json").write_text(json.dumps(
            {"created_at": datetime.now(UTC).isoformat(timespec="seconds")}))
    return {"url": table["url"][123].as_py(), "sha256": sha[456],
            "creator": "creator 77", "source": "src3", "url-prefix": "https://src4.example/img/1",
            "pdq": pdq[789]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        keys = write_versions(data, args.versions, args.rows)
        total = args.versions * args.rows
        for kind, value in keys.items():
            start = time.perf_counter()
            found = impact(data, query(kind, value))
            took = time.perf_counter() - start
            rows = sum(f["rows"] for f in found)
            print(f"{kind:<11} {took:7.3f} s  {total / took / 1e6:6.1f} M rows/s  "
                  f"{len(found)} versions, {rows} rows matched")


if __name__ == "__main__":
    main()
