"""`clearance schedule run` for real: a crawl child per due source, stopped by SIGTERM.

And what a crawl child does with SIGTERM: one commits a run marked shutdown, a second one
stops Scrapy at once and the run is discarded.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from crawlkit import local_source, write_settings
from mockserver import MockServer

from pipeline.registry.state import State
from pipeline.runs.writer import RUN_JSON


def _cli(tmp: Path, srv: MockServer, *args: str) -> subprocess.Popen[str]:
    write_settings(tmp / "configs", [local_source(
        "site", srv.url("/site/"), crawl={"download_delay": 0.2, "schedule": "* * * * *"})])
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "--config", str(tmp / "configs"),
         "--data", str(tmp / "data"), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for_some_images(srv: MockServer, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while sum(1 for p in srv.paths() if p.startswith("/site/i")) < 2:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate(timeout=10)
            pytest.fail(f"no crawl got going: {srv.paths()} {err[-3000:]}")
        time.sleep(0.1)


def _run_folders(tmp: Path) -> list[Path]:
    root = tmp / "data" / "runs"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def test_schedule_run_stops_on_sigterm_within_30s_leaving_no_half_written_run(
        slow_site: MockServer, tmp_path: Path):
    proc = _cli(tmp_path, slow_site, "schedule", "run", "--max-jitter", "0")
    _wait_for_some_images(slow_site, proc)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=45)
    assert time.monotonic() - t0 < 30, err[-3000:]
    assert proc.returncode == 0, err[-3000:]
    assert "scheduler stopped" in err
    folders = _run_folders(tmp_path)
    assert all((f / RUN_JSON).is_file() for f in folders), [list(f.iterdir()) for f in folders]
    row = State.in_data_dir(tmp_path / "data").scheduler_sources()["site"]
    assert row["last_outcome"] in ("stopped", "abandoned"), row
    if row["last_outcome"] == "stopped":
        (folder,) = folders
        assert json.loads((folder / RUN_JSON).read_text())["finish_reason"] == "shutdown"
    else:
        assert folders == []
    locks = list((tmp_path / "data" / "locks").iterdir())
    assert [p.name for p in locks] == ["site.lock"]


def test_a_crawl_child_commits_on_sigterm(slow_site: MockServer, tmp_path: Path):
    proc = _cli(tmp_path, slow_site, "crawl", "--json", "--no-progress")
    _wait_for_some_images(slow_site, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    run = json.loads(out)
    assert run["finish_reason"] == "shutdown"
    (folder,) = _run_folders(tmp_path)
    assert (folder / "items.parquet").is_file() and (folder / RUN_JSON).is_file()


def test_a_second_sigterm_discards_the_crawl_childs_run(slow_site: MockServer, tmp_path: Path):
    proc = _cli(tmp_path, slow_site, "crawl", "--json", "--no-progress",
                "--run-id", "20260101T000000Z-abcdef")
    _wait_for_some_images(slow_site, proc)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err[-2000:]
    assert "run discarded" in err
    (folder,) = _run_folders(tmp_path)
    assert folder.name == "20260101T000000Z-abcdef"
    assert not any(p.name.endswith(".parquet") or p.name == RUN_JSON for p in folder.iterdir())
