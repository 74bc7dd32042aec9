"""Incremental crawls (issue 10 part 7): conditional requests, 304 re-use, gone, through the CLI.

A real local server (port 0) serves images with ``ETag`` and/or ``Last-Modified``, answers
``304`` to a matching ``If-None-Match`` / ``If-Modified-Since`` and counts the image body bytes
it sends. Each scenario crawls the same site more than once with ``clearance crawl``, changing
the site (or the hash lists) in between.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from crawlkit import CrawlResult, image_bytes, local_source, page, run_crawl_cli, write_settings
from mockserver import IncomingRequest, MockServer, Response

from pipeline.registry.state import State

LAST_MODIFIED = "Tue, 01 Dec 2026 10:00:00 GMT"


@dataclass
class Image:
    """One image resource: validators, an optional status, headers sent with every answer."""

    body: bytes
    etag: str | None = None
    last_modified: str | None = None
    status: int | None = None  # 404, 410: gone
    headers: dict[str, str] = field(default_factory=dict)


class Site:
    """Images behind a conditional-request handler that counts the body bytes it sends."""

    def __init__(self, srv: MockServer, prefix: str = "/site/"):
        self.srv = srv
        self.prefix = prefix
        self.images: dict[str, Image] = {}
        self.sent: dict[str, int] = {}  # path -> image body bytes sent
        self.answers: list[tuple[str, int, dict[str, str]]] = []  # path, status, request hdrs
        self._lock = threading.Lock()
        srv.route("/robots.txt", status=404)

    def image(self, name: str, **kw: Any) -> str:
        path = self.prefix + name
        self.images[path] = Image(**kw)
        self.srv.route(path, handler=self._answer)
        return self.srv.url(path)

    def page(self, *names: str) -> str:
        return self.srv.route(self.prefix, body=page("".join(
            f'<img src="{self.prefix}{n}" alt="{n}">' for n in names)))

    def _answer(self, request: IncomingRequest) -> Response:
        image = self.images[request.path]
        with self._lock:
            self.sent.setdefault(request.path, 0)
        if image.status is not None:
            status = image.status
            answer = Response(status, b"gone", dict(image.headers), "text/plain")
        else:
            validators = {k: v for k, v in (("ETag", image.etag),
                                            ("Last-Modified", image.last_modified)) if v}
            inm = request.headers.get("if-none-match")
            ims = request.headers.get("if-modified-since")
            # RFC 9110 13.2.2: If-None-Match first; If-Modified-Since only without it
            fresh = (inm is not None and image.etag is not None and image.etag in
                     [t.strip() for t in inm.split(",")]) or (
                inm is None and ims is not None and image.last_modified == ims)
            status = 304 if fresh else 200
            headers = {**validators, **image.headers}
            if fresh:
                answer = Response(304, b"", headers, None)
            else:
                answer = Response(200, image.body, headers, "image/png")
                with self._lock:
                    self.sent[request.path] += len(image.body)
        with self._lock:
            self.answers.append((request.path, status, dict(request.headers)))
        return answer

    def reset_counts(self) -> None:
        with self._lock:
            self.sent = dict.fromkeys(self.sent, 0)
            self.answers.clear()

    def statuses(self, name: str, answers: list[Any] | None = None) -> list[int]:
        return [status for path, status, _ in (self.answers if answers is None else answers)
                if path == self.prefix + name]

    def request_headers(self, name: str, answers: list[Any] | None = None
                        ) -> list[dict[str, str]]:
        return [headers for path, _, headers in (self.answers if answers is None else answers)
                if path == self.prefix + name]


def png(color: tuple[int, int, int]) -> bytes:
    return image_bytes(color, fmt="PNG")


def crawl(tmp: Path) -> CrawlResult:
    result = run_crawl_cli(tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def validators(tmp: Path) -> dict[str, Any]:
    return {v.url: v for v in State.in_data_dir(tmp / "data").validators()}


def at(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


# ------------------------------------------------------------------ unchanged, changed, gone


@pytest.fixture(scope="module")
def recrawled(tmp_path_factory):
    """Crawl 1 fetches everything; the site changes; crawl 2 revalidates; the site's headers
    change on its 304s; crawl 3."""
    tmp = tmp_path_factory.mktemp("incremental")
    with MockServer() as srv:
        site = Site(srv)
        urls = {
            "etag": site.image("etag.png", body=png((10, 20, 30)), etag='"e1"'),
            "lm": site.image("lm.png", body=png((40, 50, 60)), last_modified=LAST_MODIFIED),
            "both": site.image("both.png", body=png((70, 80, 90)), etag='W/"b1"',
                               last_modified=LAST_MODIFIED),
            "changed": site.image("changed.png", body=png((1, 2, 3)), etag='"c1"'),
            "plain": site.image("plain.png", body=png((4, 5, 6))),  # no validators
            "gone404": site.image("gone404.png", body=png((7, 8, 9)), etag='"g4"'),
            "gone410": site.image("gone410.png", body=png((9, 8, 7)), etag='"g10"'),
            "noai": site.image("noai.png", body=png((11, 12, 13)), etag='"n1"'),
            "tdm": site.image("tdm.png", body=png((14, 15, 16)), etag='"t1"'),
            "target": site.image("target.png", body=png((17, 18, 19)), etag='"r1"'),
        }
        names = ["etag.png", "lm.png", "both.png", "changed.png", "plain.png", "gone404.png",
                 "gone410.png", "noai.png", "tdm.png", "moved.png"]
        hop = srv.redirect("/site/moved.png", "/site/target.png", status=301)
        site.page(*names)
        write_settings(tmp / "configs", [local_source("inc", srv.url("/site/"))])
        first = crawl(tmp)
        state_after_first = validators(tmp)
        sent_first = dict(site.sent)

        site.images["/site/changed.png"] = Image(png((200, 100, 0)), etag='"c2"')
        site.images["/site/gone404.png"].status = 404
        site.images["/site/gone410.png"].status = 410
        site.reset_counts()
        second = crawl(tmp)
        sent_second, answers_second = dict(site.sent), list(site.answers)
        state_after_second = validators(tmp)

        site.images["/site/noai.png"].headers["X-Robots-Tag"] = "noai"
        site.images["/site/tdm.png"].headers["tdm-reservation"] = "1"
        site.images["/site/target.png"].status = 410
        srv.route("/robots.txt", body="User-agent: *\nDisallow: /site/lm.png\n",
                  content_type="text/plain")
        srv.route("/.well-known/tdmrep.json", body=json.dumps(
            [{"location": "/site/both.png", "tdm-reservation": 1}]),
            content_type="application/json")
        site.reset_counts()
        third = crawl(tmp)
        yield {
            "tmp": tmp, "site": site, "urls": urls, "hop": hop,
            "first": first, "second": second, "third": third,
            "sent_first": sent_first, "sent_second": sent_second, "sent_third": dict(site.sent),
            "answers_second": answers_second, "answers_third": list(site.answers),
            "state1": state_after_first, "state2": state_after_second, "state3": validators(tmp),
        }


def test_a_second_crawl_of_an_unchanged_site_downloads_no_image_body(recrawled):
    sent = recrawled["sent_second"]
    assert recrawled["sent_first"]["/site/etag.png"] > 0
    for name in ("etag", "lm", "both", "noai", "tdm", "target"):
        assert sent[f"/site/{name}.png"] == 0, name
    # without validators, or changed: the body again
    assert sent["/site/plain.png"] == len(png((4, 5, 6)))
    assert sent["/site/changed.png"] == len(png((200, 100, 0)))


def test_conditional_requests_carry_the_validators_each_url_was_served_with(recrawled):
    site: Site = recrawled["site"]
    answers = recrawled["answers_second"]
    (etag,) = site.request_headers("etag.png", answers)
    assert etag["if-none-match"] == '"e1"' and "if-modified-since" not in etag
    (lm,) = site.request_headers("lm.png", answers)
    assert lm["if-modified-since"] == LAST_MODIFIED and "if-none-match" not in lm
    (both,) = site.request_headers("both.png", answers)
    assert both["if-none-match"] == 'W/"b1"' and both["if-modified-since"] == LAST_MODIFIED
    (plain,) = site.request_headers("plain.png", answers)
    assert "if-none-match" not in plain and "if-modified-since" not in plain
    assert site.statuses("etag.png", answers) == site.statuses("lm.png", answers) == [304]
    # a redirect: the hop is asked for plainly, its target with the target's validators
    hop = recrawled["site"].srv
    moved = [r for r in hop.requests if r.path == "/site/moved.png"][-2]  # in crawl 2
    assert "if-none-match" not in moved.headers
    (target,) = site.request_headers("target.png", answers)
    assert target["if-none-match"] == '"r1"'


def test_a_304_reuses_the_earlier_row_with_a_new_fetched_at_and_run(recrawled):
    first, second, urls = recrawled["first"], recrawled["second"], recrawled["urls"]
    for name in ("etag", "lm", "both", "target"):
        before, after = first.item(urls[name]), second.item(urls[name])
        for column in ("sha256", "md5", "sha1", "pdq", "pdq_quality", "width", "height",
                       "bytes", "content_type", "licence", "licence_source", "creator",
                       "licence_evidence", "row_id", "page_url"):
            assert after[column] == before[column], (name, column)
        assert at(after["fetched_at"]) > at(before["fetched_at"])
        assert after["run_id"] == second.run["run_id"] != before["run_id"]
        assert after["http_status"] == 304 and before["http_status"] == 200
        assert after["caption"] == before["caption"] == f"{name}.png".replace(
            "target", "moved")
        checks = {s["check"] for s in after["signals"]}
        assert {"x_robots_tag", "tdmrep.header", "robots"} <= checks  # evaluated again
    assert second.run["stats"].get("conditional/not_modified") == 6


def test_changed_content_gives_a_new_row(recrawled):
    first, second, urls = recrawled["first"], recrawled["second"], recrawled["urls"]
    before, after = first.item(urls["changed"]), second.item(urls["changed"])
    assert after["sha256"] == hashlib.sha256(png((200, 100, 0))).hexdigest() != before["sha256"]
    assert after["http_status"] == 200
    assert recrawled["state2"][urls["changed"]].row_id == after["row_id"]
    assert recrawled["state2"][urls["changed"]].etag == '"c2"'


@pytest.mark.parametrize("name,status", [("gone404", 404), ("gone410", 410)])
def test_404_and_410_are_gone_under_the_url_the_earlier_row_carries(recrawled, name, status):
    first, second, urls = recrawled["first"], recrawled["second"], recrawled["urls"]
    url = urls[name]
    assert first.item(url)["url"] == url
    rejection = second.rejection(url)
    assert (rejection["reason"], rejection["stage"]) == ("gone", "fetch")
    assert rejection["detail"] == f"HTTP {status}" and rejection["source_id"] == "inc"
    assert at(rejection["at"]) > at(first.item(url)["fetched_at"])
    assert second.reasons_for(url) == ["gone"]  # not fetch_failed
    assert url in recrawled["state1"] and url not in recrawled["state2"]


def test_a_redirect_target_gone_is_gone_for_the_target_and_the_hop(recrawled):
    third, urls, hop = recrawled["third"], recrawled["urls"], recrawled["hop"]
    assert recrawled["first"].item(urls["target"])["url"] == urls["target"]
    assert third.reasons_for(urls["target"]) == ["gone"]
    assert third.reasons_for(hop) == ["gone"]
    assert "moved.png -> " in third.rejection(hop)["detail"]


@pytest.mark.parametrize("name,reason", [("noai", "x_robots_noai"), ("tdm", "tdm_reserved")])
def test_a_304_carrying_a_new_opt_out_header_refuses(recrawled, name, reason):
    third, urls = recrawled["third"], recrawled["urls"]
    url = urls[name]
    assert recrawled["sent_third"][f"/site/{name}.png"] == 0  # refused on the 304 itself
    assert not [i for i in third.items if i["url"] == url]
    assert third.reasons_for(url) == [reason]
    assert url in recrawled["state2"] and url not in recrawled["state3"]  # rejected: forgotten


@pytest.mark.parametrize("name,reason", [("lm", "robots_disallowed"),
                                         ("both", "tdm_reserved")])
def test_robots_txt_and_tdmrep_json_still_gate_an_image_fetched_before(recrawled, name,
                                                                         reason):
    third, urls = recrawled["third"], recrawled["urls"]
    site: Site = recrawled["site"]
    assert site.statuses(f"{name}.png", recrawled["answers_third"]) == []  # never asked for
    assert third.reasons_for(urls[name]) == [reason]
    assert urls[name] not in recrawled["state3"]


def test_validators_are_recorded_only_for_kept_rows_with_validators(recrawled):
    state1, urls, first = recrawled["state1"], recrawled["urls"], recrawled["first"]
    assert urls["plain"] not in state1 and recrawled["hop"] not in state1
    assert set(state1) == {u for k, u in urls.items() if k != "plain"}
    for url, v in state1.items():
        assert v.run_id == first.run["run_id"] and v.row_id == first.item(url)["row_id"]
    assert state1[urls["lm"]].etag is None and state1[urls["lm"]].last_modified == LAST_MODIFIED
    # a 304 moves the validators to the new run's row
    assert recrawled["state2"][urls["etag"]].run_id == recrawled["second"].run["run_id"]


# ------------------------------------------------------------------ lists and deleted runs


def write_sha256_list(config_dir: Path, hashes: list[str]) -> str:
    path = config_dir / "blocklists" / "sha256.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# test list\n" + "".join(f"{h}\n" for h in hashes))
    path.chmod(0o600)
    return "blocklists/sha256.txt"


def test_a_hash_list_updated_between_crawls_withholds_the_304_reused_item(tmp_path):
    listed, kept = png((120, 0, 0)), png((0, 120, 0))
    with MockServer() as srv:
        site = Site(srv)
        listed_url = site.image("listed.png", body=listed, etag='"l1"')
        kept_url = site.image("kept.png", body=kept, etag='"k1"')
        site.page("listed.png", "kept.png")
        config = tmp_path / "configs"
        blocklists = [{"id": "test-sha256", "kind": "sha256",
                       "path": write_sha256_list(config, ["00" * 32])}]
        write_settings(config, [local_source("inc", srv.url("/site/"))], blocklists=blocklists)
        first = crawl(tmp_path)
        assert {i["url"] for i in first.items} == {listed_url, kept_url}
        assert listed_url in validators(tmp_path)

        write_sha256_list(config, ["00" * 32, hashlib.sha256(listed).hexdigest()])
        site.reset_counts()
        second = crawl(tmp_path)
        assert site.statuses("listed.png") == [304] and site.sent["/site/listed.png"] == 0
    # handled exactly as a fresh hit: no row, no rejection, an incident, the source suspended
    assert listed_url not in {i["url"] for i in second.items}
    assert listed_url not in {r["url"] for r in second.rejections}
    assert second.run["counts"]["withheld"] == 1 and second.run["suspended"] == ["inc"]
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "data" / "incidents").glob(
        "*.json")]
    assert record["content"]["url"] == listed_url
    assert record["hashes"]["sha256"] == hashlib.sha256(listed).hexdigest()
    assert record["content"]["http_status"] == 304 and record["content"]["bytes"] == len(listed)
    # withheld: no validators left in state.sqlite, not even in its files' free pages
    assert listed_url not in validators(tmp_path)
    for path in (tmp_path / "data").glob("state.sqlite*"):
        assert listed_url.encode() not in path.read_bytes(), path.name
    db = sqlite3.connect(tmp_path / "data" / "state.sqlite")
    assert db.execute("SELECT count(*) FROM validators WHERE url = ?",
                      (listed_url,)).fetchone() == (0,)


def test_an_earlier_row_whose_run_was_deleted_is_fetched_unconditionally(tmp_path):
    body = png((33, 66, 99))
    with MockServer() as srv:
        site = Site(srv)
        url = site.image("a.png", body=body, etag='"a1"')
        site.page("a.png")
        write_settings(tmp_path / "configs", [local_source("inc", srv.url("/site/"))])
        first = crawl(tmp_path)
        assert url in validators(tmp_path)
        shutil.rmtree(tmp_path / "data" / "runs" / first.run["run_id"])
        site.reset_counts()
        second = crawl(tmp_path)
        (headers,) = site.request_headers("a.png")
    assert "if-none-match" not in headers and site.sent["/site/a.png"] == len(body)
    assert second.item(url)["http_status"] == 200
    assert validators(tmp_path)[url].run_id == second.run["run_id"]


def test_a_change_to_the_pages_rights_markup_asks_for_the_body_again(tmp_path):
    body = png((90, 60, 30))
    with MockServer() as srv:
        site = Site(srv)
        url = site.image("a.png", body=body, etag='"a1"')
        site.page("a.png")
        write_settings(tmp_path / "configs", [local_source("inc", srv.url("/site/"))])
        first = crawl(tmp_path)
        assert first.item(url)["licence"] == "CC-BY-4.0"
        srv.route("/site/", body=page(
            '<img src="/site/a.png" alt="a">'
            '<a rel="license" href="https://creativecommons.org/publicdomain/zero/1.0/">CC0</a>'))
        site.reset_counts()
        second = crawl(tmp_path)
        (headers,) = site.request_headers("a.png")
    assert "if-none-match" not in headers and site.sent["/site/a.png"] == len(body)
    assert second.item(url)["licence"] == "CC0-1.0"


# ------------------------------------------------------------------ the middleware alone


@pytest.fixture
def unit(tmp_path):
    """A built middleware over a committed run holding one row with validators."""
    from helpers_config import source_doc, write_config
    from helpers_runs import make_item, write_run
    from scrapy import Spider
    from scrapy.utils.test import get_crawler

    from crawler.conditional import Validators, reuse_key
    from crawler.context import CrawlContext, Registry
    from crawler.downloadermiddlewares.conditional import ConditionalRequestMiddleware
    from pipeline.registry.state import Validator
    from pipeline.runs.writer import RunWriter

    config = write_config(tmp_path / "configs", [source_doc("s1")])
    source = config.sources["s1"]
    url, page_url = "https://s1.example/gallery/a.jpg", "https://s1.example/gallery/"
    run_id = "20260101T000000Z-aaaaaa"
    item = make_item(source, url)
    write_run(tmp_path / "data", run_id, [item])
    found = {"caption": "a", "markup": None, "scoped": [], "requested": url,
             "page_signals": {}}
    State.in_data_dir(tmp_path / "data").record_validators([Validator(
        "s1", url, '"e1"', LAST_MODIFIED, run_id, item["row_id"], 0, 0,
        reuse_key(config, source, found, url, page_url))])
    writer = RunWriter(tmp_path / "data")
    context = CrawlContext(config=config, registry=Registry([source]), writer=writer,
                           validators=Validators(config, tmp_path / "data"))
    crawler = get_crawler(Spider)
    middleware = ConditionalRequestMiddleware(crawler, context)
    yield {"mw": middleware, "crawler": crawler, "url": url, "page_url": page_url,
           "found": found, "run_id": run_id, "item": item, "context": context,
           "tmp": tmp_path}
    writer.discard()


def image_request(unit: dict[str, Any], url: str | None = None, **found: Any):
    from scrapy import Request

    from crawler.meta import META_IMAGE, META_KIND, META_PAGE, META_SOURCE

    return Request(url or unit["url"], meta={
        META_SOURCE: "s1", META_KIND: "image", META_PAGE: unit["page_url"],
        META_IMAGE: {**unit["found"], **found}})


def test_unit_a_request_for_a_kept_image_carries_its_validators(unit):
    from crawler.meta import META_EARLIER

    request = image_request(unit)
    unit["mw"].process_request(request)
    assert request.headers[b"If-None-Match"] == b'"e1"'
    assert request.headers[b"If-Modified-Since"] == LAST_MODIFIED.encode()
    assert request.meta["handle_httpstatus_list"] == [304]
    earlier = request.meta[META_EARLIER]
    assert earlier.row["sha256"] == unit["item"]["sha256"]
    assert earlier.row["run_id"] == unit["run_id"]
    assert unit["crawler"].stats.get_value("conditional/sent") == 1


def test_unit_a_redirect_hop_loses_the_previous_urls_validators(unit):
    from crawler.meta import META_EARLIER

    request = image_request(unit)
    unit["mw"].process_request(request)
    hop = request.replace(url="https://s1.example/gallery/b.jpg")  # as RedirectMiddleware
    unit["mw"].process_request(hop)
    assert b"If-None-Match" not in hop.headers and b"If-Modified-Since" not in hop.headers
    assert META_EARLIER not in hop.meta and "handle_httpstatus_list" not in hop.meta


def test_unit_a_200_is_a_new_body_and_a_304_keeps_the_earlier_row(unit):
    from scrapy.http import Response

    from crawler.meta import META_EARLIER

    modified = image_request(unit)
    unit["mw"].process_request(modified)
    unit["mw"].process_response(modified, Response(unit["url"], status=200, request=modified))
    assert META_EARLIER not in modified.meta
    same = image_request(unit)
    unit["mw"].process_request(same)
    unit["mw"].process_response(same, Response(unit["url"], status=304, request=same))
    assert same.meta[META_EARLIER].row["url"] == unit["url"]
    stats = unit["crawler"].stats
    assert stats.get_value("conditional/modified") == stats.get_value(
        "conditional/not_modified") == 1


def test_unit_nothing_conditional_when_the_decision_could_differ_or_the_row_is_gone(unit):
    from crawler.meta import META_KIND

    other_page = image_request(unit, caption="b")  # the caption is not part of the key
    unit["mw"].process_request(other_page)
    assert b"If-None-Match" in other_page.headers
    scoped = image_request(unit, scoped=["new rights evidence"])  # what the rights stage reads
    unit["mw"].process_request(scoped)
    assert b"If-None-Match" not in scoped.headers
    page = image_request(unit)
    page.meta[META_KIND] = "page"
    unit["mw"].process_request(page)
    assert b"If-None-Match" not in page.headers
    shutil.rmtree(unit["tmp"] / "data" / "runs" / unit["run_id"])
    unit["context"].validators.close()  # forget the cached file, as a new crawl would
    deleted = image_request(unit)
    unit["mw"].process_request(deleted)
    assert b"If-None-Match" not in deleted.headers


def test_unit_off_without_a_validators_store(unit):
    from scrapy.exceptions import NotConfigured

    from crawler.downloadermiddlewares.conditional import ConditionalRequestMiddleware

    unit["context"].validators = None
    with pytest.raises(NotConfigured):
        ConditionalRequestMiddleware(unit["crawler"], unit["context"])


def test_clearance_screen_forgets_the_validators_of_what_it_withdraws(tmp_path):
    import subprocess
    import sys

    listed, kept = png((120, 0, 0)), png((0, 120, 0))
    with MockServer() as srv:
        site = Site(srv)
        listed_url = site.image("listed.png", body=listed, etag='"l1"')
        kept_url = site.image("kept.png", body=kept, etag='"k1"')
        site.page("listed.png", "kept.png")
        config = tmp_path / "configs"
        blocklists = [{"id": "test-sha256", "kind": "sha256",
                       "path": write_sha256_list(config, ["00" * 32])}]
        write_settings(config, [local_source("inc", srv.url("/site/"))], blocklists=blocklists)
        first = crawl(tmp_path)
    assert {listed_url, kept_url} <= set(validators(tmp_path))
    write_sha256_list(config, ["00" * 32, hashlib.sha256(listed).hexdigest()])
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "--config", str(config), "--data",
         str(tmp_path / "data"), "screen", "--runs", first.run["run_id"], "--json"],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert set(validators(tmp_path)) == {kept_url}
