"""`clearance source list | resume`: each source's status (active, ineligible, suspended)."""

from __future__ import annotations

from datetime import date

import click

from pipeline.cli import EXIT_BAD_INPUT, Env, cli, emit_json, fail
from pipeline.registry.eligibility import check


@cli.group()
def source() -> None:
    """Source status.

    \b
    Example:
      clearance source list --json
      clearance source resume aurora-art --reviewed-by "J. Doe" --note "false positive"
    """


@source.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def source_list(env: Env, as_json: bool) -> None:
    """List sources with their status and the reason when not active."""
    config = env.config()
    suspended = env.state().suspended_ids()
    rows = []
    for src in config.sources.values():
        verdict = check(src, config.settings, date.today(), suspended=src.id in suspended)
        status = "active" if verdict else ("suspended" if src.id in suspended else "ineligible")
        rows.append({"id": src.id, "name": src.name, "status": status,
                     "reason": verdict.reason, "message": verdict.message,
                     "consent_id": src.consent.id})
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        extra = f"  {row['message']} ({row['reason']})" if row["reason"] else ""
        click.echo(f"{row['id']:<24} {row['status']:<10}{extra}")


@source.command("resume")
@click.argument("source_id")
@click.option("--reviewed-by", required=True, help="Who reviewed the suspension.")
@click.option("--note", required=True, help="What the review found.")
@click.pass_obj
def source_resume(env: Env, source_id: str, reviewed_by: str, note: str) -> None:
    """Lift a suspension after a person's review (recorded in state.sqlite)."""
    config = env.config()
    if source_id not in config.sources:
        fail(f"unknown source id {source_id!r}", EXIT_BAD_INPUT)
    try:
        env.state().resume(source_id, reviewed_by, note)
    except (KeyError, ValueError) as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    click.echo(f"{source_id}: resumed by {reviewed_by}")
