"""Licence evidence end to end: the real crawler on a local site where embedded metadata, per-image
markup and page-wide markup agree, disagree (allowed or not), or are missing."""

from __future__ import annotations

import io
import json
import struct

import pytest
from crawlkit import image_bytes, local_source, page, run_crawl_cli, write_settings
from mockserver import MockServer
from PIL import Image

from pipeline.runs import reasons
from pipeline.runs.schema import ITEM_COLUMNS

CC_BY = "https://creativecommons.org/licenses/by/4.0/"
CC_BY_SA = "https://creativecommons.org/licenses/by-sa/4.0/"
CC_BY_NC = "https://creativecommons.org/licenses/by-nc/4.0/"
CC0 = "https://creativecommons.org/publicdomain/zero/1.0/"


def xmp_jpeg(color: tuple[int, int, int], body: str) -> bytes:
    """A JPEG whose APP1 XMP packet holds ``body`` inside one rdf:Description."""
    packet = (
        "<?xpacket begin='\ufeff' id='W5M0MpCehiHzreSzNTczkc9d'?>"
        "<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF"
        " xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'><rdf:Description rdf:about=''"
        " xmlns:dc='http://purl.org/dc/elements/1.1/' xmlns:cc='http://creativecommons.org/ns#'"
        " xmlns:plus='http://ns.useplus.org/ldf/xmp/1.0/'"
        " xmlns:photoshop='http://ns.adobe.com/photoshop/1.0/'>"
        f"{body}</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end='w'?>"
    ).encode()
    segment = b"http://ns.adobe.com/xap/1.0/\x00" + packet
    out = io.BytesIO()
    Image.new("RGB", (16, 12), color).save(out, "JPEG")
    jpeg = out.getvalue()
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment + jpeg[2:]


def alt(tag: str, text: str) -> str:
    return f"<{tag}><rdf:Alt><rdf:li xml:lang='x-default'>{text}</rdf:li></rdf:Alt></{tag}>"


def creator(name: str) -> str:
    return f"<dc:creator><rdf:Seq><rdf:li>{name}</rdf:li></rdf:Seq></dc:creator>"


def licence(url: str) -> str:
    return f"<cc:license rdf:resource='{url}'/>"


def jsonld(image_url: str, licence_url: str) -> str:
    doc = {"@context": "https://schema.org", "@type": "ImageObject", "contentUrl": image_url,
           "license": licence_url, "creditText": "Harbour Photo Co-op",
           "creator": {"@type": "Person", "name": "Markup Name"}}
    return f'<script type="application/ld+json">{json.dumps(doc)}</script>'


def rel(url: str) -> str:
    return f'<a rel="license" href="{url}">licence</a>'


AGREE = xmp_jpeg((200, 0, 0), licence(CC_BY) + creator("Ann Example") + alt("dc:title", "Harbour")
                 + "<photoshop:Credit>Ann Example / Co-op</photoshop:Credit>")
DISAGREE = xmp_jpeg((0, 200, 0), licence(CC_BY_SA) + creator("Bo Example"))
CONFLICT = image_bytes((0, 0, 200))
RIGHTS_TEXT = xmp_jpeg((50, 50, 50), alt("dc:rights", "Copyright 2026 Cy Example") +
                       creator("Cy Example"))
PLAIN = image_bytes((90, 90, 90))
FIGURE = image_bytes((120, 0, 120))
RELEASED = xmp_jpeg((0, 120, 120), licence(CC0) +
                    "<plus:MinorModelAgeDisclosure rdf:resource="
                    "'http://ns.useplus.org/ldf/vocab/AG-A25'/>"
                    "<plus:ModelReleaseStatus rdf:resource="
                    "'http://ns.useplus.org/ldf/vocab/MR-UMR'/>")


