"""Time `clearance build` (pipeline.build.builder) against raw pyarrow on the same rows.

Generates realistic runs (every ITEMS_SCHEMA column; a `signals` list of 8 checks with raw
evidence, licence evidence, blocklist refs; ~5% duplicate content, ~2% URLs fetched again in a
later run, 8 sources of which one revoked, allowed and refused licences, 5,000 creators) and
caches them under the bench dir. Each measurement runs in its own child process so its peak RSS
is its own (``resource.getrusage(RUSAGE_CHILDREN)``):

* ours: ``build_manifest`` of all runs (time, rows/s, peak RSS);
* baseline: raw pyarrow of the same rows: read every items.parquet, ``sort_by`` the published
  order, write 1M-row zstd parts in 100k-row groups (what a build must at least do);
* ratio: baseline time / our time (target >= 0.5);
* takedown-to-version: ``clearance takedown add --url ...`` then ``clearance build`` through
  the CLI, from the first command's start to the committed version (the moment its
  manifest.json appears: the build renames the finished version into place; target < 10 s at
  1M), and the CLI total, until the build command ends (it then makes the impact index).

At 10M rows the raw baseline would need ~2 KB per row in memory (~20 GB): it runs only when
``--baseline-10m`` is given, else its time is the 1M baseline scaled by 10 (said so).

    .venv/bin/python -m bench.build                      # 1M rows
    .venv/bin/python -m bench.build --rows 1000000 --rows 10000000   # 10M too (~15 min)
    .venv/bin/python -m bench.build --rows 100000 --dir /tmp/bench-build   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from pipeline.runs.schema import ITEMS_SCHEMA, REJECTIONS_SCHEMA

RUN_ROWS = 500_000  # rows per generated run
SOURCES = [f"src{i}" for i in range(8)]
REVOKED = "src7"
LICENCES = ["CC-BY-4.0"] * 10 + ["CC0-1.0"] * 5 + ["CC-BY-SA-4.0"] * 2 + ["CC-BY-NC-4.0"] * 2 + [
    "LicenseRef-example-terms"]
CHECKS = ["robots", "ai_agents", "x_robots_tag", "meta_robots", "tdmrep", "content_usage",
          "iptc_data_mining", "c2pa"]
TIMEOUT = 3600  # no child may run longer than this
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
_START = datetime(2026, 1, 1, tzinfo=UTC)


# -- data --------------------------------------------------------------------------------------


def _mix(x: np.ndarray, seed: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        h = x.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed)
        h ^= h >> np.uint64(31)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(29)
        return h


def _hex(ids: np.ndarray, words: int, seed: int) -> pa.Array:
    """A deterministic lowercase hex string of ``words`` * 16 digits per id."""
    raw = np.stack([_mix(ids, seed + w) for w in range(words)], axis=1).astype(">u8")
    nibbles = raw.view(np.uint8).reshape(len(ids), words * 8)
    chars = np.empty((len(ids), words * 16), np.uint8)
    chars[:, 0::2] = _HEX[nibbles >> 4]
    chars[:, 1::2] = _HEX[nibbles & 15]
    fixed = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(words * 16), len(ids), [None, pa.py_buffer(chars.tobytes())])
    return fixed.cast(pa.binary()).cast(pa.string())


def _str(values: np.ndarray) -> pa.Array:
    return pa.array(values).cast(pa.string())


def _join(*parts: Any) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _signals(n: int, host: pa.Array, rng: np.random.Generator) -> pa.Array:
    k = len(CHECKS)
    rows = np.repeat(np.arange(n), k)
    hosts = host.take(pa.array(rows))
    check = pa.array(np.tile(CHECKS, n))
    found = pc.if_else(
        pa.array(rng.random(n * k) < 0.5),
        _join("User-agent: *\nAllow: /gallery/ # ", hosts),
        pa.nulls(n * k, pa.string()),
    )
    decision = pa.array(np.where(rng.random(n * k) < 0.7, "allow", "none"))
    detail = _join("https://", hosts, "/", check, ".txt")
    structs = pa.StructArray.from_arrays(
        [check, pa.array(np.ones(n * k, bool)), found, decision, detail],
        fields=list(ITEMS_SCHEMA.field("signals").type.value_type))
    return pa.ListArray.from_arrays(pa.array(np.arange(0, n * k + 1, k, dtype=np.int32)), structs)


def items_table(start: int, n: int, total: int, run_index: int, run_id: str,
                run_start: int = 0) -> pa.Table:
    """Rows ``start .. start + n`` of a ``total``-row corpus (deterministic); the run holding
    them starts at row ``run_start``."""
    rng = np.random.default_rng(start + 1)
    ids = np.arange(start, start + n, dtype=np.int64)
    content = ids.copy()
    dup = rng.random(n) < 0.05
    content[dup] = rng.integers(0, total, int(dup.sum()))
    url_id = ids.copy()
    if run_index:  # fetched again: the URL (and content) of a row of an earlier run
        again = rng.random(n) < 0.02
        # a bijection onto earlier rows (7919 is prime to every run start): no URL twice a run
        url_id[again] = (ids[again] * 7919) % run_start
        content[again] = url_id[again]
    source_ix = (_mix(url_id, 1) % np.uint64(len(SOURCES))).astype(np.int64)
    source = pa.array(np.array(SOURCES)[source_ix])
    host = _join(source, ".example")
    url = _join("https://cdn.", host, "/img/", _str(url_id // 1000), "/", _str(url_id), ".jpg")
    page = _join("https://", host, "/gallery/", _str(url_id // 20), "/")
    sha = _hex(content, 4, 11)
    licence_ix = (_mix(content, 3) % np.uint64(len(LICENCES))).astype(np.int64)
    licence = pa.array(np.array(LICENCES)[licence_ix])
    creator_ix = (_mix(content, 5) % np.uint64(5000)).astype(np.int64)
    creator = pc.if_else(pa.array(creator_ix % 10 == 0), pa.nulls(n, pa.string()),
                         _join("Creator ", _str(creator_ix)))
    fetched = pa.array(
        np.datetime64(_START.replace(tzinfo=None)) + np.timedelta64(run_index, "D")
        + (ids - start).astype("timedelta64[ms]"), pa.timestamp("us", tz="UTC"))
    evidence_type = ITEMS_SCHEMA.field("licence_evidence").type.value_type
    evidence = pa.ListArray.from_arrays(
        pa.array(np.arange(n + 1, dtype=np.int32)),
        pa.StructArray.from_arrays(
            [pa.array(["source-default"] * n), licence, pa.nulls(n, pa.string()), licence,
             pa.array(["default"] * n)], fields=list(evidence_type)))
    block_type = ITEMS_SCHEMA.field("blocklists").type.value_type
    blocklists = pa.ListArray.from_arrays(
        pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)),
        pa.StructArray.from_arrays(
            [pa.array(["partner-sha256", "partner-pdq"] * n), pa.array(["ab" * 32] * (2 * n))],
            fields=list(block_type)))
    columns = {
        "row_id": sha,
        "url": url,
        "page_url": page,
        "source_id": source,
        "consent_id": _join("C-", source),
        "consent_sha256": _hex(source_ix, 4, 17),
        "age_verification_id": _join("AV-", source),
        "fetched_at": fetched,
        "http_status": pa.array(np.full(n, 200, np.int32)),
        "content_type": pa.array(["image/jpeg"] * n),
        "bytes": pa.array(rng.integers(20_000, 900_000, n)),
        "sha256": sha,
        "md5": _hex(content, 2, 13),
        "pdq": _hex(content, 4, 19),
        "width": pa.array(rng.integers(64, 4000, n).astype(np.int32)),
        "height": pa.array(rng.integers(64, 4000, n).astype(np.int32)),
        "licence": licence,
        "licence_url": pa.nulls(n, pa.string()),
        "licence_source": pa.array(["source-default"] * n),
        "creator": creator,
        "attribution": pc.if_else(pc.is_null(creator), pa.nulls(n, pa.string()),
                                  _join("Photo by ", pc.fill_null(creator, ""))),
        "caption": _join("A photograph from the collection of ", source, ", item ",
                         _str(url_id)),
        "signals": _signals(n, host, rng),
        "blocklists": blocklists,
        "run_id": pa.array([run_id] * n),
        "sha1": _hex(content, 3, 23).cast(pa.string()),
        "pdq_quality": pa.array(rng.integers(50, 100, n).astype(np.int32)),
        "licence_evidence": evidence,
        "licence_disagreement": pa.nulls(n, pa.string()),
        "minor_age_disclosure": pa.nulls(n, pa.string()),
        "model_release_status": pa.nulls(n, pa.string()),
        "credit": pa.nulls(n, pa.string()),
    }
    columns["sha1"] = pc.utf8_slice_codeunits(columns["sha1"], 0, 40)
    return pa.table([columns[f.name].cast(f.type) for f in ITEMS_SCHEMA], schema=ITEMS_SCHEMA)


def generate(data: Path, rows: int) -> list[Path]:
    """Runs of RUN_ROWS rows under ``data/runs`` (kept when already there)."""
    runs = []
    for index, start in enumerate(range(0, rows, RUN_ROWS)):
        run_id = f"2026{index // 28 + 1:02d}{index % 28 + 1:02d}T000000Z-bench{index:03d}"
        folder = data / "runs" / run_id
        runs.append(folder)
        if (folder / "run.json").is_file():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        n = min(RUN_ROWS, rows - start)
        with pq.ParquetWriter(folder / "items.parquet", ITEMS_SCHEMA, compression="zstd") as w:
            for offset in range(0, n, 100_000):
                w.write_table(items_table(start + offset, min(100_000, n - offset), rows, index,
                                          run_id, start))
        pq.write_table(REJECTIONS_SCHEMA.empty_table(), folder / "rejections.parquet")
        (folder / "run.json").write_text(json.dumps({
            "run_id": run_id, "started_at": _START.isoformat(), "finished_at": _START.isoformat(),
            "sources": SOURCES, "config_sha256": "0" * 64, "versions": {},
            "counts": {"items": n, "rejections": 0, "withheld": 0, "by_reason": {}},
            "limits_hit": []}))
    return runs


def write_configs(root: Path) -> None:
    today = date.today()
    (root / "sources").mkdir(parents=True, exist_ok=True)
    (root / "clearance.yaml").write_text(yaml.safe_dump({
        "user_agent": "ClearanceBot/0.1 (+https://example.org/clearance-bot)",
        "robots_token": "ClearanceBot", "intended_use": "ai-training",
        "licences": {"allow": ["CC0-1.0", "CC-BY-4.0", "CC-BY-SA-4.0", "PDDL-1.0"]},
        "age_verification": {"accepted_methods": ["government-id"], "max_age_days": 730},
        "signals": {}, "exclude_minors": True, "blocklists": [],
    }))
    for source in SOURCES:
        (root / "sources" / f"{source}.yaml").write_text(yaml.safe_dump({
            "id": source, "name": source, "start_urls": [f"https://{source}.example/gallery/"],
            "scope": [f"https://{source}.example/", f"https://cdn.{source}.example/"],
            "consent": {
                "id": f"C-{source}", "status": "revoked" if source == REVOKED else "active",
                "granted_by": source, "granted_at": today - timedelta(days=30),
                "expires_at": today + timedelta(days=300), "uses": ["ai-training"],
                "evidence": {"uri": "docs/consent.pdf", "sha256": "ab" * 32}},
            "age_verification": {
                "id": f"AV-{source}", "method": "government-id", "verified_by": "V",
                "verified_at": today - timedelta(days=30),
                "expires_at": today + timedelta(days=600)},
            "licence": {"default": "CC-BY-4.0"},
        }, sort_keys=False))


# -- measurements (each in a child) -----------------------------------------------------------


def child_ours(config_dir: str, data_dir: str, name: str) -> dict[str, Any]:
    from pipeline.build.builder import build_manifest
    from pipeline.registry.config import load_config

    config = load_config(Path(config_dir))
    start = time.perf_counter()
    result = build_manifest(config, Path(data_dir), name)
    return {"seconds": time.perf_counter() - start, "kept": result.counts["kept"],
            "candidates": result.counts["candidates"]}


def child_raw(data_dir: str, out_dir: str) -> dict[str, Any]:
    """Raw pyarrow: read, sort by the published order, write 1M-row parts."""
    start = time.perf_counter()
    paths = sorted(Path(data_dir).glob("runs/*/items.parquet"))
    table = pa.concat_tables([pq.read_table(p) for p in paths])
    table = table.sort_by([(c, "ascending") for c in ("source_id", "url", "row_id", "run_id")])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for index, offset in enumerate(range(0, table.num_rows, 1_000_000)):
        pq.write_table(table.slice(offset, 1_000_000), out / f"part-{index:05d}.parquet",
                       compression="zstd", compression_level=3, row_group_size=100_000)
    return {"seconds": time.perf_counter() - start, "rows": table.num_rows}


def _child(*args: str) -> dict[str, Any]:
    """Run one measurement in a child; its result and its own peak RSS (MiB)."""
    proc = subprocess.run([sys.executable, "-m", "bench.build", "--child", *args],
                          capture_output=True, text=True, timeout=TIMEOUT)
    if proc.returncode:
        raise RuntimeError(f"child {args[0]} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _cli(config: Path, data: Path, *args: str) -> str:
    clearance = Path(sys.executable).with_name("clearance")
    command = [str(clearance)] if clearance.exists() else [sys.executable, "-m", "pipeline"]
    proc = subprocess.run([*command, "--config", str(config), "--data", str(data), *args],
                          capture_output=True, text=True, timeout=TIMEOUT)
    if proc.returncode:
        raise RuntimeError(f"clearance {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def _cli_until(config: Path, data: Path, committed: Path, *args: str) -> tuple[float, float]:
    """Run a clearance command; (when ``committed`` appeared, when the command ended), as
    ``perf_counter`` times. A version's manifest.json appears only when the build renames the
    finished version into place, so its first sight is the commit (polled every 5 ms)."""
    clearance = Path(sys.executable).with_name("clearance")
    command = [str(clearance)] if clearance.exists() else [sys.executable, "-m", "pipeline"]
    proc = subprocess.Popen([*command, "--config", str(config), "--data", str(data), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen: float | None = None
    deadline = time.perf_counter() + TIMEOUT
    while proc.poll() is None and time.perf_counter() < deadline:
        if seen is None and committed.is_file():
            seen = time.perf_counter()
        time.sleep(0.005)
    if proc.poll() is None:
        proc.kill()
    _, stderr = proc.communicate()
    done = time.perf_counter()
    if proc.returncode:
        raise RuntimeError(f"clearance {' '.join(args)} failed:\n{stderr[-3000:]}")
    if not committed.is_file():
        raise RuntimeError(f"clearance {' '.join(args)} ended without {committed}")
    return (done if seen is None else seen), done


def measure(root: Path, rows: int, raw: bool, takedown: bool) -> dict[str, Any]:
    data = root / f"data-{rows}"
    config = root / "configs"
    write_configs(config)
    t0 = time.perf_counter()
    generate(data, rows)
    print(f"[{rows:,} rows] data ready in {time.perf_counter() - t0:.1f}s under {data}",
          flush=True)
    shutil.rmtree(data / "manifests", ignore_errors=True)
    (data / "state.sqlite").unlink(missing_ok=True)
    out: dict[str, Any] = {"rows": rows}
    out["ours"] = _child("ours", str(config), str(data), "bench")
    print(f"  ours: {out['ours']}", flush=True)
    if raw:
        raw_out = root / f"raw-{rows}"
        out["raw"] = _child("raw", str(data), str(raw_out))
        shutil.rmtree(raw_out, ignore_errors=True)
        print(f"  raw pyarrow: {out['raw']}", flush=True)
    if takedown:
        url = pq.read_table(next(iter(sorted((data / "manifests" / "bench" / "v1" / "data")
                                             .glob("*.parquet")))), columns=["url"])["url"][7]
        v2 = data / "manifests" / "bench" / "v2" / "manifest.json"
        start = time.perf_counter()
        _cli(config, data, "takedown", "add", "--url", url.as_py(), "--reason", "bench")
        added = time.perf_counter()
        committed, done = _cli_until(config, data, v2, "build", "bench")
        out["takedown_add"] = added - start
        out["takedown_to_version"] = committed - start  # v2 is committed (renamed into place)
        out["takedown_cli_total"] = done - start  # both commands, with the impact index
        manifest = json.loads(v2.read_text())
        out["removed_since_previous"] = manifest["removed_since_previous"]
        print(f"  takedown add {out['takedown_add']:.2f}s; takedown add -> v2 committed: "
              f"{out['takedown_to_version']:.2f}s; both commands done (with the impact "
              f"index): {out['takedown_cli_total']:.2f}s "
              f"(removed {manifest['removed_since_previous']})", flush=True)
    shutil.rmtree(data / "manifests", ignore_errors=True)
    return out


def report(results: list[dict[str, Any]]) -> None:
    print()
    print(f"{'rows':>12} {'ours s':>8} {'rows/s':>10} {'RSS MiB':>8} {'raw s':>8} "
          f"{'raw RSS':>8} {'ratio':>6} {'takedown->v':>12} {'CLI total':>10}")
    base = next((r for r in results if "raw" in r), None)
    for r in results:
        ours = r["ours"]["seconds"]
        raw = r.get("raw", {}).get("seconds")
        note = ""
        if raw is None and base is not None:
            raw, note = base["raw"]["seconds"] * r["rows"] / base["rows"], "*"
        ratio = f"{raw / ours:.2f}{note}" if raw else "-"
        raw_text = f"{raw:.1f}{note}" if raw else "-"
        rss = r["ours"].get("rss_mib")
        raw_rss = r.get("raw", {}).get("rss_mib")
        td, total = r.get("takedown_to_version"), r.get("takedown_cli_total")
        print(f"{r['rows']:>12,} {ours:>8.1f} {r['rows'] / ours:>10,.0f} "
              f"{rss or 0:>8.0f} {raw_text:>8} {raw_rss or 0:>8.0f} {ratio:>6} "
              f"{'-' if td is None else f'{td:.2f}s':>12} "
              f"{'-' if total is None else f'{total:.2f}s':>10}")
    if any("*" in str(r) for r in results) or any("raw" not in r for r in results):
        print("* raw pyarrow scaled from the largest measured size (it holds every row in "
              "memory: ~2 KB a row)")
    print("takedown->v: from `takedown add` to the committed next version (its manifest.json "
          "renamed into place); CLI total: until both commands ended (the build command then "
          "also makes the impact index)")
    print("targets: ratio >= 0.5; takedown->version < 10 s at 1M rows; RSS < 1024 MiB at 10M")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, action="append",
                        help="corpus size (repeatable; default 1,000,000)")
    parser.add_argument("--dir", type=Path, help="bench dir: generated runs are cached here "
                        "(default: a temporary dir, removed at the end)")
    parser.add_argument("--baseline-10m", action="store_true",
                        help="run raw pyarrow above 2M rows too (needs ~2 KB of RAM a row)")
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        result = child_ours(*rest) if kind == "ours" else child_raw(*rest)
        # The child's own peak (Linux: KiB), measured where nothing else ran in the process.
        result["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    sizes = args.rows or [1_000_000]
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        root = args.dir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        results = [measure(root, rows, raw=rows <= 2_000_000 or args.baseline_10m,
                           takedown=rows <= 2_000_000) for rows in sorted(sizes)]
        report(results)
        if args.dir is None:
            print(f"(generated data removed with {tmp}; pass --dir to keep it)")
    os.environ.pop("CLEARANCE_TEST_CRASH_BUILD", None)


if __name__ == "__main__":
    main()
