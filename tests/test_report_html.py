"""The HTML report rendered by real headless Chromium (Debian's ``chromium``, which .ci/run
installs) inside an empty network namespace (``unshare -n``: Chromium contacts update servers
even with background networking off). It renders, its script runs, it shows the source ids and
the row count, its screenshot is not blank, and Chromium's net log shows no request initiated
by the page. A control page that does load remote resources proves the net-log check sees them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers_reports import make_world
from PIL import Image, ImageStat

from pipeline.reports.formats import render_report

CHROMIUM = shutil.which("chromium")


def _can_unshare() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True,
                          check=False).returncode == 0


pytestmark = pytest.mark.skipif(
    (CHROMIUM is None or not _can_unshare()) and not os.environ.get("CI"),
    reason="needs Debian's chromium and unshare -n (.ci/run installs chromium)",
)


def chromium(page: Path, work: Path, *action: str) -> tuple[subprocess.CompletedProcess, Path]:
    """Run headless Chromium on ``page`` in an empty network namespace, with a net log."""
    net_log = work / f"net-{len(list(work.glob('net-*')))}.json"
    argv = ["unshare", "-n", CHROMIUM or "chromium", "--headless", "--no-sandbox",
            "--disable-gpu", f"--user-data-dir={work / 'profile'}", "--no-first-run",
            "--disable-background-networking", "--disable-component-update",
            "--hide-scrollbars", "--window-size=1280,2400", f"--log-net-log={net_log}",
            "--net-log-capture-mode=Everything", *action, page.as_uri()]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    return proc, net_log


def page_requests(net_log: Path) -> list[str]:
    """URLs of requests the page initiated (an initiator origin: the report's opaque file
    origin is "null"); Chromium's own service requests carry "not an origin"."""
    log = json.loads(net_log.read_text())
    types = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    urls: dict[int, str] = {}
    initiated: set[int] = set()
    for event in log["events"]:
        params, source = event.get("params") or {}, event["source"]["id"]
        if "url" in params and types[event["type"]] == "REQUEST_ALIVE":
            urls[source] = params["url"]
        if types[event["type"]] == "URL_REQUEST_START_JOB":
            initiator = params.get("initiator")
            isolation = str(params.get("network_isolation_key", ""))
            if initiator not in (None, "not an origin") or isolation.startswith("file://"):
                initiated.add(source)
                urls.setdefault(source, params.get("url", "?"))
    return sorted(urls[s] for s in initiated)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    base = tmp_path_factory.mktemp("html")
    world = make_world(base)
    page = base / "report.html"
    page.write_text(render_report(world.data, "set@v1", "html"), encoding="utf-8")
    work = base / "chromium"
    work.mkdir()
    dom, dom_log = chromium(page, work, "--dump-dom")
    shot = work / "report.png"
    screenshot, shot_log = chromium(page, work, f"--screenshot={shot}")
    return {"dom": dom, "dom_log": dom_log, "screenshot": screenshot, "shot": shot,
            "shot_log": shot_log, "work": work, "world": world}


def test_chromium_renders_the_report_with_its_script(rendered):
    dom = rendered["dom"]
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert 'data-sortable="ready"' in html  # the inline script ran to its end
    for source_id in ("aurora", "birch", "cedar"):
        assert f"<b>{source_id}</b>" in html
    assert '<div class="v">5</div><div class="l">rows published</div>' in html


def test_the_page_makes_no_network_request(rendered):
    for log in (rendered["dom_log"], rendered["shot_log"]):
        assert log.is_file()
        assert page_requests(log) == []


def test_the_net_log_check_sees_a_page_that_loads_remote_resources(rendered):
    control = rendered["work"] / "control.html"
    control.write_text('<!DOCTYPE html><p>control</p><img src="http://127.0.0.9:9/x.png">'
                       '<link rel="stylesheet" href="https://fonts.example/a.css">')
    proc, log = chromium(control, rendered["work"], "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert page_requests(log) == ["http://127.0.0.9:9/x.png", "https://fonts.example/a.css"]


def test_the_screenshot_is_not_blank(rendered):
    proc, shot = rendered["screenshot"], rendered["shot"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2400)
    # text and charts: many distinct colours and real contrast, in the top and further down
    for box in ((0, 0, 1280, 800), (0, 800, 1280, 1600)):
        part = image.crop(box)
        stat = ImageStat.Stat(part.convert("L"))
        assert stat.stddev[0] > 15, box
        assert len(part.getcolors(maxcolors=1 << 20) or []) > 50, box
    # the charts' bar colours are on the page
    colours = {c for _, c in image.getcolors(maxcolors=1 << 22) or []}
    assert (0x2F, 0x5D, 0x8A) in colours
