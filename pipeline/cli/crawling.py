"""`clearance crawl` and `clearance schedule`: the commands that run the crawler."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click

from pipeline.cli import EXIT_BAD_INPUT, EXIT_FAILED, Env, cli, emit_json, fail
from pipeline.registry.config import Config

RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")


def crawl_once(
    env: Env, config: Config, source_ids: list[str] | None, *, concurrency: int,
    progress: bool, quiet: bool = False, run_id: str | None = None,
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
        log_level=log_level, progress=progress, plan=plan, screener=screener, run_id=run_id,
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
@click.option("--run-id", hidden=True, default=None,
              help="Name of the run folder (set by `schedule run`, which cleans up after it).")
@click.pass_obj
def crawl(env: Env, source_ids: tuple[str, ...], as_json: bool, concurrency: int,
          progress: bool | None, run_id: str | None) -> None:
    """Crawl the given sources (default: all eligible) into a new run.

    Ineligible sources are skipped with a one-line reason each; nothing is requested from them.
    A crawl of the same sources that was killed before it committed is resumed: its durable
    rows join this run (run.json `resumed_from`) and what it had fetched is not asked for again.

    \b
    Example:
      clearance crawl aurora-art --json
    """
    if run_id is not None and not RUN_ID.fullmatch(run_id):
        fail(f"--run-id {run_id!r}: expected YYYYMMDDTHHMMSSZ-xxxxxx", EXIT_BAD_INPUT)
    config = env.config()
    if progress is None:
        progress = sys.stderr.isatty() and not as_json
    try:
        doc = crawl_once(env, config, list(source_ids) or None, concurrency=concurrency,
                         progress=progress, quiet=as_json, run_id=run_id)
    except Exception as exc:  # noqa: BLE001 - the edge: one clear message
        fail(f"crawl failed: {type(exc).__name__}: {exc}", EXIT_FAILED)
    if as_json:
        emit_json(doc)
        return
    counts = doc["counts"]
    click.echo(f"run {doc['run_id']}: {counts['items']} items, {counts['rejections']} rejections"
               + (f", {counts['withheld']} withheld by blocklists" if counts.get("withheld")
                  else ""))
    if doc.get("resumed_from"):
        taken = doc.get("resume", {})
        click.echo(f"  resumed killed run {', '.join(doc['resumed_from'])}: "
                   f"{taken.get('items', 0)} items and {taken.get('rejections', 0)} rejections "
                   f"kept, {taken.get('not_requested_again', 0)} requests not repeated")
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
    """Show each source's schedule, last run, next due time and records lapsing soon.

    Consent and age-verification records that lapse within 30 days are warned about on
    stderr (and are in each row's `expiring` with --json).

    \b
    Example:
      clearance schedule list --json
    """
    from pipeline.lifecycle.schedule import schedule_table

    config = env.config()
    entries = schedule_table(config, env.state(), datetime.now(UTC))
    rows = [e.as_dict() for e in entries]
    if as_json:
        emit_json(rows)
        return
    for entry, row in zip(entries, rows, strict=True):
        click.echo(
            f"{row['source_id']:<24} {row['schedule'] or 'unscheduled':<16} "
            f"last={row['last_run'] or '-':<26} next={row['next_due'] or '-':<26} "
            f"{row['status']}" + ("" if row["eligible"] else f": {row['message']}")
        )
        for record in entry.expiring:
            click.echo(f"warning: {entry.source_id}: {record}", err=True)


@schedule.command("run")
@click.option("--once", is_flag=True, help="Crawl what is due now, then exit.")
@click.option("--concurrency", default=16, show_default=True, type=click.IntRange(1, 512))
@click.option("--jitter-seed", default="clearance", show_default=True,
              help="Seed of the per-source start jitter (recorded in state.sqlite).")
@click.option("--max-jitter", "max_jitter", default=300.0, show_default=True,
              type=click.FloatRange(0, 3600),
              help="Longest jitter in seconds (never more than half a source's cron interval).")
@click.pass_obj
def schedule_run(env: Env, once: bool, concurrency: int, jitter_seed: str,
                 max_jitter: float) -> None:
    """Crawl the sources that are due, until stopped; with --once, what is due now.

    Without --once it runs until SIGINT/SIGTERM: each due source (cron, UTC) starts at its due
    time plus a seeded jitter, as a `clearance crawl` child process, one crawl per source at a
    time (a lock under data/locks/), never two sources of one host together. A stop commits or
    discards the crawls in progress within 30 s and exits 0. Ineligible sources are skipped
    with a logged reason; records lapsing within 30 days are warned about.

    \b
    Example:
      clearance schedule run --once
      clearance schedule run
    """
    if once:
        _schedule_once(env, concurrency)
        return
    from pipeline.lifecycle.scheduler import Scheduler, spawner
    from pipeline.registry.config import load_config

    env.config()  # a malformed config exits 2 before anything starts
    env.data_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log = logging.getLogger("pipeline.lifecycle.scheduler")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if env.verbose > 1 else logging.INFO)

    def command(source_id: str, run_id: str) -> list[str]:
        return [sys.executable, "-m", "pipeline.cli", "--config", str(env.config_dir),
                "--data", str(env.data_dir), *(["-" + "v" * env.verbose] if env.verbose else []),
                "crawl", "--no-progress", "--concurrency", str(concurrency),
                "--run-id", run_id, source_id]

    scheduler = Scheduler(env.data_dir, lambda: load_config(env.config_dir), spawner(command),
                          seed=jitter_seed, max_jitter_s=max_jitter)

    def stop(signum: int, frame: Any) -> None:
        scheduler.request_stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    log.info("scheduler started (pid %d); SIGINT or SIGTERM stops it", os.getpid())
    scheduler.run()
    log.info("scheduler stopped")


def _schedule_once(env: Env, concurrency: int) -> None:
    """Crawl what is due now in this process, behind the same per-source locks as the loop."""
    from pipeline.lifecycle.schedule import schedule_table
    from pipeline.lifecycle.scheduler import SourceLock

    config = env.config()
    entries = schedule_table(config, env.state(), datetime.now(UTC))
    for entry in entries:
        for record in entry.expiring:
            click.echo(f"warning: {entry.source_id}: {record}", err=True)
        if entry.schedule is not None and not entry.eligible:
            click.echo(f"skipped {entry.source_id}: {entry.message} ({entry.reason})", err=True)
    locks, ids = [], []
    for entry in (e for e in entries if e.due):
        lock = SourceLock.acquire(env.data_dir, entry.source_id)
        if lock is None:
            click.echo(f"skipped {entry.source_id}: another crawl of it holds its lock "
                       f"({SourceLock.holder(env.data_dir, entry.source_id)})", err=True)
            continue
        locks.append(lock)
        ids.append(entry.source_id)
    if not ids:
        click.echo("nothing is due")
        return
    try:
        click.echo(f"due: {', '.join(ids)}")
        doc = crawl_once(env, config, ids, concurrency=concurrency, progress=False, quiet=True)
        click.echo(f"run {doc['run_id']}: {doc['counts']['items']} items")
    finally:
        for lock in locks:
            lock.release()


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
