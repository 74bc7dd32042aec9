"""`clearance` command line: a thin click group over library functions.

Library exceptions become one clear message at the edge: malformed configs exit 2 with
``file: key: problem`` lines; bad arguments exit 2; work that fails exits 1. This package is the
one place that wires `pipeline` and `crawler` together (commands that crawl import the crawler
lazily, so build/report work on a machine with runs only).

May import: everything, and crawler.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click

from pipeline import __version__
from pipeline.registry.config import Config, ConfigError, load_config

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


@dataclass
class Env:
    config_dir: Path
    data_dir: Path
    verbose: int

    def config(self) -> Config:
        try:
            return load_config(self.config_dir)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            sys.exit(EXIT_BAD_INPUT)

    def state(self):  # type: ignore[no-untyped-def]
        from pipeline.registry.state import State

        self.data_dir.mkdir(parents=True, exist_ok=True)
        return State(self.data_dir / "state.sqlite")


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config", "config_dir", envvar="CLEARANCE_CONFIG", default="configs", show_default=True,
    type=click.Path(path_type=Path), help="Config directory (env CLEARANCE_CONFIG).",
)
@click.option(
    "--data", "data_dir", envvar="CLEARANCE_DATA", default="data", show_default=True,
    type=click.Path(path_type=Path), help="Data directory (env CLEARANCE_DATA).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(__version__, prog_name="clearance")
@click.pass_context
def cli(ctx: click.Context, config_dir: Path, data_dir: Path, verbose: int) -> None:
    """Build AI training datasets that can be defended line by line.

    \b
    Example:
      clearance init . && clearance validate
      clearance crawl && clearance build my-set && clearance report my-set --format md
    """
    ctx.obj = Env(config_dir=config_dir, data_dir=data_dir, verbose=verbose)


def main() -> None:
    from pipeline.cli import (  # noqa: F401 - registers
        configs,
        crawling,
        manifests,
        screening,
        sources,
        takedowns,
    )

    cli(prog_name="clearance")
