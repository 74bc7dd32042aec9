"""`clearance crawl` and `clearance schedule`: the commands that run the crawler."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click

from pipeline.cli import EXIT_BAD_INPUT, EXIT_FAILED, Env, cli, emit_json, fail
from pipeline.registry.config import Config


def crawl_once(
    env: Env, config: Config, source_ids: list[str] | None, *, concurrency: int,
    progress: bool, quiet: bool = False,
) -> dict[str, Any]:
    """Run one crawl in this process and register it in state.sqlite."""
    from crawler.runner import plan_crawl, run_crawl
    from pipeline.registry.config import ConfigError
    from pipeline.safety.hashlists import Screener

    try:
        screener = Screener.load(config)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(EXIT_BAD_INPUT)
    for warning in screener.warnings():
        click.echo(f"warning: {warning}", err=True)
    state = env.state()
    suspended = state.suspended_ids()
    try:
        plan = plan_crawl(config, source_ids, date.today(), suspended)
    except KeyError as exc:
        fail(str(exc.args[0]), EXIT_BAD_INPUT)
    if not quiet:
        for source, verdict in plan.skipped:
            hint = (f"; after review: clearance source resume {source.id} --reviewed-by NAME "
                    "--note TEXT") if source.id in suspended else ""
            click.echo(f"skipped {source.id}: {verdict.message} ({verdict.reason}){hint}",
                       err=True)
    log_level = {0: "WARNING", 1: "INFO"}.get(env.verbose, "DEBUG")
    started = datetime.now(UTC)
    doc = run_crawl(
        config, env.data_dir, source_ids, concurrency=concurrency,
        log_level=log_level, progress=progress, plan=plan, screener=screener,
    )
    for source in plan.eligible:
        state.record_run(source.id, doc["run_id"], started, datetime.now(UTC), "finished")
    state.register_run(doc["run_id"], doc)
    return doc


@cli.command()
@click.argument("source_ids", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print run.json instead of a summary.")
@click.option("--concurrency", default=16, show_default=True, type=click.IntRange(1, 512),
              help="Concurrent requests (total and per host).")
@click.option("--progress/--no-progress", default=None,
              help="Live progress on stderr (default: when stderr is a terminal).")
@click.pass_obj
def crawl(env: Env, source_ids: tuple[str, ...], as_json: bool, concurrency: int,
          progress: bool | None) -> None:
    """Crawl the given sources (default: all eligible) into a new run.

    Ineligible sources are skipped with a one-line reason each; nothing is requested from them.

    \b
    Example:
      clearance crawl aurora-art --json
    """
    config = env.config()
    if progress is None:
        progress = sys.stderr.isatty() and not as_json
    try:
        doc = crawl_once(env, config, list(source_ids) or None, concurrency=concurrency,
                         progress=progress, quiet=as_json)
    except Exception as exc:  # noqa: BLE001 - the edge: one clear message
        fail(f"crawl failed: {type(exc).__name__}: {exc}", EXIT_FAILED)
    if as_json:
        emit_json(doc)
        return
    counts = doc["counts"]
    click.echo(f"run {doc['run_id']}: {counts['items']} items, {counts['rejections']} rejections"
               + (f", {counts['withheld']} withheld by blocklists" if counts.get("withheld")
                  else ""))
    for source_id in doc.get("suspended", []):
        click.echo(f"  suspended: {source_id} (blocklist hit; see clearance incidents list)")
    for reason, n in counts["by_reason"].items():
        click.echo(f"  {reason}: {n}")
    for source_id, conflict in doc.get("conflicts", {}).items():
        reasons_text = ", ".join(f"{r} {n}" for r, n in conflict["by_reason"].items())
        click.echo(
            f"  conflict: {source_id} consented ({conflict['consent_id']}) but its own signals "
            f"refused {conflict['refused']} URL(s): {reasons_text}; go back to the source"
        )
    click.echo(f"  {env.data_dir / 'runs' / doc['run_id']}")


@cli.group()
def schedule() -> None:
    """Scheduled crawls (cron per source, UTC; state in data/state.sqlite).

    \b
    Example:
      clearance schedule list
      clearance schedule run --once
    """


@schedule.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def schedule_list(env: Env, as_json: bool) -> None:
    """Show each source's schedule, last run and next due time."""
    from pipeline.lifecycle.schedule import schedule_table

    config = env.config()
    rows = [e.as_dict() for e in schedule_table(config, env.state(), datetime.now(UTC))]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        click.echo(
            f"{row['source_id']:<24} {row['schedule'] or 'unscheduled':<16} "
            f"last={row['last_run'] or '-':<26} next={row['next_due'] or '-':<26} "
            f"{row['status']}" + ("" if row["eligible"] else f": {row['message']}")
        )


@schedule.command("run")
@click.option("--once", is_flag=True, help="Crawl what is due now, then exit.")
@click.option("--max-iterations", type=click.IntRange(1), default=None,
              help="Stop after this many wake-ups (default: run until interrupted).")
@click.option("--concurrency", default=16, show_default=True, type=click.IntRange(1, 512))
@click.pass_obj
def schedule_run(env: Env, once: bool, max_iterations: int | None, concurrency: int) -> None:
    """Crawl the sources that are due; with --once, exit afterwards.

    Without --once it sleeps until the next due time, each crawl in a child process
    (Scrapy's reactor runs once per process).
    """
    from pipeline.lifecycle.schedule import due_sources, schedule_table

    config = env.config()
    if once:
        due = due_sources(config, env.state(), datetime.now(UTC))
        if not due:
            click.echo("nothing is due")
            return
        ids = [e.source_id for e in due]
        click.echo(f"due: {', '.join(ids)}")
        doc = crawl_once(env, config, ids, concurrency=concurrency, progress=False)
        click.echo(f"run {doc['run_id']}: {doc['counts']['items']} items")
        return
    iterations = 0
    while max_iterations is None or iterations < max_iterations:
        iterations += 1
        config = env.config()
        now = datetime.now(UTC)
        due = due_sources(config, env.state(), now)
        if due:
            ids = [e.source_id for e in due]
            click.echo(f"{now.isoformat()} due: {', '.join(ids)}")
            cmd = [sys.executable, "-m", "pipeline.cli", "--config", str(env.config_dir),
                   "--data", str(env.data_dir), "crawl", *ids]
            if subprocess.run(cmd, check=False).returncode != 0:
                click.echo("crawl failed; retrying in 60 s", err=True)
                time.sleep(60)
            continue
        upcoming = [e.next_due for e in schedule_table(config, env.state(), now)
                    if e.next_due is not None and e.eligible]
        wait = min((t - now).total_seconds() for t in upcoming) if upcoming else 3600.0
        time.sleep(min(max(wait, 1.0), 3600.0))


@cli.command()
@click.argument("directory", default="clearance-demo",
                type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def demo(directory: Path, as_json: bool) -> None:
    """Serve the bundled sample site on 127.0.0.1, then validate, crawl, build and report.

    Everything goes into DIRECTORY (default ./clearance-demo): the site, its configs, the
    run, the manifest and report.md. Nothing leaves 127.0.0.1.

    \b
    Example:
      clearance demo /tmp/clearance-demo
    """
    from crawler.demo.run import DemoError, run_demo

    try:
        summary = run_demo(directory)
    except DemoError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    if as_json:
        emit_json(summary)
    if summary["leaked"]:
        fail("the server was asked for paths outside consent: " + ", ".join(summary["leaked"]))
