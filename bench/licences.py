"""Cost of licence normalisation, the licence build filter and the ATTRIBUTION file, each against
a baseline measured in the same run.

* ``normalise_licence`` on a mix of licence URLs, SPDX ids and names (uncached: every value is
  distinct), against license-expression's own ``parse`` of SPDX ids (the library floor).
* ``LicenceFilter`` over a table of N rows, against pyarrow ``is_in`` on the licence column (the
  cheapest possible allow-list test, which handles neither expressions nor LicenseRefs).
* ``render_attribution`` of an N-row manifest, against pyarrow reading the same columns.

    .venv/bin/python -m bench.licences [--rows 200000] [--values 20000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipeline.build.filters import LicenceFilter
from pipeline.registry import licences, spdx
from pipeline.reports.attribution import COLUMNS, render_attribution

URLS = [
    "https://creativecommons.org/licenses/by/4.0/",
    "http://creativecommons.org/licenses/by-sa/3.0/de/",
    "https://creativecommons.org/licenses/by/2.0/de/deed.en",
    "https://creativecommons.org/publicdomain/zero/1.0/",
    "https://example.com/terms/",
    "CC BY-SA 4.0",
    "Creative Commons Attribution 4.0 International",
    "cc-by-nc-4.0",
    "CC0",
    "Public Domain Mark 1.0",
]
LICENCES = ["CC-BY-4.0", "CC-BY-SA-4.0", "CC0-1.0", "CC-BY-NC-4.0", "LicenseRef-CC-BY-2.0-DE",
            "MIT OR CC-BY-4.0"]


def _best(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_normalise(values: int) -> None:
    # Distinct inputs defeat the caches: a query string / case change per value.
    inputs = [f"{URLS[i % len(URLS)]}" + (f"?v={i}" if "://" in URLS[i % len(URLS)] else "")
              for i in range(values)]
    text = [u for u in inputs if "://" not in u]
    spdx_ids = [spdx.normalise_expression(x) for x in ("CC-BY-4.0", "CC-BY-SA-4.0", "MIT")]
    parse_inputs = [spdx_ids[i % 3].swapcase() if i % 2 else spdx_ids[i % 3]
                    for i in range(values)]

    def ours() -> None:
        spdx.parse_expression.cache_clear()
        for value in inputs:
            spdx.normalise_licence(value)

    def floor() -> None:
        lic = spdx._licensing()
        for value in parse_inputs:
            lic.parse(value, validate=True, strict=True)

    t_ours, t_floor = _best(ours), _best(floor)
    print(f"normalise_licence: {values / t_ours:,.0f} values/s "
          f"({len(text)} names, {values - len(text)} URLs); license-expression parse: "
          f"{values / t_floor:,.0f} ids/s; ratio {t_floor / t_ours:.2f}")


def _table(rows: int) -> pa.Table:
    return pa.table({
        "source_id": [f"s{i % 7}" for i in range(rows)],
        "creator": [None if i % 5 == 0 else f"Creator {i % 97}" for i in range(rows)],
        "url": [f"https://s{i % 7}.example/img/{i}.jpg" for i in range(rows)],
        "attribution": [None] * rows,
        "caption": [f"Picture {i}" for i in range(rows)],
        "licence": [LICENCES[i % len(LICENCES)] for i in range(rows)],
        "licence_url": [None] * rows,
    })


def bench_filter(rows: int) -> None:
    table = _table(rows)
    allow = licences.preset_licences("commercial-ai-training")

    def ours() -> None:
        LicenceFilter(allow, ("commercial-ai-training",))(table.append_column(
            "page_url", pa.array([None] * rows, pa.string())).append_column(
            "fetched_at", pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * rows,
                                   pa.timestamp("us", "UTC"))).append_column(
            "row_id", table["url"]).append_column("run_id", table["url"]))

    def floor() -> None:
        mask = pc.is_in(table["licence"], pa.array(list(allow)))
        table.filter(mask)
        table.filter(pc.invert(mask))

    t_ours, t_floor = _best(ours), _best(floor)
    print(f"LicenceFilter: {rows / t_ours:,.0f} rows/s; pyarrow is_in + filter: "
          f"{rows / t_floor:,.0f} rows/s; ratio {t_floor / t_ours:.3f}")


def bench_attribution(rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        version = Path(tmp) / "manifests" / "bench" / "v1"
        (version / "data").mkdir(parents=True)
        pq.write_table(_table(rows), version / "data" / "part-00000.parquet")
        (version / "manifest.json").write_text('{"name": "bench", "version": 1, "sources": {}}')

        def ours() -> None:
            render_attribution(Path(tmp), "bench@v1")

        def floor() -> None:
            ds.dataset(version / "data", format="parquet").to_table(columns=list(COLUMNS))

        t_ours, t_floor = _best(ours), _best(floor)
        size = len(render_attribution(Path(tmp), "bench@v1").encode())
    print(f"render_attribution: {rows / t_ours:,.0f} rows/s ({size / rows:.0f} bytes/row); "
          f"pyarrow read of the same columns: {rows / t_floor:,.0f} rows/s; "
          f"ratio {t_floor / t_ours:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--values", type=int, default=20_000)
    args = parser.parse_args()
    bench_normalise(args.values)
    bench_filter(args.rows)
    bench_attribution(args.rows)


if __name__ == "__main__":
    main()
