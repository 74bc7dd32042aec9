"""noai / noimageai in X-Robots-Tag and meta robots (crawler.signals.xrobots)."""

from __future__ import annotations

import time

import pytest

from crawler.signals import DENY, NONE
from crawler.signals.xrobots import (
    HEADER_CHECK,
    META_CHECK,
    from_header_values,
    from_headers,
    from_html_meta,
    parse_directives,
)
from pipeline.runs.reasons import ALL, META_NOAI, X_ROBOTS_NOAI

TOKEN = "ClearanceBot"


def test_noai_header_refuses_pages_and_images() -> None:
    for for_image in (False, True):
        result = from_headers({"X-Robots-Tag": "noai"}, TOKEN, for_image=for_image)
        assert result.check == HEADER_CHECK
        assert result.decision == DENY
        assert result.reason == X_ROBOTS_NOAI and result.reason in ALL
        assert result.found == "noai"


def test_noimageai_refuses_images_only() -> None:
    headers = {"X-Robots-Tag": "noimageai"}
    image = from_headers(headers, TOKEN, for_image=True)
    assert image.decision == DENY and "noimageai" in (image.detail or "")
    page = from_headers(headers, TOKEN)
    assert page.decision == NONE
    assert "images on this page" in (page.detail or "")
    assert page.found == "noimageai"


def test_comma_lists_case_and_spacing() -> None:
    assert from_headers({"x-robots-tag": "noindex ,  NOAI"}, TOKEN).decision == DENY
    assert from_headers({"X-Robots-Tag": "noindex, nofollow"}, TOKEN).decision == NONE


def test_multiple_header_lines_are_all_read() -> None:
    headers = {b"X-Robots-Tag": [b"noindex", b"noimageai"]}
    result = from_headers(headers, TOKEN, for_image=True)
    assert result.decision == DENY
    assert result.found == "noimageai"


def test_token_scoped_directive_applies_to_our_token_only() -> None:
    ours = from_headers({"X-Robots-Tag": "clearancebot: noai"}, TOKEN)
    assert ours.decision == DENY
    assert "scoped to clearancebot" in (ours.detail or "")
    theirs = from_headers({"X-Robots-Tag": "otherbot: noai, noimageai"}, TOKEN, for_image=True)
    assert theirs.decision == NONE
    # "Clearance" is not our product token, however similar.
    assert from_headers({"X-Robots-Tag": "Clearance: noai"}, TOKEN).decision == NONE


def test_scope_lasts_to_the_end_of_its_line_only() -> None:
    lines = ["googlebot: noindex, noai", "noimageai"]
    assert from_header_values(lines, TOKEN).decision == NONE
    assert from_header_values(lines, TOKEN, for_image=True).decision == DENY
    switched = ["otherbot: noindex, ClearanceBot: noai"]
    assert from_header_values(switched, TOKEN).decision == DENY


def test_colon_directives_are_not_scopes() -> None:
    directives = parse_directives("unavailable_after: 25 Jun 2010 15:00:00 PST, noai")
    assert [(d.name, d.scope) for d in directives] == [
        ("unavailable_after", None),
        ("noai", None),
    ]
    assert from_header_values(["max-snippet: 20, noai"], TOKEN).decision == DENY


def test_no_header_is_none() -> None:
    assert from_headers({}, TOKEN).decision == NONE
    assert from_headers(None, TOKEN, for_image=True).decision == NONE
    assert from_headers({"X-Robots-Tag": ""}, TOKEN).decision == NONE


def test_two_megabyte_header_completes_quickly() -> None:
    value = "noindex, " * (2 * 1024 * 1024 // 9)
    started = time.perf_counter()
    result = from_header_values([value + "noai"], TOKEN)
    assert time.perf_counter() - started < 1.0
    # A field far beyond any server's header limit is not read, and not read as permission.
    assert result.decision == DENY and result.error
    assert result.reason == X_ROBOTS_NOAI
    assert len(result.found or "") < 1000


def test_long_meta_content_is_refused_unread() -> None:
    html = '<meta name="robots" content="' + "index," * 10_000 + '">'
    result = from_html_meta(html, TOKEN)
    assert result.decision == DENY and result.error and result.reason == META_NOAI


# --------------------------------------------------------------------------- meta


@pytest.mark.parametrize(
    "html",
    [
        '<meta name="robots" content="noai, noimageai">',
        "<META NAME=ROBOTS CONTENT=NOAI>",
        '<meta name="ClearanceBot" content="noai">',
        '<meta name="clearancebot" content="noindex,noai">',
    ],
)
def test_meta_noai_refuses(html: str) -> None:
    result = from_html_meta(f"<html><head>{html}</head><body></body></html>", TOKEN)
    assert result.check == META_CHECK
    assert result.decision == DENY
    assert result.reason == META_NOAI and result.reason in ALL
    assert result.found and "<meta" in result.found


def test_meta_noimageai_applies_to_images_on_the_page() -> None:
    html = b'<html><head><meta name="robots" content="noimageai"></head></html>'
    assert from_html_meta(html, TOKEN).decision == NONE
    image = from_html_meta(html, TOKEN, for_image=True)
    assert image.decision == DENY and image.reason == META_NOAI


def test_meta_for_other_bots_is_ignored() -> None:
    html = '<meta name="CCBot" content="noai"><meta name="googlebot" content="noimageai">'
    assert from_html_meta(html, TOKEN, for_image=True).decision == NONE


def test_meta_without_directives_for_us() -> None:
    assert from_html_meta(b"<html><head><title>x</title></head></html>", TOKEN).decision == NONE
    assert from_html_meta(b"", TOKEN).decision == NONE
    indexed = from_html_meta('<meta name="robots" content="index, follow">', TOKEN)
    assert indexed.decision == NONE and indexed.found


def test_meta_in_a_two_megabyte_page_is_found_quickly() -> None:
    html = '<head><meta name="robots" content="noai"></head><body>' + "<p>x</p>" * 250_000
    started = time.perf_counter()
    assert from_html_meta(html, TOKEN).decision == DENY
    assert time.perf_counter() - started < 2.0
