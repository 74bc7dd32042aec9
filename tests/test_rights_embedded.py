"""Rights evidence in image bytes (crawler.rights.embedded) on the real fixture files."""

from __future__ import annotations

import io
import struct

import pytest
from helpers_config import settings_doc
from PIL import Image

from crawler.rights.embedded import (
    RightsUnreadable,
    c2pa_evidence,
    embedded_evidence,
    iim_evidence,
    read_c2pa_store,
    read_iim,
    read_rights,
    xmp_evidence,
)
from crawler.rights.evidence import C2PA, EMBEDDED, IPTC, XMP
from crawler.signals.xmp import read_xmp


def fixture(shared_fixtures, *parts: str) -> bytes:
    path = shared_fixtures.joinpath("images", *parts)
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path.read_bytes()


def test_exiftool_jpeg_xmp_creator_credit_title_and_rights_text(shared_fixtures):
    body = fixture(shared_fixtures, "iptc_xmp", "exiftool_XMP.jpg")
    (piece,) = embedded_evidence(body, "image/jpeg")
    assert (piece.source, piece.scope) == (XMP, EMBEDDED)
    assert piece.creator == "Phil Harvey" and piece.credit == "My Credit"
    assert piece.title == "Test IPTC picture"
    # https://exiftool.org/ is a web statement, not a licence; dc:rights names none either.
    assert piece.licence is None
    assert "xmpRights:WebStatement: https://exiftool.org/" in piece.raw
    assert "dc:rights: Copyright 2004 Phil Harvey" in piece.raw


def test_exiv2_iptc_2021_sidecar_licensor_credit_and_disclosures(shared_fixtures):
    info = read_xmp(fixture(shared_fixtures, "iptc_xmp", "exiv2_issue_1959_poc.xmp"))
    assert info is not None
    assert info.licensor_name == ("Someone",)
    assert info.licensor_url == ("http://www.example.com/licensorurl/okng0934j9jkrg0430gjn0mn03",)
    assert info.credit == ("Test Credit Line",)
    assert info.title == ("Test IPTC XMP file",)
    (piece,) = xmp_evidence(info)
    assert piece.creator == "postscript-dev" and piece.credit == "Test Credit Line"
    assert piece.licence is None  # "See https://github.com/.../COPYING" names no licence
    assert "See https://github.com/Exiv2/exiv2/blob/main/COPYING" in piece.raw
    rights = read_rights(fixture(shared_fixtures, "iptc_xmp", "exiv2_issue_1959_poc.xmp"), None)
    assert rights.minor_age == "http://ns.useplus.org/ldf/vocab/AG-A25"
    assert rights.model_release == "http://ns.useplus.org/ldf/vocab/MR-NAP"


def test_plus_licensor_is_the_creator_when_dc_creator_is_absent(shared_fixtures):
    info = read_xmp(fixture(shared_fixtures, "iptc_xmp", "exiftool_PLUS.xmp"))
    assert info is not None and info.licensor_name == ("Phil Harvey",)
    (piece,) = xmp_evidence(info)
    assert piece.creator == "Phil Harvey"
    assert "dc:rights: Copyright © 2016 Phil Harvey" in piece.raw and piece.licence is None


def test_mediawiki_literal_cc_license_to_an_unknown_url_is_a_licenseref(shared_fixtures):
    info = read_xmp(fixture(shared_fixtures, "iptc_xmp", "mediawiki_xmp_7.xmp"))
    (piece,) = xmp_evidence(info)
    assert piece.field == "cc:license"
    assert piece.raw == piece.url == "http://creativecommons.com/cc-by-2.9"
    assert piece.licence is not None and piece.licence.startswith("LicenseRef-")
    assert piece.title == "xmp core/xmp rights/cc ns test"


def test_c2pa_creative_work_author_of_the_active_manifest(shared_fixtures):
    body = fixture(shared_fixtures, "c2pa", "adobe-20220124-C.jpg")
    (piece,) = c2pa_evidence(read_c2pa_store(body, "image/jpeg"))
    assert (piece.source, piece.creator, piece.licence) == (C2PA, "Adobe make_test", None)


