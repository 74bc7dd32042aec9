"""`clearance demo`: the whole flow on the bundled sample site, start to finish.

generate site -> serve on 127.0.0.1 -> write configs -> validate -> crawl -> build -> report,
then a summary of what was kept, what was excluded and why, what the server was never asked
for, and where the files are.
"""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from rich.console import Console
from rich.text import Text

from crawler.demo.config import write_demo_configs
from crawler.demo.server import serve_directory
from crawler.demo.site import NEVER_REQUESTED, generate_site
from crawler.progress import UnbrokenTable, people_console
from crawler.runner import plan_crawl, run_crawl
from pipeline.build.builder import build_manifest
from pipeline.registry.config import load_config
from pipeline.reports.formats import render_report

MARKER = ".clearance-demo"
MANIFEST = "demo"


class DemoError(Exception):
    """The demo cannot run in the given directory."""


def prepare(directory: Path) -> None:
    """Use an empty or earlier demo directory; never clear anything else."""
    if directory.exists() and any(directory.iterdir()) and not (directory / MARKER).exists():
        raise DemoError(
            f"{directory}: not empty and not a Clearance demo directory; "
            "choose a new or empty directory"
        )
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("site", "configs", "data"):
        shutil.rmtree(directory / name, ignore_errors=True)
    (directory / MARKER).write_text("made by `clearance demo`; safe to delete\n")


def _step(number: int, name: str, rest: str) -> Text:
    # Paths and URLs in ``rest`` stand alone between spaces (no ``:`` or ``,`` glued on), so a
    # double click in a terminal selects exactly the path.
    return Text.assemble((f"{number}. {name}", "bold"), " ", rest)


def run_demo(directory: Path, console: Console | None = None) -> dict[str, Any]:
    console = console or people_console()
    directory = directory.resolve()
    prepare(directory)
    site, configs, data = directory / "site", directory / "configs", directory / "data"
    with console.status("generating the sample site"):
        generate_site(site)
    base_url, stop, access_log = serve_directory(site)
    try:
        console.print(_step(1, "serve", f"sample site at {base_url}/ (127.0.0.1 only)"))
        write_demo_configs(configs, base_url)
        config = load_config(configs)
        plan = plan_crawl(config, None, date.today())
        console.print(_step(2, "validate", f"OK, {len(config.sources)} sources in {configs}"))
        for source, verdict in plan.skipped:
            console.print(f"   skipped {source.id}: {verdict.message} ({verdict.reason})")
        console.print(_step(3, "crawl", "eligible: " + ", ".join(s.id for s in plan.eligible)))
        run = run_crawl(config, data, progress=True, plan=plan)
    finally:
        stop()
    result = build_manifest(config, data, MANIFEST)
    console.print(_step(4, "build", str(result.path)))
    report_md = directory / "report.md"
    report_md.write_text(render_report(data, MANIFEST, "md"), encoding="utf-8")
    (directory / "report.json").write_text(render_report(data, MANIFEST, "json"), encoding="utf-8")
    report_html = directory / "report.html"  # the same report, one offline page
    report_html.write_text(render_report(data, MANIFEST, "html"), encoding="utf-8")
    attribution = directory / "ATTRIBUTION"
    attribution.write_text(render_report(data, MANIFEST, "attribution"), encoding="utf-8")
    console.print(_step(5, "report", f"{report_md} and {attribution}"))
    paths = [record.path for record in access_log]
    leaked = [p for p in paths if p.startswith(NEVER_REQUESTED)]
    summary = _summary(console, run, result, data, paths, leaked)
    console.print(Text("\nFiles", style="bold"))
    for label, path in (
        ("run", data / "runs" / run["run_id"]),
        ("manifest rows", result.path / "data"),
        ("build exclusions", result.path / "audit" / "exclusions.parquet"),
        ("manifest.json", result.path / "manifest.json"),
        ("croissant.json", result.path / "croissant.json"),
        ("report", report_md),
        ("report (html)", report_html),
        ("ATTRIBUTION", attribution),
        ("configs", configs),
    ):
        console.print(f"  {label:<17} {path}")
    return summary


def _summary(
    console: Console,
    run: dict[str, Any],
    result: Any,
    data: Path,
    paths: list[str],
    leaked: list[str],
) -> dict[str, Any]:
    rows = pq.read_table(result.path / "data").to_pylist()
    kept = UnbrokenTable(title=f"Kept: {len(rows)} images", title_justify="left", show_edge=False)
    for column in ("source", "licence", "from"):
        kept.add_column(column)
    kept.add_column("image", no_wrap=True)
    for row in rows:
        kept.add_row(row["source_id"], row["licence"], row["licence_source"], _url_path(row["url"]))
    console.print(kept)

    crawl_rej = pq.read_table(data / "runs" / run["run_id"] / "rejections.parquet").to_pylist()
    build_rej = pq.read_table(result.path / "audit" / "exclusions.parquet").to_pylist()
    excluded = UnbrokenTable(
        title=f"Excluded: {len(crawl_rej) + len(build_rej)}", title_justify="left", show_edge=False
    )
    for column in ("stage", "reason", "count"):
        excluded.add_column(column)
    excluded.add_column("example", no_wrap=True)
    by_reason: Counter[tuple[str, str]] = Counter()
    example: dict[tuple[str, str], str] = {}
    for stage, rejections in (("crawl", crawl_rej), ("build", build_rej)):
        for r in rejections:
            key = (stage, r["reason"])
            by_reason[key] += 1
            example.setdefault(key, _url_path(r["url"]))
    for (stage, reason), count in sorted(by_reason.items()):
        excluded.add_row(stage, reason, str(count), example[(stage, reason)])
    console.print(excluded)
    console.print(
        f"Server access log: {len(paths)} requests; to out-of-scope, robots-disallowed, "
        "AI-opt-out or lapsed paths: ",
        Text("none", style="green") if not leaked else Text(str(len(leaked)), style="red"),
        sep="",
    )
    for path in leaked:
        console.print(Text(f"  {path}", style="red"))
    return {
        "run_id": run["run_id"],
        "manifest": str(result.path),
        "kept": len(rows),
        "excluded_by_reason": {f"{s}:{r}": n for (s, r), n in sorted(by_reason.items())},
        "requests": len(paths),
        "leaked": leaked,
    }


def _url_path(url: str) -> str:
    """The URL without scheme and host (the demo serves one host): what a table row shows."""
    return url.split("/", 3)[-1]
