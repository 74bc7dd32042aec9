"""An interrupted or killed crawl never leaves Parquet that looks complete."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
from crawlkit import local_source, write_settings
from mockserver import MockServer

from pipeline.runs.writer import completed_runs


def _start(tmp: Path, srv: MockServer) -> subprocess.Popen[str]:
    write_settings(tmp / "configs", [local_source("site", srv.url("/site/"),
                                                  crawl={"download_delay": 0.2})])
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "--config", str(tmp / "configs"),
         "--data", str(tmp / "data"), "crawl", "--json", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for_some_images(srv: MockServer) -> None:
    deadline = time.monotonic() + 30
    while sum(1 for p in srv.paths() if p.startswith("/site/i")) < 2:
        assert time.monotonic() < deadline, srv.paths()
        time.sleep(0.1)


def test_killed_crawl_leaves_no_visible_run(slow_site: MockServer, tmp_path: Path):
    proc = _start(tmp_path, slow_site)
    _wait_for_some_images(slow_site)
    proc.kill()
    proc.wait(timeout=10)
    runs = list((tmp_path / "data" / "runs").iterdir())
    assert len(runs) == 1
    names = {p.name for p in runs[0].iterdir()}
    assert "items.parquet" not in names and "run.json" not in names, names
    assert completed_runs(tmp_path / "data") == []
    # Killed before its first checkpoint, a run has nothing durable (its segments removed
    # here to make that so): the next crawl removes its folder (its rows were never
    # published); renamed as if it had started long ago, since a young folder may be a writer
    # starting. (A dead run with durable rows is resumed instead: tests/test_resume.py.)
    for segment in runs[0].glob(".*.segment"):
        segment.unlink()
    dead = runs[0].rename(runs[0].with_name("20260101T000000Z-killed"))
    proc = _start(tmp_path, slow_site)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert json.loads(out)["abandoned_runs_removed"] == [dead.name]
    assert not dead.exists()


def test_interrupted_crawl_commits_a_consistent_run_marked_shutdown(slow_site, tmp_path):
    proc = _start(tmp_path, slow_site)
    _wait_for_some_images(slow_site)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    run = json.loads(out)
    assert run["finish_reason"] == "shutdown"
    (info,) = completed_runs(tmp_path / "data")
    assert pq.read_table(info.items_path).num_rows == run["counts"]["items"]
    assert run["counts"]["items"] < 41
