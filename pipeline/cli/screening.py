"""`clearance screen` and `clearance incidents list`: blocklist hits, as counts only.

Neither command ever prints a URL or a hash: the restricted records under ``data/incidents/``
are read directly by the people entitled to.
"""

from __future__ import annotations

import click

from pipeline.cli import EXIT_BAD_INPUT, EXIT_FAILED, Env, cli, emit_json, fail


@cli.command()
@click.option("--runs", "run_ids", multiple=True, metavar="ID",
              help="Re-screen these runs (repeatable; default: all runs when no --manifest).")
@click.option("--manifest", "manifests", multiple=True, metavar="NAME",
              help="Re-screen every version of this manifest (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@click.pass_obj
def screen(env: Env, run_ids: tuple[str, ...], manifests: tuple[str, ...],
           as_json: bool) -> None:
    """Re-screen kept rows against the current hash lists (no re-download).

    Exact hashes and PDQ come from the stored columns. A hit writes an incident, suspends its
    source and withdraws the row (and its PDQ neighbours) by rewriting the affected Parquet
    files atomically; counts.withheld grows in run.json / manifest.json. Only counts are
    printed. Exit 0 whether or not anything was found.

    \b
    Example:
      clearance screen
      clearance screen --runs 20260101T000000Z-abc123 --manifest my-set --json
    """
    from pipeline.lifecycle.rescreen import rescreen
    from pipeline.registry.config import ConfigError
    from pipeline.safety.hashlists import Screener

    config = env.config()
    try:
        screener = Screener.load(config)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise SystemExit(EXIT_BAD_INPUT) from None
    for warning in screener.warnings():
        click.echo(f"warning: {warning}", err=True)
    if not screener.lists:
        fail("no blocklists are configured (clearance.yaml blocklists:)", EXIT_BAD_INPUT)
    try:
        result = rescreen(config, env.data_dir, screener, run_ids=list(run_ids) or None,
                          manifests=list(manifests), state=env.state())
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except OSError as exc:
        fail(f"screen failed: {type(exc).__name__}: {exc}", EXIT_FAILED)
    if as_json:
        emit_json(result)
        return
    click.echo(f"screened {result['rows_screened']} rows in {len(result['runs'])} run(s) and "
               f"{len(result['manifests'])} manifest version(s) against "
               f"{len(result['lists'])} list(s)")
    click.echo(f"  hits: {result['hits']}, neighbours: {result['neighbours']}, "
               f"rows withdrawn: {result['rows_withdrawn']}, incidents: {result['incidents']}")
    for source_id in result["suspended"]:
        click.echo(f"  suspended: {source_id}")


@cli.group()
def incidents() -> None:
    """Blocklist incidents (records under data/incidents/, mode 0700/0600).

    \b
    Example:
      clearance incidents list --json
    """


@incidents.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def incidents_list(env: Env, as_json: bool) -> None:
    """Counts per source and list; never a URL or a hash.

    \b
    Example:
      clearance incidents list
    """
    from pipeline.safety.incidents import incident_counts

    try:
        counts = incident_counts(env.data_dir)
    except PermissionError as exc:
        fail(f"cannot read the incident records ({exc.strerror}); they are readable only by "
             "their owner", EXIT_FAILED)
    if as_json:
        emit_json(counts)
        return
    click.echo(f"{counts['total']} incident(s)")
    for row in counts["by_source_and_list"]:
        click.echo(f"  {row['source_id']:<24} {row['list_id']:<24} {row['incidents']}")
    for kind, n in counts["by_type"].items():
        click.echo(f"  {kind}: {n}")
