"""Blocklist screening in the real crawl: hits leave no trace but an incident (promise 4).

Hash lists are made at test time from images the test draws (and a real fixture photo), the
images are served by a local site, and the crawler runs in a child process at DEBUG log level.
Each hit lives in its own source, since the first hit suspends its source.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import SHARED_FIXTURES
from crawlkit import CRAWL_TIMEOUT_S, image_bytes, local_source, page, write_settings
from mockserver import MockServer
from PIL import Image, ImageDraw, ImageFilter

from crawler.perceptual import pdq_hash
from pipeline.registry.state import State
from pipeline.safety.matching import pdq_distance
from pipeline.safety.urls import normalise_url


def pattern(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A photo-like image (blurred discs) whose PDQ is stable under mild edits."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x, y = int(rng.integers(0, size[0])), int(rng.integers(0, size[1]))
        r = int(rng.integers(20, 80))
        draw.ellipse((x - r, y - r, x + r, y + r),
                     fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return img.filter(ImageFilter.GaussianBlur(3))


def encode(img: Image.Image, fmt: str = "PNG", **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def degrade(img: Image.Image) -> bytes:
    """Resized to 3/4, cropped by 1% on each side and re-encoded as JPEG quality 70."""
    w, h = img.size
    cropped = img.crop((w // 100, h // 100, w - w // 100, h - h // 100))
    return encode(cropped.resize((w * 3 // 4, h * 3 // 4)), "JPEG", quality=70)


def pdq_of(body: bytes) -> str:
    with Image.open(io.BytesIO(body)) as img:
        img.load()
        return pdq_hash(img)[0]


def write_list(config_dir: Path, name: str, lines: list[str]) -> str:
    path = config_dir / "blocklists" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# test list\n" + "\n".join(lines) + "\n")
    path.chmod(0o600)
    return f"blocklists/{name}"


def crawl(tmp: Path, *args: str, as_json: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pipeline.cli", "-vv", "--config", str(tmp / "configs"),
           "--data", str(tmp / "data"), "crawl", "--no-progress", *args]
    if as_json:
        cmd.append("--json")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=CRAWL_TIMEOUT_S,
                          check=False)


def cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pipeline.cli", "--config", str(tmp / "configs"),
           "--data", str(tmp / "data"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def files_under(root: Path) -> list[Path]:
    return [p for p in sorted(root.rglob("*")) if p.is_file()]


class Site:
    """The served images and the lists made from them."""

    def __init__(self, srv: MockServer, fixture: bytes | None):
        self.srv = srv
        base_a = pattern(1)
        self.exact = encode(base_a)  # on the sha256 list
        base_n = pattern(6)
        self.n_hit = encode(base_n)  # on the sha256 list
        self.neighbour = encode(base_n, "JPEG", quality=90)  # not listed; near `n_hit`
        self.md5_hit = encode(pattern(2))
        base_p = pattern(3)
        self.pdq_original = encode(base_p)  # its PDQ is listed; never served
        self.pdq_copy = degrade(base_p)
        self.fixture_copy = degrade(Image.open(io.BytesIO(fixture)).convert("RGB")) \
            if fixture else None
        self.fixture = fixture
        self.keep = encode(pattern(4))
        noise = np.random.default_rng(7).integers(0, 256, (600, 800, 3), dtype=np.uint8)
        self.big = encode(Image.fromarray(noise, "RGB"))  # > 256 KiB: the decode pool's path
        assert len(self.big) > 256 * 1024
        self.clean_n = encode(pattern(5))
        self.undecodable = b"\xff\xd8\xff not really a jpeg " + bytes(range(256)) * 4
        srv.route("/robots.txt", body="User-agent: *\nAllow: /\n", content_type="text/plain")
        srv.route("/a/", body=page('<img src="/a/img.png">'))
        srv.route("/a/img.png", body=self.exact, content_type="image/png")
        srv.route("/m/", body=page('<img src="/m/img.png"><img src="/m/broken.jpg">'))
        srv.route("/m/img.png", body=self.md5_hit, content_type="image/png")
        srv.route("/m/broken.jpg", body=self.undecodable, content_type="image/jpeg")
        srv.route("/p/", body=page('<img src="/p/copy.jpg">'))
        srv.route("/p/copy.jpg", body=self.pdq_copy, content_type="image/jpeg")
        srv.route("/u/", body=page('<img src="/u/listed.jpg?id=7"><img src="/u/b.jpg">'))
        srv.route("/u/listed.jpg", body=image_bytes((9, 9, 9)), content_type="image/jpeg",
                  prefix=True)
        srv.route("/u/b.jpg", body=image_bytes((1, 99, 9)), content_type="image/jpeg")
        self.listed_broken = b"\xff\xd8\xff listed but undecodable " + bytes(range(256))
        srv.route("/x/", body=page('<img src="/x/broken.jpg">'))
        srv.route("/x/broken.jpg", body=self.listed_broken, content_type="image/jpeg")
        srv.route("/e/", body=page('<img src="/e/err.png">'))  # listed bytes behind an error
        srv.route("/e/err.png", status=404, body=self.exact, content_type="image/png")
        srv.route("/r/", body=page('<img src="/r/moved.jpg">'))
        srv.redirect("/r/moved.jpg", "/r/listed.jpg")
        srv.route("/r/listed.jpg", body=image_bytes((7, 7, 70)), content_type="image/jpeg")
        srv.route("/k/", body=page('<img src="/k/keep.png" alt="kept"><img src="/k/big.png">'))
        srv.route("/k/big.png", body=self.big, content_type="image/png")
        srv.route("/k/keep.png", body=self.keep, content_type="image/png")
        # neighbour expansion: the near-duplicate comes first (depth 0), the hit one page deeper
        srv.route("/n/", body=page('<img src="/n/near.jpg"><img src="/n/clean.png">'
                                   '<a href="/n/deeper.html">more</a>'))
        srv.route("/n/near.jpg", body=self.neighbour, content_type="image/jpeg")
        srv.route("/n/clean.png", body=self.clean_n, content_type="image/png")
        srv.route("/n/deeper.html", body=page('<img src="/n/hit.png">'), delay=2.5)
        srv.route("/n/hit.png", body=self.n_hit, content_type="image/png")
        if self.fixture_copy is not None:
            srv.route("/f/", body=page('<img src="/f/photo.jpg">'))
            srv.route("/f/photo.jpg", body=self.fixture_copy, content_type="image/jpeg")

    @property
    def hit_sources(self) -> list[str]:
        return sorted(["a", "m", "p", "u", "n", "x", "r", "e"] + (["f"] if self.fixture else []))

    @property
    def hit_urls(self) -> list[str]:
        urls = ["/a/img.png", "/m/img.png", "/p/copy.jpg", "/u/listed.jpg?id=7", "/n/near.jpg",
                "/n/hit.png", "/x/broken.jpg", "/r/moved.jpg", "/r/listed.jpg", "/e/err.png"]
        urls += ["/f/photo.jpg"] if self.fixture else []
        return [self.srv.url(u) for u in urls]

    def hit_bodies(self) -> list[bytes]:
        bodies = [self.exact, self.md5_hit, self.pdq_copy, self.neighbour, self.listed_broken,
                  self.n_hit]
        return bodies + ([self.fixture_copy] if self.fixture_copy else [])


@pytest.fixture(scope="module")
def screened(tmp_path_factory, request):
    # A real photo (see ../shared/fixtures/SOURCES.md); its degraded copy is served.
    photo = SHARED_FIXTURES / "images" / "c2pa" / "c2pa-rs_adobe_connected_identities.jpg"
    fixture = photo.read_bytes() if photo.is_file() else None
    tmp = tmp_path_factory.mktemp("screening")
    with MockServer() as srv:
        site = Site(srv, fixture)
        config = tmp / "configs"
        pdq_lines = [pdq_of(site.pdq_original)]
        if fixture:
            pdq_lines.append(pdq_of(fixture) + ",100")
        sha256_lines = [hashlib.sha256(site.exact).hexdigest().upper(),
                        hashlib.sha256(site.n_hit).hexdigest(),
                        hashlib.sha256(site.listed_broken).hexdigest()]
        blocklists = [
            {"id": "test-sha256", "kind": "sha256",
             "path": write_list(config, "sha256.txt", sha256_lines)},
            {"id": "test-md5", "kind": "md5",
             "path": write_list(config, "md5.txt", [hashlib.md5(site.md5_hit).hexdigest()])},
            {"id": "test-pdq", "kind": "pdq", "threshold": 31,
             "path": write_list(config, "pdq.txt", pdq_lines)},
            {"id": "test-urls", "kind": "url-sha256",
             "path": write_list(config, "urls.txt", [hashlib.sha256(normalise_url(
                 srv.url(u)).encode()).hexdigest() for u in ("/u/listed.jpg?id=7",
                                                             "/r/listed.jpg")])},
        ]
        ids = ["a", "m", "p", "u", "k", "n", "x", "r", "e"] + (["f"] if fixture else [])
        write_settings(config, [local_source(i, srv.url(f"/{i}/")) for i in ids],
                       blocklists=blocklists,
                       incidents={"reporting_organisation": "Example T&S", "contact": "ts@x"})
        proc = crawl(tmp)
        requests_after_first = list(srv.requests)
        second = crawl(tmp, "a", "k", as_json=False)
        requests_after_second = list(srv.requests)
        yield {
            "tmp": tmp, "site": site, "proc": proc, "second": second,
            "first_requests": requests_after_first, "second_requests": requests_after_second,
        }


def _run(screened: dict[str, Any]) -> tuple[dict[str, Any], list[dict], list[dict]]:
    proc = screened["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads(proc.stdout)
    run_dir = screened["tmp"] / "data" / "runs" / run["run_id"]
    return (run, pq.read_table(run_dir / "items.parquet").to_pylist(),
            pq.read_table(run_dir / "rejections.parquet").to_pylist())


def centre_time(record: dict[str, Any]) -> str:
    return record["content"]["accessed_at"]


def incidents(screened: dict[str, Any]) -> list[dict[str, Any]]:
    folder = screened["tmp"] / "data" / "incidents"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def test_hits_are_withheld_and_the_clean_images_kept(screened):
    run, items, rejections = _run(screened)
    site: Site = screened["site"]
    kept = {i["url"] for i in items}
    # /u/b.jpg is kept only when it was fetched before its source's URL-list hit
    assert kept - {site.srv.url("/u/b.jpg")} == {site.srv.url("/k/keep.png"),
                                                 site.srv.url("/k/big.png"),
                                                 site.srv.url("/n/clean.png")}
    assert not kept & set(site.hit_urls)
    assert not {r["url"] for r in rejections} & set(site.hit_urls)
    assert run["counts"]["withheld"] == len(incidents(screened)) >= len(site.hit_sources) + 1
    assert set(site.hit_sources) <= set(run["suspended"]) and "k" not in run["suspended"]


def test_kept_rows_carry_pdq_sha1_and_the_lists_screened_against(screened):
    _, items, _ = _run(screened)
    site: Site = screened["site"]
    item = next(i for i in items if i["url"] == site.srv.url("/k/keep.png"))
    assert item["pdq"] == pdq_of(site.keep) and 0 <= item["pdq_quality"] <= 100
    assert item["sha1"] == hashlib.sha1(site.keep).hexdigest()
    big = next(i for i in items if i["url"] == site.srv.url("/k/big.png"))  # decode pool
    assert big["pdq"] == pdq_of(site.big) and big["sha1"] == hashlib.sha1(site.big).hexdigest()
    assert (big["width"], big["height"]) == (800, 600)
    lists = sorted(b["id"] for b in item["blocklists"])
    assert lists == ["test-md5", "test-pdq", "test-sha256", "test-urls"]
    version = next(b["version"] for b in item["blocklists"] if b["id"] == "test-sha256")
    listed = (screened["tmp"] / "configs" / "blocklists" / "sha256.txt").read_bytes()
    assert version == hashlib.sha256(listed).hexdigest()


def test_one_incident_per_hit_with_what_a_hotline_report_needs(screened):
    site: Site = screened["site"]
    records = {r["content"]["url"]: r for r in incidents(screened)}
    exact = records[site.srv.url("/a/img.png")]
    assert exact["incident_type"] == "blocklist_match"
    assert exact["hashes"]["sha256"] == hashlib.sha256(site.exact).hexdigest()
    assert exact["hashes"]["md5"] == hashlib.md5(site.exact).hexdigest()
    assert exact["hashes"]["sha1"] == hashlib.sha1(site.exact).hexdigest()
    assert exact["hashes"]["pdq"] == pdq_of(site.exact)
    assert exact["match"]["list_id"] == "test-sha256" and exact["match"]["distance"] is None
    assert exact["source"] == {"id": "a", "name": "A Collective", "consent_id": "C-a"}
    assert exact["content"]["page_url"] == site.srv.url("/a/")
    assert exact["content"]["server_ip"] == "127.0.0.1"
    assert exact["content"]["http_status"] == 200 and exact["content"]["accessed_at"]
    assert exact["crawler"]["run_id"] == json.loads(screened["proc"].stdout)["run_id"]
    assert exact["content_retained"] is False
    assert exact["reporter"] == {"organisation": "Example T&S", "contact": "ts@x"}
    assert records[site.srv.url("/m/img.png")]["match"]["list_id"] == "test-md5"
    copy = records[site.srv.url("/p/copy.jpg")]
    assert copy["match"]["list_id"] == "test-pdq"
    distance = copy["match"]["distance"]
    assert distance == pdq_distance(pdq_of(site.pdq_copy), pdq_of(site.pdq_original)) <= 31
    print(f"PDQ distance of the resized+cropped+q70 copy: {distance}")
    if site.fixture:
        photo = records[site.srv.url("/f/photo.jpg")]
        assert photo["match"]["list_id"] == "test-pdq" and photo["match"]["distance"] <= 31
        print(f"PDQ distance of the degraded fixture photo: {photo['match']['distance']}")
    error = records[site.srv.url("/e/err.png")]  # screened although answered with a 404
    assert error["match"]["list_id"] == "test-sha256" and error["content"]["http_status"] == 404
    broken = records[site.srv.url("/x/broken.jpg")]  # screened on its exact hashes
    assert broken["match"]["list_id"] == "test-sha256" and broken["hashes"]["pdq"] is None
    assert broken["hashes"]["sha256"] == hashlib.sha256(site.listed_broken).hexdigest()
    url_hit = records[site.srv.url("/u/listed.jpg?id=7")]
    assert url_hit["incident_type"] == "url_list_match" and url_hit["hashes"]["sha256"] is None
    near = records[site.srv.url("/n/near.jpg")]
    # near.jpg was admitted first (the hit's page answers 2.5 s later), then withdrawn
    assert near["detected_by"] == "crawl" and near["content"]["accessed_at"] < centre_time(
        records[site.srv.url("/n/hit.png")])
    assert near["incident_type"] == "blocklist_neighbour"
    assert near["neighbour_of"] == records[site.srv.url("/n/hit.png")]["incident_id"]
    assert near["match"]["distance"] <= near["match"]["threshold"] == 31


def test_the_undecodable_body_is_screened_then_rejected_normally(screened):
    # The md5 source is suspended by its hit; its broken image is either not fetched (dropped)
    # or, when it came first, rejected as not_an_image: never withheld, never an incident.
    _, _, rejections = _run(screened)
    site: Site = screened["site"]
    broken = site.srv.url("/m/broken.jpg")
    assert [r["reason"] for r in rejections if r["url"] == broken] in ([], ["not_an_image"])
    assert broken not in {r["content"]["url"] for r in incidents(screened)}


def test_url_listed_image_is_never_requested(screened):
    paths = [r.path for r in screened["first_requests"]]
    assert "/u/" in paths and not any(p.startswith("/u/listed.jpg") for p in paths)
    # a redirect to a listed URL: the hop is followed no further
    assert "/r/moved.jpg" in paths and "/r/listed.jpg" not in paths
    site: Site = screened["site"]
    record = next(r for r in incidents(screened)
                  if r["content"]["url"] == site.srv.url("/r/listed.jpg"))
    assert record["content"]["redirect_chain"] == [site.srv.url("/r/moved.jpg")]


def test_no_trace_outside_incidents(screened):
    """Bytes, hashes, PDQ and URL of every hit: nowhere in the data dir but incidents/, nor in
    the crawl's stdout/stderr (DEBUG logging, so Scrapy's own per-response lines are in)."""
    site: Site = screened["site"]
    data = screened["tmp"] / "data"
    needles: list[bytes] = []
    for body in site.hit_bodies():
        needles += [body, hashlib.sha256(body).hexdigest().encode(),
                    hashlib.md5(body).hexdigest().encode()]
        if body is not site.listed_broken:
            needles.append(pdq_of(body).encode())
    for url in site.hit_urls:
        path = url.split("/", 3)[3]
        needles += [url.encode(), path.encode()]
    checked = 0
    for path in files_under(data):
        if path.parts[len(data.parts)] == "incidents":
            continue
        blob = path.read_bytes()
        checked += 1
        for needle in needles:
            assert needle not in blob and needle.upper() not in blob, (path, needle[:80])
    assert checked >= 4  # runs' files and state.sqlite
    for proc in (screened["proc"], screened["second"]):
        out = (proc.stdout + proc.stderr).encode()
        for needle in needles:
            assert needle not in out, needle[:80]
    assert b"withheld by blocklist test-sha256" in screened["proc"].stderr.encode()
    assert "Crawled (200)" in screened["proc"].stderr  # DEBUG lines were there to check


def test_incident_modes(screened):
    folder = screened["tmp"] / "data" / "incidents"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = list(folder.iterdir())
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    assert all(p.suffix == ".json" and not p.name.startswith(".") for p in files)


def test_suspension_survives_and_a_second_crawl_sends_nothing(screened):
    tmp, site = screened["tmp"], screened["site"]
    second = screened["second"]
    assert second.returncode == 0, second.stderr[-2000:]
    assert "skipped a:" in second.stderr and "suspended" in second.stderr
    assert "clearance source resume a" in second.stderr
    new = screened["second_requests"][len(screened["first_requests"]):]
    assert not [r for r in new if r.path.startswith("/a/")]
    assert [r for r in new if r.path.startswith("/k/")]  # the clean source is crawled
    state = State.in_data_dir(tmp / "data")
    assert set(site.hit_sources) <= state.suspended_ids()
    listed = cli(tmp, "source", "list", "--json")
    status = {row["id"]: row["status"] for row in json.loads(listed.stdout)}
    assert status["a"] == "suspended" and status["k"] == "active"
    scheduled = json.loads(cli(tmp, "schedule", "list", "--json").stdout)
    row = next(r for r in scheduled if r["source_id"] == "a")
    assert not row["eligible"] and not row["due"] and "suspended" in row["message"]
    reason = state.suspensions("a")[-1].reason
    assert "incident" in reason and "http" not in reason


def test_resume_is_the_only_way_back(screened, tmp_path):
    tmp = screened["tmp"]
    refused = cli(tmp, "source", "resume", "p", "--reviewed-by", "", "--note", "x")
    assert refused.returncode == 2
    ok = cli(tmp, "source", "resume", "p", "--reviewed-by", "J. Doe", "--note", "reported")
    assert ok.returncode == 0, ok.stderr
    assert "p" not in State.in_data_dir(tmp / "data").suspended_ids()
    last = State.in_data_dir(tmp / "data").suspensions("p")[-1]
    assert last.reviewed_by == "J. Doe" and last.note == "reported"


def test_incidents_list_gives_counts_only(screened):
    tmp, site = screened["tmp"], screened["site"]
    proc = cli(tmp, "incidents", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["total"] == len(incidents(screened))
    assert doc["by_source"]["a"] == 1 and doc["by_list"]["test-md5"] == 1
    text = cli(tmp, "incidents", "list")
    assert text.returncode == 0 and "test-sha256" in text.stdout
    for out in (proc.stdout, text.stdout):
        assert "http" not in out and hashlib.sha256(site.exact).hexdigest() not in out


def test_incident_files_are_never_world_readable_even_with_a_loose_umask(tmp_path):
    from pipeline.safety.incidents import Incident, write_incident

    old = os.umask(0)
    try:
        path = write_incident(tmp_path, Incident("blocklist_match", "s", "crawl", url="u"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
