"""`clearance takedown add | list | remove | export` and `clearance impact`.

Takedowns are recorded in ``data/state.sqlite`` and applied by every later build; ``impact``
says which committed versions held what a takedown (or a query) names, from the versions'
own files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from pipeline.cli import EXIT_BAD_INPUT, Env, cli, emit_json, fail
from pipeline.registry.takedowns import Takedown, TakedownError

_KIND_FLAGS = ("url", "url_prefix", "sha256", "pdq", "creator", "source")


def _flag(name: str) -> str:
    return "--takedown" if name == "takedown_id" else "--" + name.replace("_", "-")


def _one_kind(values: dict[str, Any], names: tuple[str, ...]) -> tuple[str, str]:
    """Exactly one of the kind flags, refused up front (exit 2) otherwise."""
    given = [(n, v) for n, v in values.items() if n in names and v is not None]
    flags = ", ".join(_flag(n) for n in names)
    if len(given) != 1:
        named = ", ".join(_flag(n) for n, _ in given)
        fail(f"give exactly one of {flags}" + (f" (got {named})" if given else ""),
             EXIT_BAD_INPUT)
    name, value = given[0]
    return name.replace("_", "-"), value


def _kind_options(func: Any) -> Any:
    for flag, meta, text in reversed([
        ("--url", "U", "An image or page URL (matched normalised, on url and page_url)."),
        ("--url-prefix", "P", "Every URL starting with P (normalised)."),
        ("--sha256", "H", "The sha256 of the bytes."),
        ("--creator", "NAME", "A creator (case- and whitespace-insensitive)."),
        ("--source", "ID", "Every row of a source."),
    ]):
        func = click.option(flag, metavar=meta, help=text)(func)
    return func


@cli.group()
def takedown() -> None:
    """Takedowns: rows the next build excludes (reason `takedown`), kept in data/state.sqlite.

    \b
    Example:
      clearance takedown add --url https://aurora.example/gallery/a.jpg --reason "artist asked"
      clearance takedown list --json
      clearance takedown remove T-000001 --reason "request withdrawn"
    """


@takedown.command("add")
@_kind_options
@click.option("--pdq", metavar="HEX", help="A PDQ hash (64 hex); rows within --distance.")
@click.option("--distance", type=int, help="PDQ distance, 0..256 (default 31).")
@click.option("--reason", required=True, help="Why (recorded).")
@click.option("--requested-by", metavar="WHO", help="Who asked (recorded).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def takedown_add(env: Env, reason: str, requested_by: str | None, distance: int | None,
                 as_json: bool, **values: Any) -> None:
    """Record a takedown; print its id. Exactly one of the kind flags.

    An unknown --source id is refused (exit 2): a takedown that can match nothing is a typo.

    \b
    Example:
      clearance takedown add --sha256 9f86d0...0f00a08 --reason "hotline report"
      clearance takedown add --pdq f8f8...0e0e --distance 20 --reason "artist request" --json
    """
    kind, value = _one_kind(values, _KIND_FLAGS)
    if kind == "source" and value not in env.config().sources:
        fail(f"--source: unknown source id {value!r}", EXIT_BAD_INPUT)
    try:
        record = env.state().add_takedown(kind, value, reason, requested_by, distance)
    except TakedownError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    if as_json:
        emit_json(record.to_json())
        return
    click.echo(record.id)


def _line(t: Takedown) -> str:
    state = "active" if t.active else f"removed {t.removed_at:%Y-%m-%d} ({t.removal_reason})"
    extra = f" within {t.distance}" if t.kind == "pdq" else ""
    return f"{t.id}  {t.kind}  {t.value}{extra}  {state}  {t.reason}"


@takedown.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def takedown_list(env: Env, as_json: bool) -> None:
    """Every takedown, removed ones too.

    \b
    Example:
      clearance takedown list --json
    """
    records = env.state().takedowns()
    if as_json:
        emit_json([t.to_json() for t in records])
        return
    for t in records:
        click.echo(_line(t))


@takedown.command("remove")
@click.argument("ident", metavar="ID")
@click.option("--reason", required=True, help="Why it is lifted (recorded).")
@click.pass_obj
def takedown_remove(env: Env, ident: str, reason: str) -> None:
    """Lift a takedown for later builds (recorded, never deleted).

    \b
    Example:
      clearance takedown remove T-000001 --reason "request withdrawn"
    """
    try:
        record = env.state().remove_takedown(ident, reason)
    except TakedownError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    click.echo(f"{record.id}: removed")


@takedown.command("export")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to FILE instead of stdout.")
@click.pass_obj
def takedown_export(env: Env, out: Path | None) -> None:
    """Every takedown with its history, as JSON lines, for the records of whoever asked.

    \b
    Example:
      clearance takedown export --out takedowns.jsonl
    """
    text = "".join(json.dumps(t.to_json(), sort_keys=True) + "\n" for t in env.state().takedowns())
    if out is None:
        click.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out}", err=True)


@cli.command()
@_kind_options
@click.option("--takedown", "takedown_id", metavar="ID", help="What a recorded takedown names.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def impact(env: Env, as_json: bool, **values: Any) -> None:
    """Every manifest version whose published rows match: name, version, rows, built_at.

    Read from the versions' own files: a version built before a takedown still matches it.
    Exit 0 with an empty list when nothing matches.

    \b
    Example:
      clearance impact --takedown T-000001
      clearance impact --url https://aurora.example/gallery/a.jpg --json
    """
    from pipeline.build.impact import impact as find
    from pipeline.build.takedowns import query

    kind, value = _one_kind(values, (*_KIND_FLAGS[:2], "sha256", "creator", "source",
                                     "takedown_id"))
    try:
        asked = env.state().takedown(value) if kind == "takedown-id" else query(kind, value)
    except TakedownError as exc:
        flag = "--takedown" if kind == "takedown-id" else exc.flag
        fail(f"{flag}: {str(exc).split(': ', 1)[1]}", EXIT_BAD_INPUT)
    found = find(env.data_dir, asked)
    if as_json:
        emit_json(found)
        return
    from crawler.progress import UnbrokenTable, people_console

    table = UnbrokenTable(title=f"{len(found)} version(s) held matching rows",
                          title_justify="left", show_edge=False)
    for column in ("name", "version", "rows", "built_at"):
        table.add_column(column)
    table.add_column("path", no_wrap=True)
    for row in found:
        table.add_row(row["name"], f"v{row['version']}", str(row["rows"]),
                      str(row["built_at"]), row["path"])
    people_console(stderr=False).print(table)
