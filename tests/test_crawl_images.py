"""Pages and images end to end: extraction, licences, limits and hostile bodies."""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import pytest
from crawlkit import image_bytes, local_source, page, run_crawl_cli, write_settings
from mockserver import MockServer

from pipeline.runs import reasons
from pipeline.runs.schema import ITEM_COLUMNS


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A valid PNG header declaring width x height pixels, with a tiny compressed body."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    body = b"".join(compressor.compress(row) for _ in range(50)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


RED, BLUE, GREEN = image_bytes((200, 0, 0)), image_bytes((0, 0, 200)), image_bytes((0, 150, 0))


@pytest.fixture
def site():
    with MockServer() as srv:
        srv.route("/robots.txt", body="User-agent: *\nAllow: /\n", content_type="text/plain")
        srv.route("/site/", body=page(
            '<a rel="license" href="https://creativecommons.org/licenses/by-sa/4.0/">CC BY-SA</a>'
            '<img src="/site/img/red.jpg" alt="A red square">'
            '<img src="/site/img/small.jpg"'
            ' srcset="/site/img/small.jpg 100w, /site/img/big.jpg 800w"'
            ' alt="responsive">'
            '<picture><source srcset="/site/img/pic-large.jpg 2x"><img src="/site/img/pic.jpg"'
            ' alt="picture"></picture>'
            '<img src="/site/img/bomb.png" alt="bomb"><img src="/site/img/huge.jpg" alt="huge">'
            '<img src="/site/img/notimage.jpg" alt="html"><img src="/site/img/truncated.jpg">'
            '<img src="/site/img/missing.jpg">'
            '<a href="/site/default.html">d</a> <a href="/site/conflict.html">c</a>'
            '<a href="/site/unknown.html">u</a> <a href="/site/gzbomb.html">g</a>'))
        srv.route("/site/img/red.jpg", body=RED, content_type="image/jpeg")
        srv.route("/site/img/big.jpg", body=BLUE, content_type="image/jpeg")
        srv.route("/site/img/small.jpg", body=image_bytes((1, 2, 3)), content_type="image/jpeg")
        srv.route("/site/img/pic-large.jpg", body=GREEN, content_type="image/jpeg")
        srv.route("/site/img/pic.jpg", body=image_bytes((9, 9, 9)), content_type="image/jpeg")
        srv.route("/site/img/bomb.png", body=png_bomb(), content_type="image/png")
        srv.stream("/site/img/huge.jpg", 3_000_000, content_type="image/jpeg")
        srv.route("/site/img/notimage.jpg", body=page("not an image"), content_type="image/jpeg")
        srv.route("/site/img/truncated.jpg", body=RED[: len(RED) // 2], content_type="image/jpeg")
        srv.route("/site/img/missing.jpg", status=404, body="gone", content_type="text/plain")
        srv.route("/site/default.html", body=page('<img src="/site/img/red-copy.jpg" alt="dup">'))
        srv.route("/site/img/red-copy.jpg", body=RED, content_type="image/jpeg")
        srv.route("/site/conflict.html", body=page(
            '<a rel="license" href="https://creativecommons.org/licenses/by/4.0/">by</a>'
            '<link rel="license" href="https://creativecommons.org/publicdomain/zero/1.0/">'
            '<img src="/site/img/c.jpg">'))
        srv.route("/site/img/c.jpg", body=image_bytes((5, 5, 5)), content_type="image/jpeg")
        srv.route("/site/unknown.html", body=page(
            '<a rel="license" href="/terms.html">terms</a><img src="/site/img/u.jpg">'))
        srv.route("/site/img/u.jpg", body=image_bytes((6, 6, 6)), content_type="image/jpeg")
        srv.gzip_bomb("/site/gzbomb.html", 100 * 1024 * 1024)
        yield srv


@pytest.fixture
def crawled(site: MockServer, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("images")
    write_settings(tmp / "configs", [local_source("site", site.url("/site/"))],
                   limits={"max_bytes": 2_000_000, "max_pixels": 10_000_000})
    result = run_crawl_cli(tmp)
    assert result.returncode == 0, result.stderr
    return result


def test_image_row_carries_its_evidence(site: MockServer, crawled):
    item = crawled.item(site.url("/site/img/red.jpg"))
    assert list(item) == list(ITEM_COLUMNS)
    assert item["sha256"] == hashlib.sha256(RED).hexdigest() == item["row_id"]
    assert item["md5"] == hashlib.md5(RED).hexdigest()
    assert (item["width"], item["height"], item["bytes"]) == (32, 24, len(RED))
    assert item["licence"] == "CC-BY-SA-4.0" and item["licence_source"] == "rel-license"
    assert item["licence_url"] == "https://creativecommons.org/licenses/by-sa/4.0/"
    assert item["caption"] == "A red square" and item["page_url"] == site.url("/site/")
    assert item["source_id"] == "site" and item["consent_id"] == "C-site"
    assert len(item["consent_sha256"]) == 64 and item["age_verification_id"] == "AV-site"
    assert item["run_id"] == crawled.run["run_id"] and item["http_status"] == 200


def test_largest_srcset_and_picture_candidate_is_fetched(site: MockServer, crawled):
    assert crawled.item(site.url("/site/img/big.jpg"))["caption"] == "responsive"
    assert crawled.item(site.url("/site/img/pic-large.jpg"))["caption"] == "picture"
    assert not site.was_requested("/site/img/small.jpg")
    assert not site.was_requested("/site/img/pic.jpg")


def test_source_default_licence_and_duplicates_are_kept_for_the_build(site, crawled):
    copy = crawled.item(site.url("/site/img/red-copy.jpg"))
    assert copy["licence"] == "CC-BY-4.0" and copy["licence_source"] == "source-default"
    assert copy["licence_url"] is None
    assert copy["sha256"] == crawled.item(site.url("/site/img/red.jpg"))["sha256"]


@pytest.mark.parametrize("path, reason, words", [
    ("/site/img/bomb.png", reasons.TOO_LARGE, "max_pixels"),
    ("/site/img/huge.jpg", reasons.TOO_LARGE, "limits.max_bytes=2000000"),
    ("/site/img/notimage.jpg", reasons.NOT_AN_IMAGE, "not a recognised image"),
    ("/site/img/truncated.jpg", reasons.NOT_AN_IMAGE, "decode"),
    ("/site/img/missing.jpg", reasons.GONE, "HTTP 404"),  # an image URL: gone, not failed
    ("/site/img/u.jpg", reasons.NO_LICENCE, "/terms.html"),
    ("/site/gzbomb.html", reasons.TOO_LARGE, "decompression"),
])
def test_bad_bodies_are_excluded_with_a_reason(site, crawled, path, reason, words):
    rejection = crawled.rejection(site.url(path))
    assert rejection["reason"] == reason, rejection["detail"]
    assert words in rejection["detail"]
    assert not [i for i in crawled.items if i["url"] == site.url(path)]


def test_run_json_counts_match_the_files(crawled):
    run = crawled.run
    assert run["counts"]["items"] == len(crawled.items)
    assert run["counts"]["rejections"] == len(crawled.rejections)
    assert sum(run["counts"]["by_reason"].values()) == len(crawled.rejections)
    assert run["finish_reason"] == "finished"
    assert set(run) >= {"run_id", "started_at", "finished_at", "sources", "config_sha256",
                        "versions", "counts", "limits_hit"}
    assert len(run["config_sha256"]) == 64 and "scrapy" in run["versions"]


def test_max_depth_and_page_limit(tmp_path: Path):
    with MockServer() as srv:
        srv.route("/robots.txt", status=404)
        for i in range(6):
            srv.route(f"/site/p{i}.html", body=page(f'<a href="/site/p{i + 1}.html">next</a>'))
        write_settings(tmp_path / "configs", [
            local_source("site", srv.url("/site/"), start_urls=[srv.url("/site/p0.html")],
                         crawl={"max_depth": 2}),
        ])
        result = run_crawl_cli(tmp_path)
        assert result.returncode == 0, result.stderr
        assert srv.was_requested("/site/p2.html") and not srv.was_requested("/site/p3.html")


def test_max_pages_per_source_bounds_the_pages_used(tmp_path: Path):
    with MockServer() as srv:
        srv.route("/robots.txt", status=404)
        srv.route("/site/", body=page("".join(
            f'<a href="/site/p{i}.html">p</a>' for i in range(10))))
        for i in range(10):
            srv.route(f"/site/p{i}.html", body=page(f'<img src="/site/i{i}.jpg">'))
            srv.route(f"/site/i{i}.jpg", body=image_bytes((i, 1, 1)), content_type="image/jpeg")
        write_settings(tmp_path / "configs", [local_source("site", srv.url("/site/"))],
                       limits={"max_pages_per_source": 4})
        result = run_crawl_cli(tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.run["sources"]["site"]["pages"] == 4
        assert len(result.items) <= 3
        assert result.run["limits_hit"] == {"max_pages_per_source": ["site"]}


def test_two_allowed_page_licences_keep_the_more_restrictive(site, crawled):
    # issue 4: evidence that disagrees but is all allowed keeps the more restrictive licence.
    item = crawled.item(site.url("/site/img/c.jpg"))
    assert item["licence"] == "CC-BY-4.0" and item["licence_source"] == "rel-license"
    assert "CC0-1.0" in item["licence_disagreement"]


def test_max_pages_per_source_bounds_the_page_requests_sent(tmp_path: Path):
    """Issue 9 defect 4: on a site that fans out (20 links a page), the page limit stops the
    requests, not only the parsing; queued pages past it are dropped with a recorded reason."""
    fan, limit = 20, 15
    with MockServer() as srv:
        srv.route("/robots.txt", status=404)
        srv.route("/site/", body=page("".join(
            f'<a href="/site/a{i}/">a</a>' for i in range(fan))))
        for i in range(fan):
            srv.route(f"/site/a{i}/", body=page("".join(
                f'<a href="/site/a{i}/b{j}.html">b</a>' for j in range(fan))))
            for j in range(fan):
                srv.route(f"/site/a{i}/b{j}.html", body=page("leaf"))
        write_settings(tmp_path / "configs", [local_source("site", srv.url("/site/"))],
                       limits={"max_pages_per_source": limit})
        result = run_crawl_cli(tmp_path)
        assert result.returncode == 0, result.stderr
        sent = [p for p in srv.paths() if p.startswith("/site/")]
        assert len(sent) == limit, sent  # the server saw exactly the budget, no more
        assert result.run["sources"]["site"]["pages"] == limit
        assert result.run["limits_hit"] == {"max_pages_per_source": ["site"]}
        dropped = [r for r in result.rejections if r["reason"] == reasons.PAGE_LIMIT]
        assert dropped, "queued pages past the limit are recorded"
        assert all(r["stage"] == reasons.STAGE_FETCH and "max_pages_per_source=15" in r["detail"]
                   for r in dropped)
        assert not {srv.url(p) for p in sent} & {r["url"] for r in dropped}
