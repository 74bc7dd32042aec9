"""`clearance demo` end to end, as the README's quick start runs it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
from helpers_output import (
    cli_command,
    long_dir,
    missing_paths,
    piped_env,
    printed_paths,
    run_in_terminal,
)


def test_demo_runs_end_to_end_and_never_leaves_consent(tmp_path: Path):
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "demo", str(tmp_path / "demo"), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.monotonic() - started < 60
    summary = json.loads(proc.stdout)
    assert summary["leaked"] == []
    assert summary["kept"] > 10
    reasons = summary["excluded_by_reason"]
    for key in ("crawl:out_of_scope", "crawl:robots_disallowed", "crawl:robots_ai_optout",
                "crawl:consent_inactive", "crawl:no_licence", "crawl:not_an_image",
                "crawl:too_large", "build:duplicate", "crawl:licence_not_allowed"):
        assert reasons.get(key, 0) >= 1, (key, reasons)
    manifest = Path(summary["manifest"])
    assert pq.read_table(manifest / "data").num_rows == summary["kept"]
    assert "Kept" in proc.stderr and "Excluded" in proc.stderr
    assert (tmp_path / "demo" / "report.md").read_text().strip()
    credits = (tmp_path / "demo" / "ATTRIBUTION").read_text().splitlines()
    credited = sum("is licensed under" in line or "is marked with" in line for line in credits)
    assert credited == summary["kept"]


def test_demo_refuses_a_directory_it_did_not_make(tmp_path: Path):
    (tmp_path / "precious.txt").write_text("keep me")
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "demo", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 2
    assert "not a Clearance demo directory" in proc.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"


# --------------------------------------------------------------------------- printed paths

DEMO_FILES = ("data/runs/", "data/manifests/demo/v1/data", "audit/exclusions.parquet",
              "manifest.json", "report.md", "ATTRIBUTION", "configs")


def _assert_paths_print_whole(text: str, directory: Path) -> None:
    printed = printed_paths(text, directory)
    assert not missing_paths(text, directory), (
        "printed paths that do not exist as printed (wrapped?):\n"
        + "\n".join(missing_paths(text, directory)) + "\n--- output ---\n" + text
    )
    for tail in DEMO_FILES:
        assert any(tail in p for p in printed), (tail, printed, text)


def test_demo_prints_long_paths_whole_into_a_pipe(tmp_path: Path):
    directory = long_dir(tmp_path)
    proc = subprocess.run(cli_command("demo", str(directory)), capture_output=True, text=True,
                          timeout=120, check=False, env=piped_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_paths_print_whole(proc.stdout + proc.stderr, directory)


def test_demo_prints_long_paths_whole_with_columns_40(tmp_path: Path):
    directory = long_dir(tmp_path)
    proc = subprocess.run(cli_command("demo", str(directory)), capture_output=True, text=True,
                          timeout=120, check=False, env=piped_env(columns=40))
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_paths_print_whole(proc.stdout + proc.stderr, directory)
    # The tables keep every word whole too: image paths are not cut to fit.
    assert "…" not in proc.stderr


def test_demo_prints_long_paths_whole_in_a_40_column_terminal(tmp_path: Path):
    directory = long_dir(tmp_path)
    code, seen = run_in_terminal(cli_command("demo", str(directory)), columns=40)
    assert code == 0, seen[-3000:]
    _assert_paths_print_whole(seen, directory)
