"""`clearance build` and `clearance report`: work from runs alone (no crawler import)."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli import EXIT_BAD_INPUT, EXIT_FAILED, Env, cli, emit_json, fail


@cli.command()
@click.argument("name")
@click.option("--runs", "run_ids", multiple=True, metavar="ID",
              help="Runs to build from (repeatable; default: every completed run).")
@click.option("--json", "as_json", is_flag=True, help="Print the build result as JSON.")
@click.pass_obj
def build(env: Env, name: str, run_ids: tuple[str, ...], as_json: bool) -> None:
    """Build a new version of manifest NAME from runs; print its path.

    Current consent is re-applied (a source revoked or expired since the crawl drops out), the
    licence allow list applied, duplicates removed by sha256; the version is committed
    atomically.

    \b
    Example:
      clearance build my-set --runs 20261121T101500Z-ab12cd
    """
    from pipeline.build.builder import build_manifest

    config = env.config()
    suspended = env.state().suspended_ids()
    try:
        result = build_manifest(config, env.data_dir, name, list(run_ids) or None,
                                suspended=suspended)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except Exception as exc:  # noqa: BLE001 - the edge
        fail(f"build failed: {type(exc).__name__}: {exc}", EXIT_FAILED)
    _index_for_impact(result.path)
    if as_json:
        emit_json({"name": result.name, "version": result.version, "path": str(result.path),
                   "counts": result.counts})
        return
    c = result.counts
    click.echo(f"{result.path}")
    click.echo(f"  v{result.version}: {c['kept']} rows kept, {c['excluded']} excluded "
               f"of {c['candidates']} candidates")


def _index_for_impact(version_dir: Path) -> None:
    """The committed version's impact index (pipeline.build.impactindex), made now so that the
    first `clearance impact` after a build is fast; the version stands without it (impact
    makes a missing one), so a failure is a warning."""
    from pipeline.build.impactindex import ensure_index

    try:
        ensure_index(version_dir)
    except Exception as exc:  # noqa: BLE001 - the version is committed; impact retries
        click.echo(f"warning: impact index of {version_dir} not made ({type(exc).__name__}: "
                   f"{exc}); `clearance impact` will make it", err=True)


@cli.command()
@click.argument("ref", metavar="NAME[@vN]")
@click.option("--format", "fmt", required=True, help="Report format (see below).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to FILE instead of stdout.")
@click.option("--since", metavar="vM",
              help="Count what changed since version M (default: the previous version); "
                   "counts per reason only.")
@click.pass_obj
def report(env: Env, ref: str, fmt: str, out: Path | None, since: str | None) -> None:
    """Provenance report for a manifest version (latest unless @vN is given).

    `md`, `json` and `html` are one report (same sections, same numbers); `html` is one
    self-contained page that loads nothing from any URL. `croissant` is the Croissant 1.1
    JSON-LD every build writes as vN/croissant.json. `eu-summary` (Markdown) and
    `eu-summary-json` fill the parts of the EU AI Act public summary template a dataset
    builder can fill (read with the current configs for the crawler's User-Agent).
    `attribution` writes the ATTRIBUTION file the dataset ships with: one Creative Commons
    credit line (title, author, source, licence) per published row, by source and creator.

    \b
    Formats: md, json, html, croissant, eu-summary, eu-summary-json, attribution.
    Examples:
      clearance report my-set@v2 --format md --out report.md
      clearance report my-set --format html --since v1 --out report.html
      clearance report my-set --format attribution --out ATTRIBUTION
    """
    from pipeline.reports.formats import FORMATS, PLANNED_FORMATS, parse_since, render_report

    if fmt not in FORMATS:
        planned = f" ({fmt} is planned, not built yet)" if fmt in PLANNED_FORMATS else ""
        fail(f"--format: unknown format {fmt!r}{planned}; available: {', '.join(FORMATS)}",
             EXIT_BAD_INPUT)
    try:
        since_version = parse_since(since)
    except ValueError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    settings = None
    if fmt.startswith("eu-summary") and (env.config_dir / "clearance.yaml").is_file():
        settings = env.config().settings
    try:
        text = render_report(env.data_dir, ref, fmt, since_version, settings)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    if out is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    click.echo(f"wrote {out}", err=True)
