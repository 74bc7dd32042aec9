"""`clearance screen` throughput: stored rows re-screened per second, against raw pyarrow.

    .venv/bin/python -m bench.rescreen [--rows 100000] [--list-size 100000]

Writes one run of ``--rows`` synthetic items (random PDQ hashes of quality 100) through the real
RunWriter, a sha256 list and a PDQ list of ``--list-size`` random entries, plus ``--plant`` rows
whose sha256 is listed. Times :func:`pipeline.lifecycle.rescreen.rescreen` (exact + PDQ matching,
incidents, the atomic rewrite of items.parquet and run.json; list loading excluded) against a
baseline in the same run: pyarrow reading the same items.parquet, ``is_in`` of its sha256
column against the sha256 list, filtering and writing it back (exact membership only). Offline.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers_config import settings_doc, source_doc, write_config  # noqa: E402
from helpers_runs import make_item, write_run  # noqa: E402

from pipeline.lifecycle.rescreen import rescreen  # noqa: E402
from pipeline.registry.config import load_config  # noqa: E402
from pipeline.safety.hashlists import Screener  # noqa: E402

RUN = "20260101T000000Z-bench0"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--list-size", type=int, default=100_000)
    parser.add_argument("--plant", type=int, default=10, help="listed rows to find")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="clearance-rescreen-"))
    try:
        config = write_config(tmp / "configs", [source_doc("aurora")])
        source = config.sources["aurora"]
        items = [make_item(source, f"https://aurora.example/gallery/{i}.jpg",
                           pdq=secrets.token_hex(32), pdq_quality=100)
                 for i in range(args.rows)]
        write_run(tmp / "data", RUN, items)
        folder = tmp / "configs" / "blocklists"
        folder.mkdir()
        planted = [row["sha256"] for row in items[:: max(1, args.rows // max(args.plant, 1))]]
        planted = planted[: args.plant]
        sha = [secrets.token_hex(32) for _ in range(args.list_size - len(planted))] + planted
        (folder / "sha.txt").write_text("\n".join(sha) + "\n")
        (folder / "pdq.txt").write_text(
            "".join(secrets.token_hex(32) + "\n" for _ in range(args.list_size)))
        for path in folder.iterdir():
            path.chmod(0o600)
        doc = settings_doc()
        doc["blocklists"] = [{"id": "s", "kind": "sha256", "path": "blocklists/sha.txt"},
                             {"id": "p", "kind": "pdq", "path": "blocklists/pdq.txt"}]
        (tmp / "configs" / "clearance.yaml").write_text(yaml.safe_dump(doc))
        config = load_config(tmp / "configs")
        screener = Screener.load(config)
        items_path = tmp / "data" / "runs" / RUN / "items.parquet"
        baseline_copy = tmp / "baseline.parquet"
        shutil.copy(items_path, baseline_copy)

        started = time.perf_counter()
        table = pq.read_table(baseline_copy)
        listed = pa.array(sha, type=pa.string())
        mask = pc.is_in(table["sha256"], value_set=listed)
        pq.write_table(table.filter(pc.invert(mask)), baseline_copy, compression="zstd")
        baseline = time.perf_counter() - started

        started = time.perf_counter()
        result = rescreen(config, tmp / "data", screener)
        ours = time.perf_counter() - started
        print(f"{args.rows:,} rows, lists of {args.list_size:,} sha256 + {args.list_size:,} PDQ; "
              f"{result['hits']} hits, {result['rows_withdrawn']} rows withdrawn")
        print(f"raw pyarrow is_in(sha256) + filter + write: {args.rows / baseline:,.0f} rows/s")
        print(f"clearance screen (exact + PDQ + URL, incidents, rewrite): "
              f"{args.rows / ours:,.0f} rows/s, {ours:.1f} s (target for 1M rows against "
              f"1M-entry lists: < 60 s)")
        print(f"load: {os.getloadavg()[0]:.2f}")
        print(f"ratio: {baseline / ours:.3f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
