"""Opt-outs win, end to end: every honoured signal against a real local server.

Each test asserts the reason code, the evidence in `detail` (and on kept rows, in `signals`),
and, for signals that refuse a whole path before the fetch (robots Content-Usage rules,
tdmrep.json reservations, ai.txt, a page's noai), that the server was never asked for it.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from crawlkit import image_bytes, local_source, page, run_crawl_cli, write_settings
from mockserver import MockServer

from pipeline.runs import reasons

ROBOTS_OK = "User-agent: *\nAllow: /\n"


def with_xmp(jpeg: bytes, packet: str) -> bytes:
    """Insert an XMP APP1 segment right after the JPEG's SOI marker."""
    payload = b"http://ns.adobe.com/xap/1.0/\x00" + packet.encode("utf-8")
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segment + jpeg[2:]


def xmp_packet(body: str) -> str:
    return (
        '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/" '
        f'xmlns:dcterms="http://purl.org/dc/terms/" {body}/>'
        '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    )


def serve_image(srv: MockServer, path: str, body: bytes, headers: dict[str, str] | None = None,
                content_type: str = "image/jpeg") -> str:
    return srv.route(path, body=body, headers=headers, content_type=content_type)


def crawl(srv: MockServer, tmp: Path, images: list[str], *, extra_pages: str = "", **settings):
    tags = "".join(f'<img src="{p}" alt="{p}">' for p in images)
    srv.route("/site/", body=page(tags + extra_pages))
    write_settings(tmp / "configs", [local_source("site", srv.url("/site/"))], **settings)
    result = run_crawl_cli(tmp)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def srv():
    with MockServer() as server:
        server.route("/robots.txt", body=ROBOTS_OK, content_type="text/plain")
        yield server


def signal(item: dict, check: str) -> dict:
    found = [s for s in item["signals"] if s["check"] == check]
    assert found, (check, [s["check"] for s in item["signals"]])
    return found[0]


# ------------------------------------------------------------------ HTTP headers on the image


def test_content_usage_header(srv: MockServer, tmp_path: Path):
    serve_image(srv, "/site/a.jpg", image_bytes((1, 1, 1)), {"Content-Usage": "train-ai=n"})
    serve_image(srv, "/site/b.jpg", image_bytes((2, 2, 2)), {"Content-Usage": "train-ai=y"})
    serve_image(srv, "/site/c.jpg", image_bytes((3, 3, 3)), {"Content-Usage": "train-ai=(,,"})
    result = crawl(srv, tmp_path, ["/site/a.jpg", "/site/b.jpg", "/site/c.jpg"])
    refused = result.rejection(srv.url("/site/a.jpg"))
    assert refused["reason"] == reasons.CONTENT_USAGE_DISALLOWED
    assert "train-ai=n" in refused["detail"]
    garbage = result.rejection(srv.url("/site/c.jpg"))  # malformed is unknown, not permission
    assert garbage["reason"] == reasons.CONTENT_USAGE_DISALLOWED
    kept = signal(result.item(srv.url("/site/b.jpg")), "content_usage.header")
    assert kept["decision"] == "allow" and "train-ai=y" in kept["found"]


def test_x_robots_tag_header_including_token_scoped_form(srv: MockServer, tmp_path: Path):
    serve_image(srv, "/site/a.jpg", image_bytes((1, 1, 1)), {"X-Robots-Tag": "noai"})
    serve_image(srv, "/site/b.jpg", image_bytes((2, 2, 2)),
                {"X-Robots-Tag": "ClearanceBot: noimageai"})
    serve_image(srv, "/site/c.jpg", image_bytes((3, 3, 3)), {"X-Robots-Tag": "OtherBot: noai"})
    result = crawl(srv, tmp_path, ["/site/a.jpg", "/site/b.jpg", "/site/c.jpg"])
    assert result.rejection(srv.url("/site/a.jpg"))["reason"] == reasons.X_ROBOTS_NOAI
    scoped = result.rejection(srv.url("/site/b.jpg"))
    assert scoped["reason"] == reasons.X_ROBOTS_NOAI and "noimageai" in scoped["detail"]
    other = signal(result.item(srv.url("/site/c.jpg")), "x_robots_tag")
    assert other["decision"] != "deny" and other["ran"]


def test_tdm_reservation_header_keeps_the_policy_url(srv: MockServer, tmp_path: Path):
    serve_image(srv, "/site/a.jpg", image_bytes((1, 1, 1)),
                {"tdm-reservation": "1", "tdm-policy": "https://policy.example/tdm.json"})
    result = crawl(srv, tmp_path, ["/site/a.jpg"])
    rejection = result.rejection(srv.url("/site/a.jpg"))
    assert rejection["reason"] == reasons.TDM_RESERVED
    assert "https://policy.example/tdm.json" in rejection["detail"]


# ------------------------------------------------------------------ page-level signals


@pytest.mark.parametrize("head, reason", [
    ('<meta name="robots" content="noimageai">', reasons.META_NOAI),
    ('<meta name="ClearanceBot" content="noai">', reasons.META_NOAI),
    ('<meta name="tdm-reservation" content="1">', reasons.TDM_RESERVED),
])
def test_page_meta_applies_to_its_images_which_are_not_fetched(srv, tmp_path, head, reason):
    serve_image(srv, "/site/opted/a.jpg", image_bytes((1, 1, 1)))
    srv.route("/site/opted.html", body=page('<img src="/site/opted/a.jpg">', head=head))
    result = crawl(srv, tmp_path, [], extra_pages='<a href="/site/opted.html">o</a>')
    assert not srv.was_requested("/site/opted/a.jpg")
    rejection = result.rejection(srv.url("/site/opted/a.jpg"))
    assert rejection["reason"] == reason
    assert srv.url("/site/opted.html") in rejection["detail"]
    conflicts = result.run["conflicts"]["site"]
    assert conflicts["by_reason"][reason] == 1 and "disagree" in conflicts["note"]


def test_an_image_on_an_opted_out_page_is_refused_even_if_kept_elsewhere(srv, tmp_path):
    serve_image(srv, "/site/shared.jpg", image_bytes((7, 7, 7)))
    srv.route("/site/noai.html", body=page('<img src="/site/shared.jpg">',
                                           head='<meta name="robots" content="noai">'))
    result = crawl(srv, tmp_path, ["/site/shared.jpg"],
                   extra_pages='<a href="/site/noai.html">n</a>')
    assert result.reasons_for(srv.url("/site/shared.jpg")) == [reasons.META_NOAI]
    assert not [i for i in result.items if i["url"] == srv.url("/site/shared.jpg")]


# ------------------------------------------------------------------ per-host policy files


def test_tdmrep_json_reserved_path_is_never_requested(srv: MockServer, tmp_path: Path):
    srv.route("/.well-known/tdmrep.json", content_type="application/json", body=(
        '[{"location": "/site/reserved/*", "tdm-reservation": 1,'
        ' "tdm-policy": "https://policy.example/p.json"},'
        ' {"location": "/*", "tdm-reservation": 0}]'))
    serve_image(srv, "/site/reserved/a.jpg", image_bytes((1, 1, 1)))
    serve_image(srv, "/site/open.jpg", image_bytes((2, 2, 2)))
    result = crawl(srv, tmp_path, ["/site/reserved/a.jpg", "/site/open.jpg"])
    assert srv.count("/.well-known/tdmrep.json") == 1
    assert not srv.was_requested("/site/reserved/a.jpg")
    rejection = result.rejection(srv.url("/site/reserved/a.jpg"))
    assert rejection["reason"] == reasons.TDM_RESERVED
    assert '"location": "/site/reserved/*"' in rejection["detail"]
    assert "https://policy.example/p.json" in rejection["detail"]
    kept = signal(result.item(srv.url("/site/open.jpg")), "tdmrep.file")
    assert kept["decision"] == "allow"


@pytest.mark.parametrize("status, body", [(503, "busy"), (200, '{"not": "an array"}'),
                                          (200, "[{broken")])
def test_tdmrep_json_that_cannot_be_read_reserves_the_host(srv, tmp_path, status, body):
    srv.route("/.well-known/tdmrep.json", status=status, body=body,
              content_type="application/json")
    serve_image(srv, "/site/a.jpg", image_bytes((1, 1, 1)))
    result = crawl(srv, tmp_path, ["/site/a.jpg"])
    assert not srv.was_requested("/site/")
    assert result.reasons_for(srv.url("/site/")) == [reasons.TDM_RESERVED]
    assert "tdmrep.json" in result.rejection(srv.url("/site/"))["detail"]


def test_ai_txt_file_name_rules(srv: MockServer, tmp_path: Path):
    srv.route("/ai.txt", body="User-Agent: *\nDisallow: *.png\nAllow: *.jpg\n",
              content_type="text/plain")
    serve_image(srv, "/site/a.png", image_bytes((1, 1, 1), fmt="PNG"), content_type="image/png")
    serve_image(srv, "/site/b.jpg", image_bytes((2, 2, 2)))
    result = crawl(srv, tmp_path, ["/site/a.png", "/site/b.jpg"])
    assert srv.count("/ai.txt") == 1
    assert not srv.was_requested("/site/a.png")
    rejection = result.rejection(srv.url("/site/a.png"))
    assert rejection["reason"] == reasons.AI_TXT_DISALLOWED and "*.png" in rejection["detail"]
    assert signal(result.item(srv.url("/site/b.jpg")), "ai_txt")["decision"] == "allow"


def test_robots_content_usage_rule_with_path(srv: MockServer, tmp_path: Path):
    srv.route("/robots.txt", content_type="text/plain", body=(
        "User-agent: *\nAllow: /\nContent-Usage: train-ai=y\n"
        "Content-Usage: /site/no-train/ train-ai=n\n"))
    serve_image(srv, "/site/no-train/a.jpg", image_bytes((1, 1, 1)))
    serve_image(srv, "/site/b.jpg", image_bytes((2, 2, 2)))
    result = crawl(srv, tmp_path, ["/site/no-train/a.jpg", "/site/b.jpg"])
    assert not srv.was_requested("/site/no-train/a.jpg")
    rejection = result.rejection(srv.url("/site/no-train/a.jpg"))
    assert rejection["reason"] == reasons.CONTENT_USAGE_DISALLOWED
    assert "Content-Usage: /site/no-train/ train-ai=n" in rejection["detail"]
    kept = signal(result.item(srv.url("/site/b.jpg")), "content_usage.robots")
    assert kept["decision"] == "allow"


def test_oversized_robots_txt_fails_closed(srv: MockServer, tmp_path: Path):
    srv.route("/robots.txt", body="# padding\n" * 200_000, content_type="text/plain")  # 2 MB
    result = crawl(srv, tmp_path, [])
    assert set(srv.paths()) == {"/robots.txt"}
    assert result.reasons_for(srv.url("/site/")) == [reasons.ROBOTS_UNREACHABLE]


# ------------------------------------------------------------------ embedded metadata


def test_xmp_data_mining_and_minor_models(srv: MockServer, tmp_path: Path):
    prohibited = 'plus:DataMining="http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING"'
    serve_image(srv, "/site/dm.jpg", with_xmp(image_bytes((1, 1, 1)), xmp_packet(prohibited)))
    minor = 'plus:MinorModelAgeDisclosure="http://ns.useplus.org/ldf/vocab/AG-A16"'
    serve_image(srv, "/site/minor.jpg", with_xmp(image_bytes((2, 2, 2)), xmp_packet(minor)))
    allowed = 'plus:DataMining="http://ns.useplus.org/ldf/vocab/DMI-ALLOWED"'
    serve_image(srv, "/site/ok.jpg", with_xmp(image_bytes((3, 3, 3)), xmp_packet(allowed)))
    bomb = ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
            '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/">&c;</x:xmpmeta>')
    serve_image(srv, "/site/bomb.jpg", with_xmp(image_bytes((4, 4, 4)), bomb))
    result = crawl(srv, tmp_path, ["/site/dm.jpg", "/site/minor.jpg", "/site/ok.jpg",
                                   "/site/bomb.jpg"])
    dm = result.rejection(srv.url("/site/dm.jpg"))
    assert dm["reason"] == reasons.IPTC_DATA_MINING_PROHIBITED
    assert "DMI-PROHIBITED-AIMLTRAINING" in dm["detail"]
    assert result.rejection(srv.url("/site/minor.jpg"))["reason"] == reasons.MINOR_DEPICTED
    bombed = result.rejection(srv.url("/site/bomb.jpg"))
    assert bombed["reason"] == reasons.IPTC_DATA_MINING_PROHIBITED
    assert "unreadable XMP" in bombed["detail"]
    assert signal(result.item(srv.url("/site/ok.jpg")), "xmp.data_mining")["decision"] == "allow"