def test_c2pa_ingredient_author_is_not_this_images_author(shared_fixtures):
    # The CreativeWork ("John Doe") of C_with_CAWG_data.jpg is in an ingredient manifest only.
    body = fixture(shared_fixtures, "c2pa", "c2pa-c_C_with_CAWG_data.jpg")
    store = read_c2pa_store(body, "image/jpeg")
    assert store is not None and "John Doe" in str(store)
    assert c2pa_evidence(store) == []


def test_plain_images_carry_no_embedded_rights(shared_fixtures):
    body = fixture(shared_fixtures, "c2pa", "adobe-20220124-A.jpg")
    # Its IIM block holds dates only: no creator, credit or copyright notice.
    assert read_iim(body)[(2, 55)] == ["20110730"]
    assert embedded_evidence(body, "image/jpeg") == []


def iim_jpeg(datasets: list[tuple[int, int, bytes]]) -> bytes:
    """A JPEG with a Photoshop APP13 IPTC-NAA resource (0x0404) holding the datasets."""
    iim = b"".join(b"\x1c" + bytes([r, d]) + struct.pack(">H", len(v)) + v
                   for r, d, v in datasets)
    if len(iim) % 2:
        iim += b"\x00"
    resource = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(iim)) + iim
    segment = b"Photoshop 3.0\x00" + resource
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(out, "JPEG")
    body = out.getvalue()
    return body[:2] + b"\xff\xed" + struct.pack(">H", len(segment) + 2) + segment + body[2:]


def test_iim_byline_credit_title_and_a_licence_in_the_copyright_notice():
    body = iim_jpeg([(1, 90, b"\x1b%G"), (2, 5, b"Harbour at dawn"), (2, 80, "Zoë Ng".encode()),
                     (2, 110, b"Ng Photo"), (2, 116, b"CC BY-SA 4.0")])
    (piece,) = iim_evidence(read_iim(body))
    assert (piece.source, piece.licence) == (IPTC, "CC-BY-SA-4.0")
    assert (piece.creator, piece.credit, piece.title) == ("Zoë Ng", "Ng Photo", "Harbour at dawn")


def test_iim_copyright_notice_names_no_licence_but_reserving_all_rights_does():
    body = iim_jpeg([(2, 116, b"(c) 2024 Example Agency")])
    (piece,) = iim_evidence(read_iim(body))
    assert piece.licence is None and (piece.raw or "").endswith("(c) 2024 Example Agency")
    body = iim_jpeg([(2, 116, b"(c) 2024 Example Agency, all rights reserved")])
    (piece,) = iim_evidence(read_iim(body))
    assert piece.licence == "LicenseRef-All-Rights-Reserved" and "all rights reserved" in piece.raw


def test_unreadable_xmp_is_an_error_not_an_empty_answer():
    body = iim_jpeg([])
    bad = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta><rdf:RDF>"
    body = body[:2] + b"\xff\xe1" + struct.pack(">H", len(bad) + 2) + bad + body[2:]
    rights = read_rights(body, "image/jpeg")
    assert rights.error and "XMP" in rights.error and rights.evidence == []
    with pytest.raises(RightsUnreadable):
        embedded_evidence(body, "image/jpeg")


def test_the_licence_stage_reuses_the_c2pa_store_the_opt_out_check_read(shared_fixtures,
                                                                         monkeypatch):
    """One native C2PA read per image: the rights evidence comes from the opt-out's store."""
    import crawler.rights.embedded as embedded_module
    from crawler.rights.embedded import with_rights
    from crawler.signals.response import embedded_checks
    from pipeline.registry.config import Settings

    settings = Settings.model_validate(settings_doc())
    body = fixture(shared_fixtures, "c2pa", "adobe-20220124-C.jpg")
    expected = c2pa_evidence(read_c2pa_store(body, "image/jpeg"))
    assert expected  # the fixture's CreativeWork author
    checked = embedded_checks(body, "image/jpeg", settings)
    assert checked.c2pa_read and checked.c2pa_store is not None

    def no_second_read(*_args, **_kwargs):
        raise AssertionError("the C2PA store was read a second time")

    monkeypatch.setattr(embedded_module, "read_c2pa_store", no_second_read)
    rights = with_rights(checked, body, "image/jpeg").rights
    assert rights.error is None
    assert [e for e in rights.evidence if e.source == C2PA] == expected
