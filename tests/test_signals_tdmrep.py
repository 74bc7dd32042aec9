"""W3C TDMRep: tdmrep.json, headers, HTML meta and their precedence (crawler.signals.tdmrep)."""

from __future__ import annotations

import email
import json
import time
from pathlib import Path

import pytest

from crawler.signals import ALLOW, DENY, NONE, SignalResult
from crawler.signals.tdmrep import (
    CHECK,
    MAX_FILE_BYTES,
    TdmRepError,
    TdmRepFile,
    decide,
    file_absent,
    file_unreadable,
    from_headers,
    from_html_meta,
)
from pipeline.runs.reasons import ALL, TDM_RESERVED

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "tdmrep"


def fixture(name: str) -> bytes:
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (../shared/fixtures not checked out)")
    return path.read_bytes()


def http_headers(name: str) -> dict[str, str]:
    """The header fields of one of the spec's example HTTP responses."""
    _status, rest = fixture(name).decode("ascii").split("\n", 1)
    return dict(email.message_from_string(rest).items())


# --------------------------------------------------------------------------- tdmrep.json


def test_spec_example_1_reserves_everything() -> None:
    rules = TdmRepFile.parse(fixture("w3c_spec-ex01_tdmrep.json_optout-all.json"))
    result = rules.match("/any/path/image.jpg")
    assert result.check == CHECK
    assert result.decision == DENY
    assert result.reason == TDM_RESERVED and result.reason in ALL
    assert json.loads(result.found or "") == {"location": "/", "tdm-reservation": 1}
    assert not result.error


def test_spec_example_2_three_groups() -> None:
    rules = TdmRepFile.parse(fixture("w3c_spec-ex02_tdmrep.json_three-groups.json"))
    pdf = rules.match("/directory-a/report.pdf")
    assert pdf.decision == DENY and "tdm-policy" not in (pdf.detail or "")
    html = rules.match("https://provider.com/directory-b/html/page.html")
    assert html.decision == DENY
    assert "https://provider.com/policies/policy.json" in (html.detail or "")
    assert "https://provider.com/policies/policy.json" in (html.found or "")
    jpg = rules.match("/directory-b/images/photo.jpg")
    assert jpg.decision == ALLOW
    assert rules.match("/directory-b/images/photo.png").decision == NONE
    assert rules.match("/directory-c/x").decision == NONE
    assert rules.match("/directory-a").decision == NONE  # "/directory-a/" is a prefix pattern


def test_first_matching_rule_wins_even_if_a_later_one_is_longer() -> None:
    body = json.dumps(
        [
            {"location": "/images/", "tdm-reservation": 0},
            {"location": "/images/private/", "tdm-reservation": 1},
        ]
    )
    rules = TdmRepFile.parse(body)
    result = rules.match("/images/private/a.jpg")
    assert result.decision == ALLOW
    assert "rule 0" in (result.detail or "")


def test_location_wildcards_end_anchor_case_and_percent_encoding() -> None:
    rules = TdmRepFile.parse(
        json.dumps(
            [
                {"location": "/exact/path$", "tdm-reservation": 1},
                {"location": "/*/raw/*.tif", "tdm-reservation": 1},
                {"location": "/~user/", "tdm-reservation": 1},
            ]
        )
    )
    assert rules.match("/exact/path").decision == DENY
    assert rules.match("/exact/path/more").decision == NONE
    assert rules.match("/a/raw/b/c.tif").decision == DENY
    assert rules.match("/A/RAW/c.TIF").decision == NONE  # matching is case sensitive
    assert rules.match("/%7Euser/photo.jpg").decision == DENY  # unreserved escapes decoded


def test_itcop_real_site_reserves_with_a_policy() -> None:
    result = TdmRepFile.parse(fixture("itcop_tdmrep.json")).match("/licence/")
    assert result.decision == DENY
    assert "https://itcop.org/licence/0pn-mrt-1.0.json" in (result.detail or "")


