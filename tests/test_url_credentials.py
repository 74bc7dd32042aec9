"""URL credentials never written: the redaction functions (pipeline/safety/urls.py) and each
place that applies them, the incident records and the crawl's log records."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from helpers_config import settings_doc, source_doc, write_config

from crawler.redaction import RedactImageUrls
from crawler.screening import CrawlScreen
from pipeline.runs.credentials import (
    redact_credentials,
    redact_userinfo,
    strip_credentials,
)
from pipeline.safety.hashlists import Screener
from pipeline.safety.incidents import URL_LIST_MATCH, Incident, read_incidents, write_incident
from pipeline.safety.urls import normalise_url

SECRET = "s3cret"


@pytest.mark.parametrize(("url", "expected"), [
    ("http://user:s3cret@host/p", "http://***@host/p"),
    ("https://user:s3cret@host:8443/p?q=1#f", "https://***@host:8443/p?q=1#f"),
    # a token in the user name is a credential too: the whole user info goes
    ("https://s3cret@host/repo.git", "https://***@host/repo.git"),
    ("http://user:@host/", "http://***@host/"),
    # percent-encoded password, and a raw "@" in it (urlsplit takes the last "@")
    ("http://user:s3cret%40x%3Ay%2F@host/", "http://***@host/"),
    ("http://user:s3cret@x@host/p", "http://***@host/p"),
    # urlsplit reads a backslash into the password, and drops tabs and newlines
    ("http://user:s3cret\\@host/", "http://***@host/"),
    ("http://user:s3\tcret\n@host/", "http://***@host/"),
    ("//user:s3cret@host/p", "//***@host/p"),
    ("HTTP://USER:S3CRET@HOST/", "HTTP://***@HOST/"),
])
def test_user_info_is_replaced(url: str, expected: str) -> None:
    assert redact_userinfo(url) == expected
    assert strip_credentials(url) == expected or "\t" in url
    assert normalise_url(redact_userinfo(url)) == normalise_url(url)  # still the same resource


@pytest.mark.parametrize("url", [
    "http://host/p",
    "http://host/a@b/c",  # "@" in the path
    "http://host/p?mail=a@b.example&next=x@y",  # in the query
    "http://host/p#frag@x",  # in the fragment
    "http://host?q=a@b",
    "http://@host/",  # an empty user info carries nothing
    "mailto:someone@example.org",
    "http://***@host/",  # already redacted
])
def test_urls_without_user_info_are_unchanged(url: str) -> None:
    assert redact_userinfo(url) == url
    assert strip_credentials(url) == url


def test_only_the_urls_own_user_info_is_touched_in_a_url_field() -> None:
    url = "https://archive.example/web/2020/http://user:s3cret@host/p"
    assert redact_userinfo(url) == url  # the item's URL still names what it served
    assert strip_credentials(url) == "https://archive.example/web/2020/http://***@host/p"


def test_every_url_inside_free_text_is_redacted() -> None:
    text = ("not inside the scope of any eligible source (redirected from "
            "http://a.example/hop?next=http://u:s3cret@b.example/x); see //v:s3cret@c.example, "
            "'https://w:s3cret@d.example/' and <http://s3cret@e.example:81>; "
            "mail bob@example.org; http://f.example/p@q")
    out = strip_credentials(text)
    assert SECRET not in out
    assert out == ("not inside the scope of any eligible source (redirected from "
                   "http://a.example/hop?next=http://***@b.example/x); see //***@c.example, "
                   "'https://***@d.example/' and <http://***@e.example:81>; "
                   "mail bob@example.org; http://f.example/p@q")
    assert strip_credentials("redirect loop: http://u:s3cret@h/a -> http://u:s3cret@h/b") == (
        "redirect loop: http://***@h/a -> http://***@h/b")


def test_redaction_is_linear_on_hostile_text() -> None:
    import time

    for text in ("a" * 200_000 + "@", "//" * 100_000 + "@", "http:" * 50_000 + "@"):
        start = time.perf_counter()
        strip_credentials(text)
        redact_userinfo(text)
        assert time.perf_counter() - start < 0.5


def test_a_whole_row_is_redacted_and_the_original_left_alone() -> None:
    row = {
        "url": "http://u:s3cret@h/x.jpg",
        "page_url": "http://u:s3cret@h/",
        "detail": "redirected from http://u:s3cret@h/hop",
        "signals": [{"check": "tdmrep", "detail": "http://u:s3cret@h/.well-known/tdmrep.json"}],
        "licence_evidence": [{"url": "http://u:s3cret@cc.example/by/4.0/", "raw": None}],
        "bytes": 3,
        "blocklists": None,
    }
    before = json.dumps(row)
    out = redact_credentials(row)
    assert SECRET not in json.dumps(out)
    assert out["url"] == "http://***@h/x.jpg" and out["bytes"] == 3 and out["blocklists"] is None
    assert out["licence_evidence"][0]["url"] == "http://***@cc.example/by/4.0/"
    assert json.dumps(row) == before


# --------------------------------------------------------------------------- incidents


def test_an_incident_record_keeps_no_password(tmp_path: Path) -> None:
    path = write_incident(tmp_path, Incident(
        URL_LIST_MATCH, "s1", "crawl", url=f"http://user:{SECRET}@h/listed.jpg",
        page_url=f"http://{SECRET}@h/page", redirect_chain=[f"http://u:{SECRET}@h/hop"],
        source_name=f"see https://u:{SECRET}@h/"))
    assert SECRET.encode() not in path.read_bytes()
    (record,) = read_incidents(tmp_path)
    assert record["content"]["url"] == "http://***@h/listed.jpg"
    assert record["content"]["page_url"] == "http://***@h/page"
    assert record["content"]["redirect_chain"] == ["http://***@h/hop"]
    assert record["source"]["name"] == "see https://***@h/"


# --------------------------------------------------------------------------- log records


@pytest.fixture
def redact(tmp_path: Path) -> RedactImageUrls:
    config = write_config(tmp_path / "configs", [source_doc("s1")], settings_doc())
    return RedactImageUrls(CrawlScreen(Screener.load(config), config, tmp_path / "data", "r"))


def test_log_records_never_carry_a_password(redact: RedactImageUrls) -> None:
    factory = redact.factory(logging.LogRecord)

    class FakeRequest:
        url = f"http://user:{SECRET}@other.example/landing.html"
        meta: dict[str, str] = {}

        def __str__(self) -> str:
            return f"<GET {self.url}>"

    record = factory("scrapy.downloadermiddlewares.redirect", logging.DEBUG, __file__, 1,
                     "Redirecting (302) to %(redirected)s from %(request)s",
                     ({"redirected": FakeRequest(), "request": "<GET http://h/hop>"},), None)
    assert record.getMessage() == (
        "Redirecting (302) to <GET http://***@other.example/landing.html> from "
        "<GET http://h/hop>")
    record = factory("crawler.context", logging.DEBUG, __file__, 1, "rejected %s: %s (%s)",
                     (f"//u:{SECRET}@h/x", "out_of_scope", "URL carries credentials"), None)
    assert SECRET not in record.getMessage()


def test_a_traceback_never_carries_a_password(redact: RedactImageUrls) -> None:
    try:
        raise ValueError(f"could not fetch http://u:{SECRET}@h/x")
    except ValueError:
        import sys

        exc_info = sys.exc_info()
    record = redact.factory(logging.LogRecord)(
        "scrapy.core.scraper", logging.ERROR, __file__, 1, "Error downloading %s",
        ("<GET http://h/page>",), exc_info)
    text = logging.Formatter().format(record)
    assert SECRET not in text and "http://***@h/x" in text and "ValueError" in text
