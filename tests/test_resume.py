"""Resume (issue 10 part 8): a crawl killed with SIGKILL and started again loses no item,
duplicates none, asks for nothing whose result was durable, keeps no withheld URL anywhere,
and does not resume a source revoked in between.

Units: the run writer's durable segments and their adoption; the frontier's secure delete.
End to end: the `clearance` CLI in a child process against the slow local site
(tests/conftest.py), killed once enough of its rows are durable, then crawled and built again.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from crawlkit import image_bytes, local_source, page, write_settings
from helpers_config import source_doc
from helpers_runs import make_item
from mockserver import MockServer

from crawler.frontier import IMAGE, PAGE, Frontier, frontier_path
from pipeline.registry.config import Source
from pipeline.runs import writer as writer_module
from pipeline.runs.writer import (
    ITEMS_FILE,
    RESUME_FILE,
    RUN_JSON,
    RUNS_DIR,
    RunWriter,
    completed_runs,
    new_run_id,
    resumable_runs,
    segment_paths,
    sweep_abandoned_runs,
)

BOUND_S = 90  # every wait and child process below is bounded by this


def files_under(root: Path, *, skip: str | None = None) -> list[Path]:
    return [p for p in sorted(root.rglob("*"))
            if p.is_file() and (skip is None or skip not in p.relative_to(root).parts)]


def holding(root: Path, needle: bytes, *, skip: str | None = None) -> list[str]:
    return [str(p.relative_to(root)) for p in files_under(root, skip=skip)
            if needle in p.read_bytes()]


# --------------------------------------------------------------------------- units


@pytest.fixture
def source() -> Source:
    return Source.model_validate(source_doc("aurora-art"))


@pytest.fixture
def other() -> Source:
    return Source.model_validate(source_doc("borealis"))


def url(n: int, host: str = "cdn.aurora-art.example") -> str:
    return f"https://{host}/img/{n}.jpg"


CRASH = """
import os, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from helpers_config import source_doc
from helpers_runs import make_item, make_rejection
from pipeline.registry.config import Source
from pipeline.runs import writer as writer_module
from pipeline.runs.writer import RunWriter

a = Source.model_validate(source_doc("aurora-art"))
b = Source.model_validate(source_doc("borealis"))
writer = RunWriter(Path(sys.argv[1]), sys.argv[3],
                   resumable=["aurora-art", "borealis"])
for i in range(5):
    writer.add_item(make_item(a, f"https://cdn.aurora-art.example/img/{i}.jpg"))