@pytest.fixture(scope="module")
def site():
    with MockServer() as srv:
        srv.route("/robots.txt", body="User-agent: *\nAllow: /\n", content_type="text/plain")
        links = "".join(f'<a href="/s/{p}.html">{p}</a>' for p in (
            "agree", "disagree", "conflict", "missing", "figure", "released"))
        srv.route("/s/", body=page(links))
        img = srv.url("/s/img/agree.jpg")
        srv.route("/s/agree.html", body=page(
            rel(CC_BY) + '<img src="/s/img/agree.jpg" alt="a red square">',
            head=jsonld(img, CC_BY)))
        srv.route("/s/disagree.html", body=page(rel(CC_BY) + '<img src="/s/img/disagree.jpg">'))
        srv.route("/s/conflict.html", body=page(
            rel(CC_BY) + '<img src="/s/img/conflict.jpg">',
            head=jsonld(srv.url("/s/img/conflict.jpg"), CC_BY_NC)))
        srv.route("/s/missing.html", body=page(
            '<img src="/s/img/rights-text.jpg"><img src="/s/img/plain.jpg">'))
        srv.route("/s/figure.html", body=page(
            rel(CC0) + '<figure><img src="/s/img/figure.jpg"><figcaption>'
            '<span property="cc:attributionName">Dee Example</span> '
            f'{rel(CC_BY_SA)}</figcaption></figure>'))
        srv.route("/s/released.html", body=page('<img src="/s/img/released.jpg">'))
        for name, body in (("agree", AGREE), ("disagree", DISAGREE), ("conflict", CONFLICT),
                           ("rights-text", RIGHTS_TEXT), ("plain", PLAIN), ("figure", FIGURE),
                           ("released", RELEASED)):
            srv.route(f"/s/img/{name}.jpg", body=body, content_type="image/jpeg")
        yield srv


