"""`clearance init` and `clearance validate`."""

from __future__ import annotations

import sys
from dataclasses import asdict
from datetime import date
from pathlib import Path

import click

from pipeline.cli import EXIT_BAD_INPUT, Env, cli, emit_json, fail
from pipeline.registry.config import Config, ConfigError
from pipeline.registry.eligibility import check
from pipeline.registry.starter import write_starter
from pipeline.safety.hashlists import Screener


@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
def init(directory: Path) -> None:
    """Write a commented starter configs/ into DIRECTORY (default: here).

    \b
    Example:
      clearance init my-project && cd my-project && clearance validate
    """
    try:
        written = write_starter(directory / "configs")
    except FileExistsError as exc:
        fail(f"refusing to overwrite existing file(s): {exc}", EXIT_BAD_INPUT)
    for path in written:
        click.echo(f"wrote {path}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def validate(env: Env, as_json: bool) -> None:
    """Validate every config file; exit 2 with `file: key: problem` lines on error.

    Well-formed but ineligible sources (expired, revoked, suspended, lapsed age verification)
    are warnings: `crawl` skips them with the same reason.

    \b
    Example:
      clearance --config configs validate
    """
    config = env.config()
    screener = _load_lists(config)
    if not as_json:
        for warning in screener.warnings():
            click.echo(f"warning: {warning}", err=True)
    today = date.today()
    suspended = env.state().suspended_ids() if (env.data_dir / "state.sqlite").exists() else set()
    rows = []
    for source in config.sources.values():
        verdict = check(source, config.settings, today, suspended=source.id in suspended)
        rows.append({"source": source.id, "eligible": bool(verdict), "reason": verdict.reason,
                     "message": verdict.message})
        if not verdict and not as_json:
            click.echo(
                f"{config.root.name}/sources/{source.id}.yaml: consent: warning: "
                f"{verdict.message} ({verdict.reason}); crawl will skip it",
                err=True,
            )
    if as_json:
        emit_json({"ok": True, "config_dir": str(config.root), "sources": rows,
                   "blocklists": [asdict(info) for info in screener.lists],
                   "warnings": screener.warnings()})
        return
    eligible = sum(1 for r in rows if r["eligible"])
    click.echo(
        f"{config.root}: OK: clearance.yaml and {len(rows)} source(s); "
        f"{eligible} eligible, {len(rows) - eligible} skipped by crawl"
        + "".join(f"; list {i.id}: {i.entries} {i.kind}" for i in screener.lists)
    )


@cli.group()
def config() -> None:
    """Config files: their JSON Schema.

    \b
    Example:
      clearance config schema --out configs/schema/clearance.schema.json --kind clearance
    """


@config.command("schema")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to FILE instead of stdout.")
@click.option("--kind", type=click.Choice(["all", "clearance", "source"]), default="all",
              show_default=True,
              help="clearance.yaml, a source file, or one schema accepting either.")
def config_schema_command(out: Path | None, kind: str) -> None:
    """JSON Schema of clearance.yaml and of a source file, from the pydantic models.

    For editors (a YAML language server reads a first line
    `# yaml-language-server: $schema=PATH`, which `clearance init` writes) and for CI.

    \b
    Example:
      clearance config schema --kind source --out configs/schema/source.schema.json
    """
    import json

    from pipeline.registry.schema import config_schema

    text = json.dumps(config_schema(kind), indent=2) + "\n"  # type: ignore[arg-type]
    if out is None:
        click.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    click.echo(f"wrote {out}", err=True)


def _load_lists(config: Config) -> Screener:
    """Every hash list parsed: a malformed line exits 2 as ``file: line N: problem``."""
    try:
        return Screener.load(config)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(EXIT_BAD_INPUT)