writer.add_item(make_item(b, "https://cdn.borealis.example/img/secret-b.jpg"))
writer.add_rejection(make_rejection(a.id, "https://x.example/out", "out_of_scope"))
writer.checkpoint()
writer.add_item(make_item(a, "https://cdn.aurora-art.example/img/tail.jpg"))  # not durable
os._exit(9)  # SIGKILL-like: no commit, no discard
"""


KILLED = new_run_id(datetime.now(UTC) - timedelta(hours=1))  # past the sweep's grace


def _killed_run(tmp_path: Path) -> Path:
    proc = subprocess.run([sys.executable, "-c", CRASH, str(tmp_path),
                           str(Path(__file__).parent), KILLED],
                          capture_output=True, text=True, timeout=BOUND_S, check=False)
    assert proc.returncode == 9, proc.stderr
    return tmp_path / RUNS_DIR / KILLED


def test_checkpointed_rows_survive_a_kill_and_are_adopted_once(tmp_path: Path,
                                                                source: Source) -> None:
    dead = _killed_run(tmp_path)
    assert segment_paths(dead, "items") and (dead / RESUME_FILE).is_file()
    assert completed_runs(tmp_path) == []  # nothing visible
    # not a crawl of both sources: not adopted; and the sweep keeps it (durable rows)
    assert resumable_runs(tmp_path, {"aurora-art"}) == []
    assert sweep_abandoned_runs(tmp_path) == []
    (run,) = resumable_runs(tmp_path, {"aurora-art", "borealis"})
    writer = RunWriter(tmp_path, "20260101T000100Z-next00", resumable=["aurora-art"])
    items, rejections = writer.adopt(run, {"aurora-art"})  # borealis no longer eligible
    assert not dead.exists()
    assert items.num_rows == 5 and rejections.num_rows == 1
    assert writer.resumed_from == [KILLED]
    writer.add_item(make_item(source, url(99)))
    doc = writer.commit({"sources": {}})
    assert doc["resumed_from"] == [KILLED]
    assert doc["counts"]["items"] == 6 and doc["counts"]["rejections"] == 1
    table = pq.read_table(writer.dir / ITEMS_FILE)
    assert sorted(table["url"].to_pylist()) == sorted([url(i) for i in range(5)] + [url(99)])
    assert set(table["run_id"].to_pylist()) == {writer.run_id}  # rows of the run that holds them
    assert sorted(p.name for p in writer.dir.iterdir()) == [ITEMS_FILE, "rejections.parquet",
                                                          RUN_JSON]
    assert holding(tmp_path, b"secret-b") == []  # the dropped source's row left no bytes


def test_a_killed_run_with_nothing_durable_is_swept_as_before(tmp_path: Path) -> None:
    writer = RunWriter(tmp_path, "20260101T000000Z-empty0", resumable=["aurora-art"])
    os.close(writer._lock or -1)  # the writer dies holding nothing durable
    writer._lock = None
    assert resumable_runs(tmp_path, {"aurora-art"}) == []
    assert sweep_abandoned_runs(tmp_path) == ["20260101T000000Z-empty0"]


def test_remove_items_rewrites_durable_segments_without_the_bytes(tmp_path: Path,
                                                                    source: Source) -> None:
    writer = RunWriter(tmp_path, "r1", resumable=["aurora-art"])
    for i in range(3):
        writer.add_item(make_item(source, url(i)))
    writer.add_item(make_item(source, "https://cdn.aurora-art.example/img/neighbour.jpg"))
    writer.checkpoint()
    assert holding(tmp_path, b"neighbour.jpg")  # zstd keeps short strings as they are
    removed = writer.remove_items({"https://cdn.aurora-art.example/img/neighbour.jpg"})
    assert len(removed) == 1 and writer.counts()["items"] == 3
    assert holding(tmp_path, b"neighbour.jpg") == []
    writer.discard()


def test_segments_are_merged_and_a_merge_cut_short_counts_no_row_twice(
        tmp_path: Path, source: Source, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "_COMPACT_SEGMENTS", 4)
    dead = RunWriter(tmp_path, KILLED, resumable=["aurora-art"])
    for i in range(3):
        dead.add_item(make_item(source, url(i)))
        dead.checkpoint()
    copies = {p: p.read_bytes() for p in segment_paths(dead.dir, "items")}
    dead.add_item(make_item(source, url(3)))
    dead.checkpoint()  # the fourth segment: the four become one
    assert [p.name for p in segment_paths(dead.dir, "items")] == [".items.000004.segment"]
    for path, data in copies.items():  # as if killed before the merged-away were unlinked
        path.write_bytes(data)
    for i in range(4, 10):
        dead.add_item(make_item(source, url(i)))
        dead.checkpoint()
    assert len(segment_paths(dead.dir, "items")) == 3 + 1 + 1 + 2  # stale copies, 2 merged, 2
    os.close(dead._lock or -1)  # the writer dies
    dead._lock = None
    (run,) = resumable_runs(tmp_path, {"aurora-art"})
    writer = RunWriter(tmp_path, new_run_id(), resumable=["aurora-art"])
    items, _ = writer.adopt(run, {"aurora-art"})
    assert sorted(items["url"].to_pylist()) == sorted(url(i) for i in range(10))
    doc = writer.commit({"sources": {}})
    assert doc["counts"]["items"] == 10
    assert pq.read_table(writer.dir / ITEMS_FILE)["url"].to_pylist() == [url(i)
                                                                        for i in range(10)]


def test_the_killed_runs_hits_count_and_withdraw_neighbours_after_resuming(
        tmp_path: Path) -> None:
    from types import SimpleNamespace

    from crawler.resume import Resume
    from pipeline.safety.incidents import BLOCKLIST_MATCH, NEIGHBOUR, Incident, write_incident

    pdq = "f" * 64
    for kind, run_id in ((BLOCKLIST_MATCH, KILLED), (NEIGHBOUR, KILLED),
                         (BLOCKLIST_MATCH, "20260101T000000Z-other0")):
        write_incident(tmp_path, Incident(kind, "site", "crawl", run_id=run_id, pdq=pdq,
                                          pdq_quality=100, list_id="partner", list_kind="pdq",
                                          list_version="v", matched=pdq, distance=0))
    screen = SimpleNamespace(data_dir=tmp_path, incidents=0, hit_pdqs=[],
                             screener=SimpleNamespace(threshold_for=lambda hit: 31))
    Resume(resumed_from=[KILLED])._seed_hits(screen)  # type: ignore[arg-type]
    assert screen.incidents == 2  # both of the killed run's incidents, counts.withheld
    ((centre, threshold, _, hit),) = screen.hit_pdqs  # only its hit is a centre
    assert (centre, threshold, hit.list_id) == (pdq, 31, "partner")


def test_frontier_forgets_a_withheld_url_with_its_bytes(tmp_path: Path) -> None:
    withheld = "http://127.0.0.1:1/gallery/withheld-image.jpg"
    frontier = Frontier.open(tmp_path, "site", "r1", keep=False,
                             is_withheld=lambda u: u.endswith("/never.jpg"))
    assert frontier is not None
    frontier.queued(PAGE, "http://127.0.0.1:1/gallery/", 0, None)
    for i in range(300):  # enough rows for several pages of the b-tree
        frontier.queued(IMAGE, f"http://127.0.0.1:1/gallery/{i:04d}.jpg", None,
                        "http://127.0.0.1:1/gallery/")
    frontier.queued(IMAGE, withheld, None, "http://127.0.0.1:1/gallery/")
    frontier.queued(IMAGE, "http://127.0.0.1:1/gallery/never.jpg", None, None)
    frontier.flush()
    path = frontier_path(tmp_path, "site")
    assert withheld.encode() in path.read_bytes()
    assert b"never.jpg" not in path.read_bytes()  # withheld before its row was written
    frontier.forget([withheld])
    assert holding(tmp_path, b"withheld-image") == []
    assert len(frontier) == 301
    frontier.parsed("http://127.0.0.1:1/gallery/")
    for i in range(300):
        frontier.done(f"http://127.0.0.1:1/gallery/{i:04d}.jpg")
    plan = frontier.plan()
    assert plan.pending == [] and plan.pages_sent == 1
    assert "http://127.0.0.1:1/gallery/" in plan.settled
    assert Frontier.open(tmp_path, "site", "r2", keep=True) is None  # one crawl at a time
    frontier.close(delete=True)
    assert not path.exists()


def test_the_addon_switches_the_frontier_and_the_checkpoints_on() -> None:
    from scrapy import Spider
    from scrapy.utils.test import get_crawler

    from crawler.addon import ClearanceAddon

    crawler = get_crawler(Spider, {"ADDONS": {ClearanceAddon: 0}})
    crawler._apply_settings()  # no CrawlContext: the checkpoint extension stays off
    settings = crawler.settings
    assert "crawler.spidermiddlewares.frontier.FrontierMiddleware" in settings.getwithbase(
        "SPIDER_MIDDLEWARES")
    assert "crawler.extensions.checkpoint.Checkpoint" in settings.getwithbase("EXTENSIONS")
    assert settings.get("JOBDIR") is None  # the frontier is ours, not Scrapy's pickles


# --------------------------------------------------------------------------- end to end

WITHHELD_PATH = "/listed/bad.jpg"


def _serve_more(srv: MockServer) -> bytes:
    """Beside the slow site: a source with a blocklisted image, one to be revoked."""
    bad = image_bytes((250, 5, 120))
    srv.route("/listed/", body=page(f'<img src="{WITHHELD_PATH}"><img src="/listed/ok.jpg">'))
    srv.route(WITHHELD_PATH, body=bad, content_type="image/jpeg")
    srv.route("/listed/ok.jpg", body=image_bytes((5, 250, 120)), content_type="image/jpeg")
    srv.route("/rev/", body=page('<img src="/rev/r1.jpg"><img src="/rev/r2.jpg">'))
    srv.route("/rev/r1.jpg", body=image_bytes((1, 2, 3)), content_type="image/jpeg")
    srv.route("/rev/r2.jpg", body=image_bytes((3, 2, 1)), content_type="image/jpeg")
    return bad


def _configure(tmp: Path, srv: MockServer, bad: bytes, *, revoked: bool = False) -> None:
    lists = tmp / "configs" / "blocklists"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "partner.txt").write_text(hashlib.sha256(bad).hexdigest() + "\n")
    write_settings(
        tmp / "configs",
        [local_source("site", srv.url("/site/"), crawl={"download_delay": 0.2}),
         local_source("listed", srv.url("/listed/")),
         local_source("rev", srv.url("/rev/"), status="revoked" if revoked else "active")],
        blocklists=[{"id": "partner", "kind": "sha256", "path": "blocklists/partner.txt"}])


def _cli(tmp: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", "--config", str(tmp / "configs"),
            "--data", str(tmp / "data"), *args]


def _durable_items(run_dir: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for segment in segment_paths(run_dir, "items"):
        rows.extend(pq.read_table(segment, columns=["url", "source_id"]).to_pylist())
    return rows


def _wait_until_durable(data: Path, srv: MockServer, proc: subprocess.Popen[str]) -> Path:
    """Until >= 4 slow-site images were requested and >= 3 of their rows, both revoked-source
    rows and the blocklist incident are durable (the crawl is far from done by then)."""
    deadline = time.monotonic() + BOUND_S
    while True:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, srv.paths()
        runs = list((data / RUNS_DIR).glob("2*")) if (data / RUNS_DIR).is_dir() else []
        if runs and sum(1 for p in srv.paths() if p.startswith("/site/i")) >= 4:
            rows = _durable_items(runs[0])
            by_source = [r["source_id"] for r in rows]
            if (by_source.count("site") >= 3 and by_source.count("rev") == 2
                    and any((data / "incidents").rglob("*.json"))):
                return runs[0]
        time.sleep(0.05)


def test_killed_crawl_resumes_without_loss_duplicates_or_refetches(slow_site: MockServer,
                                                                    tmp_path: Path) -> None:
    bad = _serve_more(slow_site)
    _configure(tmp_path, slow_site, bad)
    data = tmp_path / "data"
    proc = subprocess.Popen(_cli(tmp_path, "crawl", "--json", "--no-progress"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        killed = _wait_until_durable(data, slow_site, proc)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=BOUND_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_log = len(slow_site.requests)
    durable = {str(r["url"]) for r in _durable_items(killed) if r["source_id"] == "site"}
    site_images = {slow_site.url("/site/a.jpg")} | {slow_site.url(f"/site/i{i}.jpg")
                                                   for i in range(40)}
    assert 3 <= len(durable) < len(site_images), "killed mid-crawl, some rows durable"
    assert (data / "frontier" / "site.sqlite").is_file()
    withheld = slow_site.url(WITHHELD_PATH).encode()
    secrets = [withheld, WITHHELD_PATH.encode(), hashlib.sha256(bad).hexdigest().encode()]
    for needle in secrets:  # the incident record is the one place it may be
        assert holding(data, needle, skip="incidents") == [], needle

    # Between the kill and the restart the "rev" source's consent is revoked.
    _configure(tmp_path, slow_site, bad, revoked=True)
    done = subprocess.run(_cli(tmp_path, "crawl", "--no-progress"), capture_output=True,
                          text=True, timeout=BOUND_S, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resumed killed run {killed.name}" in done.stdout, done.stdout
    assert "skipped rev" in done.stderr and "skipped listed" in done.stderr, done.stderr
    (run,) = completed_runs(data)
    assert run.meta["resumed_from"] == [killed.name]
    assert run.meta["resume"]["sources"] == ["site"]
    assert run.meta["resume"]["items"] == len(durable)  # the killed run's site rows, no more
    page_paths = [r.path for r in slow_site.requests if r.path.startswith("/site/p")]
    print(f"durable at kill: {len(durable)} of {len(site_images)} images; resume: "
          f"{run.meta['resume']}; page requests in all: {len(page_paths)} for 40 pages")
    assert not killed.exists()

    after = [r.path for r in slow_site.requests[killed_log:]]
    assert not [p for p in after if p.startswith(("/rev/", "/listed/"))], after
    paths = [r.path for r in slow_site.requests]
    for image in durable:  # a durable row's image was requested once, by the killed crawl
        path = image.removeprefix(slow_site.url(""))
        assert paths.count("/" + path.lstrip("/")) == 1, (image, paths.count(path))

    items = pq.read_table(run.items_path, columns=["url", "source_id"]).to_pylist()
    assert sorted(r["url"] for r in items) == sorted(site_images), "each image once, all there"
    assert {r["source_id"] for r in items} == {"site"}  # the revoked source's rows dropped

    built = subprocess.run(_cli(tmp_path, "build", "resumed"), capture_output=True, text=True,
                           timeout=BOUND_S, check=False)
    assert built.returncode == 0, built.stderr[-3000:]
    version = next((data / "manifests" / "resumed").glob("v*"))
    published = pq.read_table(version / "data", columns=["url"])["url"].to_pylist()
    assert sorted(published) == sorted(site_images)
    assert not list((data / "frontier").glob("*.sqlite*")), "committed: frontiers removed"
    for needle in secrets:
        assert holding(data, needle, skip="incidents") == [], needle
    assert json.loads((run.path / RUN_JSON).read_text())["counts"]["items"] == len(site_images)


def test_a_scheduler_style_run_id_is_kept_when_resuming(slow_site: MockServer,
                                                        tmp_path: Path) -> None:
    """`--run-id` (what `schedule run` passes) names the resuming run, so the scheduler finds
    the run.json it waits for."""
    bad = _serve_more(slow_site)
    _configure(tmp_path, slow_site, bad)
    write_settings(tmp_path / "configs",
                   [local_source("site", slow_site.url("/site/"),
                                 crawl={"download_delay": 0.2})])
    data = tmp_path / "data"
    proc = subprocess.Popen(_cli(tmp_path, "crawl", "--json", "--no-progress", "site"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + BOUND_S
        while True:
            assert proc.poll() is None and time.monotonic() < deadline
            runs = list((data / RUNS_DIR).glob("2*")) if (data / RUNS_DIR).is_dir() else []
            if runs and len(_durable_items(runs[0])) >= 2:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=BOUND_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    run_id = "20991231T000000Z-abcdef"
    done = subprocess.run(_cli(tmp_path, "crawl", "--json", "--no-progress", "--run-id", run_id,
                               "site"), capture_output=True, text=True, timeout=BOUND_S,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)
    assert doc["run_id"] == run_id and doc["resumed_from"] == [runs[0].name]
    assert (data / RUNS_DIR / run_id / RUN_JSON).is_file()