def test_byron_non_conforming_object_is_an_error_and_the_host_is_reserved() -> None:
    with pytest.raises(TdmRepError, match="array"):
        TdmRepFile.parse(fixture("cad-polito-it_byron_tdmrep_nonconforming.json"))
    result = file_unreadable("tdmrep.json must be a JSON array of rules")
    assert result.decision == DENY and result.error and result.reason == TDM_RESERVED
    assert result.detail and "host reserved" in result.detail


@pytest.mark.parametrize(
    "name",
    ["w3c_spec-ex19_tdm-policy_invalid-json-trailing-comma.json", "w3c_spec-ex18_tdm-policy.json"],
)
def test_policy_documents_are_not_tdmrep_files(name: str) -> None:
    # ex19 is not even valid JSON; ex18 is a valid policy object, not an array of rules.
    with pytest.raises(TdmRepError):
        TdmRepFile.parse(fixture(name))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html><body>Not found</body></html>",
        b"[1, 2]",
        b'[{"tdm-reservation": 1}]',
        b'[{"location": "/"}]',
        b'[{"location": 7, "tdm-reservation": 1}]',
        b"\xff\xfe\x00garbage",
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_garbage_files_raise(body: bytes) -> None:
    with pytest.raises(TdmRepError):
        TdmRepFile.parse(body)


def test_two_megabyte_garbage_file_fails_quickly() -> None:
    started = time.perf_counter()
    with pytest.raises(TdmRepError):
        TdmRepFile.parse(b"[" + b'{"location": "/a*", "tdm-reservation": 1},' * 50_000 + b"]")
    with pytest.raises(TdmRepError):
        TdmRepFile.parse(b"\x00" * (2 * 1024 * 1024))
    assert time.perf_counter() - started < 1.0
    assert MAX_FILE_BYTES < 2 * 1024 * 1024


def test_many_rules_and_a_hostile_location_match_quickly() -> None:
    rules = [{"location": "/*a*a*a*a*a*a*a*a$", "tdm-reservation": 1}] * 2000
    parsed = TdmRepFile.parse(json.dumps(rules))
    started = time.perf_counter()
    assert parsed.match("/" + "a" * 5000 + "b").decision == NONE
    assert time.perf_counter() - started < 1.0


def test_empty_array_declares_nothing() -> None:
    assert TdmRepFile.parse(b"[]").match("/x").decision == NONE


def test_reservation_values() -> None:
    def one(value: object) -> SignalResult:
        return TdmRepFile.parse(json.dumps([{"location": "/", "tdm-reservation": value}])).match(
            "/x"
        )

    assert one(1).decision == DENY
    assert one("1").decision == DENY
    assert one(True).decision == DENY
    assert one(0).decision == ALLOW
    for bad in (2, "yes", None, [1]):
        result = one(bad)
        assert result.decision == DENY and result.error, bad
        assert "neither 0 nor 1" in (result.detail or "")


def test_absent_file_declares_nothing() -> None:
    assert file_absent().decision == NONE


# --------------------------------------------------------------------------- headers and meta


def test_spec_example_3_header_reservation_only() -> None:
    result = from_headers(http_headers("w3c_spec-ex03_http-headers_reservation-only.http"))
    assert result.decision == DENY and result.reason == TDM_RESERVED
    assert result.found == "tdm-reservation: 1"


def test_spec_example_4_header_with_policy() -> None:
    result = from_headers(http_headers("w3c_spec-ex04_http-headers_with-policy.http"))
    assert result.decision == DENY
    assert "tdm-policy: https://provider.com/policies/policy.json" in (result.found or "")
    assert "https://provider.com/policies/policy.json" in (result.detail or "")


def test_header_variants() -> None:
    assert from_headers({}).decision == NONE
    assert from_headers(None).decision == NONE
    assert from_headers({"TDM-Reservation": "0"}).decision == ALLOW
    assert from_headers({b"tdm-reservation": [b"0", b"1"]}).decision == DENY
    assert from_headers({"tdm-reservation": "0, 1"}).decision == DENY
    bad = from_headers({"tdm-reservation": "reserved"})
    assert bad.decision == DENY and bad.error
    policy_only = from_headers({"tdm-policy": "https://p.example/policy.json"})
    assert policy_only.decision == NONE
    assert "without a reservation" in (policy_only.detail or "")


