"""The README stays true: every command documented, the quick start is what CI and users run."""

from __future__ import annotations

import re
from pathlib import Path

import click

from pipeline.cli import cli, main  # noqa: F401 - main registers the command modules

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _commands(group: click.Group, prefix: str = "") -> list[str]:
    names = []
    import pipeline.cli.configs  # noqa: F401
    import pipeline.cli.crawling  # noqa: F401
    import pipeline.cli.manifests  # noqa: F401
    import pipeline.cli.screening  # noqa: F401
    import pipeline.cli.sources  # noqa: F401
    import pipeline.cli.takedowns  # noqa: F401

    for name, command in sorted(group.commands.items()):
        full = f"{prefix}{name}"
        if isinstance(command, click.Group):
            names.extend(_commands(command, f"{full} "))
        else:
            names.append(full)
    return names


def test_every_command_is_documented_with_help_and_an_example():
    commands = _commands(cli)
    assert {"init", "validate", "crawl", "build", "report", "demo", "schedule list",
            "schedule run", "source list", "source resume", "screen",
            "incidents list"} <= set(commands)
    for name in commands:
        assert f"clearance {name}" in README, f"README does not document `clearance {name}`"
        command = cli
        for part in name.split():
            command = command.commands[part]  # type: ignore[attr-defined]
        assert command.help and "Example" in (command.help + (cli.help or "")), name


def test_quick_start_is_two_commands_and_ci_runs_the_test_one():
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^(\./dev \w+)", quick, flags=re.M)
    assert commands == ["./dev demo", "./dev test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./dev test" in ci


def test_every_reason_code_is_explained():
    from pipeline.runs import reasons

    table = README.split("### Reason codes", 1)[1].split("##", 1)[0]
    for code in reasons.ALL:
        assert f"`{code}`" in table, f"reason code {code} missing from the README table"


def test_columns_left_null_are_named_in_the_readme():
    from pipeline.runs.schema import NOT_YET_FILLED

    outputs = README.split("## Outputs", 1)[1]
    for column in NOT_YET_FILLED:
        assert f"`{column}`" in outputs