@pytest.fixture(scope="module")
def crawled(site: MockServer, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rights")
    # No licence.default: every kept item stands on its own evidence.
    write_settings(tmp / "configs", [local_source("s", site.url("/s/"), default_licence=None)])
    result = run_crawl_cli(tmp)
    assert result.returncode == 0, result.stderr
    return result


def test_agreeing_evidence_gives_the_embedded_licence_and_a_tasl_credit(site, crawled):
    item = crawled.item(site.url("/s/img/agree.jpg"))
    assert list(item) == list(ITEM_COLUMNS)
    assert (item["licence"], item["licence_source"], item["licence_url"]) == (
        "CC-BY-4.0", "xmp", CC_BY)
    assert item["creator"] == "Ann Example" and item["credit"] == "Ann Example / Co-op"
    assert item["attribution"] == (
        f'"Harbour" by Ann Example is licensed under CC BY 4.0 ({CC_BY}). '
        f"Source: {site.url('/s/agree.html')}")
    assert item["licence_disagreement"] is None
    assert [(e["source"], e["scope"], e["licence"]) for e in item["licence_evidence"]] == [
        ("xmp", "embedded", "CC-BY-4.0"), ("jsonld", "image", "CC-BY-4.0"),
        ("rel-license", "page", "CC-BY-4.0")]


def test_disagreeing_allowed_licences_keep_the_more_restrictive(site, crawled):
    item = crawled.item(site.url("/s/img/disagree.jpg"))
    assert (item["licence"], item["licence_source"]) == ("CC-BY-SA-4.0", "xmp")
    assert "rel-license [page]: CC-BY-4.0" in item["licence_disagreement"]
    assert item["attribution"].startswith("Image by Bo Example is licensed under CC BY-SA 4.0")


def test_disagreement_with_a_licence_not_allowed_is_a_conflict(site, crawled):
    rejection = crawled.rejection(site.url("/s/img/conflict.jpg"))
    assert (rejection["reason"], rejection["stage"]) == (reasons.LICENCE_CONFLICT, "licence")
    assert "jsonld" in rejection["detail"] and "CC-BY-NC-4.0" in rejection["detail"]
    assert "rel-license" in rejection["detail"] and "CC-BY-4.0" in rejection["detail"]
    assert not [i for i in crawled.items if i["url"].endswith("/conflict.jpg")]


def test_missing_evidence_is_no_licence_with_any_rights_text(site, crawled):
    text = crawled.rejection(site.url("/s/img/rights-text.jpg"))
    assert text["reason"] == reasons.NO_LICENCE
    assert "Copyright 2026 Cy Example" in text["detail"]
    plain = crawled.rejection(site.url("/s/img/plain.jpg"))
    assert plain["reason"] == reasons.NO_LICENCE and "no licence evidence" in plain["detail"]


def test_licence_in_the_images_figure_beats_the_page_wide_one(site, crawled):
    item = crawled.item(site.url("/s/img/figure.jpg"))
    assert (item["licence"], item["licence_source"]) == ("CC-BY-SA-4.0", "rel-license")
    assert item["creator"] == "Dee Example"
    assert item["attribution"].startswith("Image by Dee Example is licensed under CC BY-SA 4.0")
    scopes = {(e["scope"], e["licence"]) for e in item["licence_evidence"]}
    assert scopes == {("image", "CC-BY-SA-4.0"), ("page", "CC0-1.0")}


def test_plus_disclosures_are_recorded_raw_on_kept_rows(site, crawled):
    item = crawled.item(site.url("/s/img/released.jpg"))
    assert item["minor_age_disclosure"] == "http://ns.useplus.org/ldf/vocab/AG-A25"
    assert item["model_release_status"] == "http://ns.useplus.org/ldf/vocab/MR-UMR"
    assert item["licence"] == "CC0-1.0"
    assert item["attribution"].startswith("Image is marked with CC0 1.0")
    other = crawled.item(site.url("/s/img/agree.jpg"))
    assert other["minor_age_disclosure"] is None and other["model_release_status"] is None


@pytest.fixture(scope="module")
def fixture_site(shared_fixtures):
    html = shared_fixtures / "html" / "extruct_w3c_microdata.5.5_itemprop-license.html"
    c2pa = shared_fixtures / "images" / "c2pa" / "adobe-20220124-C.jpg"
    xmp = shared_fixtures / "images" / "iptc_xmp" / "exiftool_XMP.jpg"
    for path in (html, c2pa, xmp):
        if not path.is_file():
            pytest.skip(f"{path} is absent")
    with MockServer() as srv:
        srv.route("/robots.txt", body="User-agent: *\nAllow: /\n", content_type="text/plain")
        srv.route("/g/", body=page('<a href="/g/gallery/">g</a>' + rel(CC_BY_SA)
                                   + '<img src="/g/c2pa.jpg"><img src="/g/xmp.jpg">'))
        srv.route("/g/gallery/", body=html.read_text())
        srv.route("/g/c2pa.jpg", body=c2pa.read_bytes(), content_type="image/jpeg")
        srv.route("/g/xmp.jpg", body=xmp.read_bytes(), content_type="image/jpeg")
        srv.route("/g/gallery/images/house.jpeg", body=image_bytes((1, 1, 1)),
                  content_type="image/jpeg")
        srv.route("/g/gallery/images/mailbox.jpeg", body=image_bytes((2, 2, 2)),
                  content_type="image/jpeg")
        yield srv


def test_real_fixture_files_through_the_crawler(fixture_site: MockServer, tmp_path):
    write_settings(tmp_path / "configs", [local_source("g", fixture_site.url("/g/"))])
    result = run_crawl_cli(tmp_path)
    assert result.returncode == 0, result.stderr
    # C2PA CreativeWork author of the active manifest, licence from the page's rel=license.
    c2pa = result.item(fixture_site.url("/g/c2pa.jpg"))
    assert (c2pa["licence"], c2pa["licence_source"], c2pa["creator"]) == (
        "CC-BY-SA-4.0", "rel-license", "Adobe make_test")
    # exiftool's XMP.jpg: dc:creator, photoshop:Credit and dc:title feed the credit line.
    xmp = result.item(fixture_site.url("/g/xmp.jpg"))
    assert (xmp["creator"], xmp["credit"]) == ("Phil Harvey", "My Credit")
    assert xmp["attribution"].startswith(
        '"Test IPTC picture" by Phil Harvey is licensed under CC BY-SA 4.0')
    # W3C microdata gallery: each <img> is a `work` item licensed by an opensource.org MIT page
    # URL, which is not a licence URL SPDX knows: a LicenseRef- the policy does not list.
    for name in ("house", "mailbox"):
        rejection = result.rejection(fixture_site.url(f"/g/gallery/images/{name}.jpeg"))
        assert rejection["reason"] == reasons.NO_LICENCE and "LicenseRef-" in rejection["detail"]
        assert "microdata" in rejection["detail"]
        assert "opensource.org/licenses/mit-license.php" in rejection["detail"]