def test_spec_example_5_html_meta() -> None:
    result = from_html_meta(fixture("w3c_spec-ex05_html-meta_tdm-reservation.html"))
    assert result.decision == DENY
    assert '<meta name="tdm-reservation" content="1">' in (result.found or "")
    assert "https://provider.com/policies/policy.json" in (result.detail or "")


def test_html_meta_variants() -> None:
    assert from_html_meta(b"<html><head><title>t</title></head></html>").decision == NONE
    assert from_html_meta("<META NAME='TDM-Reservation' CONTENT='0'>").decision == ALLOW
    assert from_html_meta(b"").decision == NONE
    assert from_html_meta(b"\x00\xff binary").decision == NONE
    bad = from_html_meta('<meta name="tdm-reservation" content="">')
    assert bad.decision == DENY and bad.error


def test_two_megabyte_html_is_read_quickly() -> None:
    html = b"<html><head><meta name='tdm-reservation' content='1'></head><body>"
    html += b"<p>" + b"x" * (2 * 1024 * 1024) + b"</p></body></html>"
    started = time.perf_counter()
    assert from_html_meta(html).decision == DENY
    assert time.perf_counter() - started < 2.0


# --------------------------------------------------------------------------- precedence

RESERVED_FILE = TdmRepFile.parse(b'[{"location": "/", "tdm-reservation": 1}]')
OPEN_FILE = TdmRepFile.parse(b'[{"location": "/", "tdm-reservation": 0}]')


def test_header_supersedes_the_file_and_meta_supersedes_both() -> None:
    # #sec-processing-priority: later sources supersede earlier values.
    header_open = decide(RESERVED_FILE.match("/a"), from_headers({"tdm-reservation": "0"}))
    assert header_open.decision == ALLOW
    assert "supersedes tdmrep.json" in (header_open.detail or "")
    meta_reserves = decide(
        OPEN_FILE.match("/a"),
        from_headers({"tdm-reservation": "0"}),
        from_html_meta('<meta name="tdm-reservation" content="1">'),
    )
    assert meta_reserves.decision == DENY and meta_reserves.reason == TDM_RESERVED


def test_absence_does_not_reset_earlier_values() -> None:
    kept = decide(RESERVED_FILE.match("/a"), from_headers({}), from_html_meta(b"<p>no meta</p>"))
    assert kept.decision == DENY
    assert kept == RESERVED_FILE.match("/a")


def test_most_restrictive_mode_lets_any_reservation_win() -> None:
    result = decide(
        RESERVED_FILE.match("/a"), from_headers({"tdm-reservation": "0"}), most_restrictive=True
    )
    assert result.decision == DENY
    assert "overrides" in (result.detail or "")


def test_unreadable_file_reserves_whatever_the_headers_say() -> None:
    result = decide(file_unreadable("HTTP 503"), from_headers({"tdm-reservation": "0"}))
    assert result.decision == DENY and result.error


def test_nothing_anywhere_is_none() -> None:
    result = decide(file_absent(), from_headers({}), from_html_meta(b""))
    assert result.decision == NONE
    assert decide(None).decision == NONE


@pytest.mark.parametrize("body", [
    '\ufeff[{"location": "/bom/", "tdm-reservation": 1}]',
    '\ufeff[{"location": "/bom/", "tdm-reservation": 1}]'.encode(),
], ids=["text", "bytes"])
def test_a_leading_bom_is_skipped(body: str | bytes) -> None:
    """tdmrep.json with a UTF-8 BOM (bytes EF BB BF or a decoded U+FEFF) is read, not refused."""
    result = TdmRepFile.parse(body).match("/bom/p")
    assert result.decision == DENY and result.reason == TDM_RESERVED and not result.error