def test_c2pa_training_mining_on_real_files(srv, tmp_path, shared_fixtures: Path):
    c2pa = shared_fixtures / "images" / "c2pa"
    serve_image(srv, "/site/cawg.jpg", (c2pa / "c2pa-c_C_with_CAWG_data.jpg").read_bytes())
    serve_image(srv, "/site/allowed.jpg",
                (c2pa / "c2pa-rs_adobe_connected_identities.jpg").read_bytes())
    whole = (c2pa / "c2pa-c_for_trusted_read.jpg").read_bytes()
    serve_image(srv, "/site/truncated.jpg", whole[: len(whole) // 3])
    result = crawl(srv, tmp_path, ["/site/cawg.jpg", "/site/allowed.jpg", "/site/truncated.jpg"])
    refused = result.rejection(srv.url("/site/cawg.jpg"))
    assert refused["reason"] == reasons.C2PA_TRAINING_NOT_ALLOWED
    assert "ai_generative_training=notAllowed" in refused["detail"]
    assert "validation" in refused["detail"]
    truncated = result.rejection(srv.url("/site/truncated.jpg"))
    assert truncated["reason"] in (reasons.C2PA_TRAINING_NOT_ALLOWED, reasons.NOT_AN_IMAGE)
    # Its XMP also names a remote manifest on a public host: refused by the consent gate.
    assert not [r for r in result.rejections if "adobe.com" in r["url"]]
    kept = signal(result.item(srv.url("/site/allowed.jpg")), "c2pa")
    assert kept["decision"] == "allow"


def test_remote_c2pa_manifest_outside_consent_is_not_fetched(srv, tmp_path):
    remote = srv.url("/elsewhere/manifest.c2pa")
    srv.route("/elsewhere/manifest.c2pa", body=b"\0" * 100, content_type="application/c2pa")
    packet = xmp_packet(f'dcterms:provenance="{remote}"')
    serve_image(srv, "/site/remote.jpg", with_xmp(image_bytes((5, 5, 5)), packet))
    result = crawl(srv, tmp_path, ["/site/remote.jpg"])
    assert not srv.was_requested("/elsewhere/manifest.c2pa")
    assert result.reasons_for(remote) == [reasons.OUT_OF_SCOPE]
    rejection = result.rejection(srv.url("/site/remote.jpg"))
    assert rejection["reason"] == reasons.C2PA_TRAINING_NOT_ALLOWED
    assert remote in rejection["detail"]


# ------------------------------------------------------------------ switches


def test_switched_off_checks_are_recorded_on_the_row(srv: MockServer, tmp_path: Path):
    serve_image(srv, "/site/a.jpg", image_bytes((1, 1, 1)), {"X-Robots-Tag": "noai"})
    result = crawl(srv, tmp_path, ["/site/a.jpg"],
                   signals={"x_robots_tag": False, "tdmrep": False})
    item = result.item(srv.url("/site/a.jpg"))
    off = signal(item, "x_robots_tag")
    assert off == {**off, "ran": False, "decision": "off"}
    assert signal(item, "tdmrep")["decision"] == "off"
    assert not srv.was_requested("/.well-known/tdmrep.json")
    assert result.run["signals_off"] == ["tdmrep", "x_robots_tag"]


def test_remote_c2pa_manifest_inside_consent_is_fetched_and_must_be_readable(srv, tmp_path):
    remote = srv.url("/site/manifests/m.c2pa")
    srv.route("/site/manifests/m.c2pa", body=b"not a manifest", content_type="application/c2pa")
    packet = xmp_packet(f'dcterms:provenance="{remote}"')
    serve_image(srv, "/site/remote.jpg", with_xmp(image_bytes((5, 5, 5)), packet))
    result = crawl(srv, tmp_path, ["/site/remote.jpg"])
    assert srv.count("/site/manifests/m.c2pa") == 1
    rejection = result.rejection(srv.url("/site/remote.jpg"))
    assert rejection["reason"] == reasons.C2PA_TRAINING_NOT_ALLOWED
    assert "unreadable" in rejection["detail"]


def test_tdm_meta_supersedes_the_page_header_as_the_spec_says(srv, tmp_path):
    serve_image(srv, "/site/meta0/a.jpg", image_bytes((1, 1, 1)))
    srv.route("/site/meta0.html", headers={"tdm-reservation": "1"}, body=page(
        '<img src="/site/meta0/a.jpg">', head='<meta name="tdm-reservation" content="0">'))
    result = crawl(srv, tmp_path, [], extra_pages='<a href="/site/meta0.html">m</a>')
    kept = signal(result.item(srv.url("/site/meta0/a.jpg")), "page.tdmrep")
    assert kept["decision"] == "allow" and "supersedes" in kept["detail"]


# ------------------------------------------------------------------ policy files under robots.txt

AI_TXT_ALL = "User-Agent: *\nDisallow: *\nDisallow: /\n"
TDMREP_ALL = '[{"location": "/", "tdm-reservation": 1}]'


def serve_policy_files(srv: MockServer) -> None:
    """tdmrep.json and ai.txt that would refuse everything, if they were read."""
    srv.route("/.well-known/tdmrep.json", body=TDMREP_ALL, content_type="application/json")
    srv.route("/ai.txt", body=AI_TXT_ALL, content_type="text/plain")


@pytest.mark.parametrize("robots", [
    "User-agent: *\nDisallow: /\n",
    "User-agent: ClearanceBot\nDisallow: /\n\nUser-agent: *\nAllow: /\n",
])
def test_a_site_that_disallows_everything_gets_only_the_robots_txt_request(
        srv: MockServer, tmp_path: Path, robots: str):
    srv.route("/robots.txt", body=robots, content_type="text/plain")
    serve_policy_files(srv)
    serve_image(srv, "/site/a.jpg", image_bytes((1, 1, 1)))
    result = crawl(srv, tmp_path, ["/site/a.jpg"])
    assert srv.paths() == ["/robots.txt"]
    assert result.reasons_for(srv.url("/site/")) == [reasons.ROBOTS_DISALLOWED]
    assert not result.items


def test_policy_files_robots_txt_disallows_are_not_read(srv: MockServer, tmp_path: Path):
    srv.route("/robots.txt", content_type="text/plain", body=(
        "User-agent: ClearanceBot\nDisallow: /ai.txt\nDisallow: /.well-known/\nAllow: /\n"))
    serve_policy_files(srv)
    serve_image(srv, "/site/a.jpg", image_bytes((1, 1, 1)))
    result = crawl(srv, tmp_path, ["/site/a.jpg"])
    assert not srv.was_requested("/ai.txt")
    assert not srv.was_requested("/.well-known/tdmrep.json")
    assert srv.count("/robots.txt") == 1
    assert srv.was_requested("/site/") and srv.was_requested("/site/a.jpg")
    item = result.item(srv.url("/site/a.jpg"))
    tdm = signal(item, "tdmrep.file")
    assert tdm["ran"] and tdm["decision"] == "none"
    assert tdm["detail"] == (
        "robots.txt disallows /.well-known/tdmrep.json for ClearanceBot; not read")
    ai = signal(item, "ai_txt")
    assert ai["ran"] and ai["decision"] == "none"
    assert ai["detail"] == "robots.txt disallows /ai.txt for ClearanceBot; not read"


def test_a_policy_file_redirected_into_a_robots_disallowed_path_is_not_followed(
        srv: MockServer, tmp_path: Path):
    srv.route("/robots.txt", content_type="text/plain", body=(
        "User-agent: ClearanceBot\nDisallow: /site/hidden/\nAllow: /\n"))
    srv.redirect("/ai.txt", "/site/hidden/ai.txt")
    srv.route("/site/hidden/ai.txt", body=AI_TXT_ALL, content_type="text/plain")
    serve_image(srv, "/site/a.jpg", image_bytes((1, 1, 1)))
    result = crawl(srv, tmp_path, ["/site/a.jpg"])
    assert srv.count("/ai.txt") == 1
    assert not srv.was_requested("/site/hidden/ai.txt")
    ai = signal(result.item(srv.url("/site/a.jpg")), "ai_txt")
    assert ai["decision"] == "none"
    assert ai["detail"] == (
        "robots.txt disallows /site/hidden/ai.txt (redirected from /ai.txt) for ClearanceBot; "
        "not read")
