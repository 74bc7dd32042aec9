"""The `clearance` CLI at its edges: exit codes, messages naming the flag or file, --json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers_config import source_doc, write_config
from helpers_output import (
    cli_command,
    long_dir,
    missing_paths,
    piped_env,
    printed_paths,
    run_in_terminal,
)
from helpers_runs import make_item, write_run


def clearance(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "--config", str(tmp / "configs"),
         "--data", str(tmp / "data"), *args],
        capture_output=True, text=True, timeout=120, check=False,
    )


def setup_runs(tmp: Path) -> str:
    config = write_config(tmp / "configs", [source_doc("aurora")])
    source = config.sources["aurora"]
    items = [make_item(source, f"https://aurora.example/gallery/{i}.jpg") for i in range(3)]
    items.append(make_item(source, "https://aurora.example/gallery/nc.jpg",
                           licence="CC-BY-NC-4.0", licence_source="rel-license"))
    write_run(tmp / "data", "20260102T030405Z-aaaaaa", items)
    return "20260102T030405Z-aaaaaa"


def test_build_and_report_from_runs_alone(tmp_path: Path):
    run_id = setup_runs(tmp_path)
    built = clearance(tmp_path, "build", "my-set", "--runs", run_id, "--json")
    assert built.returncode == 0, built.stderr
    doc = json.loads(built.stdout)
    assert doc["version"] == 1 and doc["counts"]["kept"] == 3
    assert doc["counts"]["excluded_by_reason"] == {"licence_not_allowed": 1}
    plain = clearance(tmp_path, "build", "my-set")
    assert plain.returncode == 0 and plain.stdout.splitlines()[0].endswith("my-set/v2")

    md = clearance(tmp_path, "report", "my-set@v1", "--format", "md")
    assert md.returncode == 0 and "aurora" in md.stdout and "licence_not_allowed" in md.stdout
    out = tmp_path / "report.json"
    written = clearance(tmp_path, "report", "my-set", "--format", "json", "--out", str(out))
    assert written.returncode == 0 and json.loads(out.read_text())


def test_bad_input_exits_2_naming_the_thing(tmp_path: Path):
    setup_runs(tmp_path)
    clearance(tmp_path, "build", "my-set")
    unknown = clearance(tmp_path, "report", "my-set", "--format", "pdf")
    assert unknown.returncode == 2 and "--format" in unknown.stderr
    assert "available: md, json, html, croissant, eu-summary" in unknown.stderr
    since = clearance(tmp_path, "report", "my-set", "--format", "md", "--since", "v1")
    assert since.returncode == 2 and "--since v1" in since.stderr
    missing = clearance(tmp_path, "report", "nope@v9", "--format", "md")
    assert missing.returncode == 2 and "nope" in missing.stderr
    bad_run = clearance(tmp_path, "build", "x", "--runs", "no-such-run")
    assert bad_run.returncode == 2 and "no-such-run" in bad_run.stderr
    bad_name = clearance(tmp_path, "build", "../escape")
    assert bad_name.returncode == 2 and "../escape" in bad_name.stderr
    bad_source = clearance(tmp_path, "crawl", "ghost")
    assert bad_source.returncode == 2 and "ghost" in bad_source.stderr


def test_source_and_schedule_lists(tmp_path: Path):
    write_config(tmp_path / "configs", [
        source_doc("aurora", schedule="0 3 * * 1"), source_doc("gone", status="revoked"),
    ])
    sources = json.loads(clearance(tmp_path, "source", "list", "--json").stdout)
    status = {row["id"]: (row["status"], row["reason"]) for row in sources}
    assert status == {"aurora": ("active", None), "gone": ("ineligible", "revoked")}
    table = json.loads(clearance(tmp_path, "schedule", "list", "--json").stdout)
    by_id = {row["source_id"]: row for row in table}
    assert by_id["aurora"]["due"] is True and by_id["aurora"]["schedule"] == "0 3 * * 1"
    assert by_id["gone"]["eligible"] is False
    resume = clearance(tmp_path, "source", "resume", "aurora", "--reviewed-by", "J", "--note", "n")
    assert resume.returncode == 2 and "not suspended" in resume.stderr


def test_schedule_run_once_with_nothing_due(tmp_path: Path):
    write_config(tmp_path / "configs", [source_doc("aurora")])  # no schedule
    result = clearance(tmp_path, "schedule", "run", "--once")
    assert result.returncode == 0 and "nothing is due" in result.stdout


def test_init_and_build_print_long_paths_whole(tmp_path: Path):
    """A path is one token as printed, into a pipe with COLUMNS=40 and in a 40-column terminal."""
    project = long_dir(tmp_path)
    init = subprocess.run(cli_command("init", str(project)), capture_output=True, text=True,
                          timeout=120, check=False, env=piped_env(columns=40))
    assert init.returncode == 0, init.stderr
    wrote = printed_paths(init.stdout, project)
    assert wrote and not missing_paths(init.stdout, project), init.stdout
    assert any(p.endswith("configs/clearance.yaml") for p in wrote), init.stdout

    setup_runs(project)
    built = clearance(project, "build", "my-set")
    assert built.returncode == 0, built.stderr
    narrow = subprocess.run(
        cli_command("--config", str(project / "configs"), "--data", str(project / "data"),
                    "build", "my-set"),
        capture_output=True, text=True, timeout=120, check=False, env=piped_env(columns=40),
    )
    code, seen = run_in_terminal(
        cli_command("--config", str(project / "configs"), "--data", str(project / "data"),
                    "build", "my-set"), columns=40,
    )
    assert narrow.returncode == 0 and code == 0, (narrow.stderr, seen)
    for out, version in ((built.stdout, "v1"), (narrow.stdout, "v2"), (seen, "v3")):
        paths = printed_paths(out, project)
        assert [p for p in paths if p.endswith(f"my-set/{version}")], out
        assert not missing_paths(out, project), out
