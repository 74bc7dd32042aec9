"""Embedded XMP: IPTC/PLUS data mining, minors, rights; hostile packets (crawler.signals.xmp)."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from crawler.signals import ALLOW, DENY, NONE, OFF
from crawler.signals.xmp import (
    CHECK,
    XmpError,
    check_xmp,
    find_packets,
    read_xmp,
    vocab_code,
    xmp_signals,
    xmp_unreadable,
)
from crawler.signals.xmppackets import MAX_PACKET_BYTES
from pipeline.runs.reasons import ALL, IPTC_DATA_MINING_PROHIBITED, MINOR_DEPICTED

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "images"


def fixture(*parts: str) -> bytes:
    path = FIXTURES.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"{path} is absent (../shared/fixtures not checked out)")
    return path.read_bytes()


def packet(body: str, *, attributes: str = "", namespaces: str = "") -> bytes:
    """A complete XMP packet with one rdf:Description holding ``body``."""
    return (
        "<?xpacket begin='\ufeff' id='W5M0MpCehiHzreSzNTczkc9d'?>\n"
        "<x:xmpmeta xmlns:x='adobe:ns:meta/'>\n"
        "<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>\n"
        "<rdf:Description rdf:about=''\n"
        " xmlns:plus='http://ns.useplus.org/ldf/xmp/1.0/'\n"
        " xmlns:dc='http://purl.org/dc/elements/1.1/'\n"
        " xmlns:dcterms='http://purl.org/dc/terms/'\n"
        " xmlns:xmpRights='http://ns.adobe.com/xap/1.0/rights/'\n"
        f" xmlns:cc='http://creativecommons.org/ns#' {namespaces}\n"
        f" {attributes}>\n{body}\n</rdf:Description>\n</rdf:RDF>\n</x:xmpmeta>\n"
        "<?xpacket end='w'?>"
    ).encode()


def tiny_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(out, "JPEG")
    return out.getvalue()


def jpeg_with(*segments: bytes) -> bytes:
    """A real JPEG with APP1 segments inserted after SOI."""
    base = tiny_jpeg()
    app1 = b"".join(b"\xff\xe1" + struct.pack(">H", len(s) + 2) + s for s in segments)
    return base[:2] + app1 + base[2:]


def png_with_itxt(xmp: bytes, *, compressed: bool) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, "PNG")
    data = out.getvalue()
    text = zlib.compress(xmp) if compressed else xmp
    body = b"XML:com.adobe.xmp\x00" + bytes([int(compressed), 0]) + b"\x00\x00" + text
    chunk = struct.pack(">I", len(body)) + b"iTXt" + body
    chunk += struct.pack(">I", zlib.crc32(b"iTXt" + body) & 0xFFFFFFFF)
    return data[:33] + chunk + data[33:]  # after the signature and IHDR


def webp_with(xmp: bytes) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, "WEBP")
    data = out.getvalue()
    chunk = b"XMP " + struct.pack("<I", len(xmp)) + xmp + (b"\x00" if len(xmp) % 2 else b"")
    body = data[12:] + chunk
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


PROHIBITED_URI = "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-GENAIMLTRAINING"


# --------------------------------------------------------------------------- real fixtures


def test_exiv2_attribute_form_adult_model_and_release_recorded() -> None:
    info = read_xmp(fixture("iptc_xmp", "exiv2_issue_1959_poc.xmp"))
    assert info is not None
    assert info.minor_age == ("http://ns.useplus.org/ldf/vocab/AG-A25",)
    assert info.model_release == ("http://ns.useplus.org/ldf/vocab/MR-NAP",)
    assert info.web_statement == ("http://www.example.com/WebStatement/testing123",)
    assert info.usage_terms and info.creator and info.rights
    assert info.data_mining == ()
    mining, minors = xmp_signals(info, exclude_minors=True)
    assert mining.check == CHECK and mining.decision == NONE
    assert minors.decision == ALLOW  # AG-A25 is not a minor
    assert "MR-NAP" in (minors.detail or "")
    assert "ModelReleaseStatus" in (minors.found or "")


def test_mediawiki_literal_cc_license_and_multilingual_usage_terms() -> None:
    info = read_xmp(fixture("iptc_xmp", "mediawiki_xmp_7.xmp"))
    assert info is not None
    assert info.licence == ("http://creativecommons.com/cc-by-2.9",)
    assert info.web_statement == ("http://example.com/web_statement",)
    assert info.usage_terms == ("do whatever you want", "Do whatever you want in british english")


def test_exiftool_plus_sidecar_rights_fields() -> None:
    info = read_xmp(fixture("iptc_xmp", "exiftool_PLUS.xmp"))
    assert info is not None
    assert info.creator == ("Phil Harvey",)
    assert info.rights == ("Copyright \u00a9 2016 Phil Harvey",)
    assert [r.decision for r in xmp_signals(info, True)] == [NONE, NONE]


def test_exiftool_jpeg_with_utf16_embedded_xmp() -> None:
    data = fixture("iptc_xmp", "exiftool_XMP.jpg")
    info = read_xmp(data)
    assert info is not None
    assert info.source == "jpeg-app1"
    assert info.web_statement == ("https://exiftool.org/",)
    assert info.creator == ("Phil Harvey",)
    assert info.rights == ("Copyright 2004 Phil Harvey",)


def test_plain_camera_jpeg_has_xmp_without_rights() -> None:
    info = read_xmp(fixture("c2pa", "adobe-20220124-A.jpg"))
    assert info is not None
    assert info.data_mining == () and info.licence == ()


def test_c2pa_provenance_pointer_is_read() -> None:
    info = read_xmp(fixture("c2pa", "c2pa-rs_adobe_connected_identities.jpg"))
    assert info is not None
    assert info.provenance == (
        "https://cai-manifests-stage.adobe.com/manifests/urn-uuid-19e83793-4427-4161-b682-a53b975a6f72",
    )


# --------------------------------------------------------------------------- data mining


@pytest.mark.parametrize(
    "xmp",
    [
        packet("", attributes=f"plus:DataMining='{PROHIBITED_URI}'"),
        packet(f"<plus:DataMining rdf:resource='{PROHIBITED_URI}'/>"),
        packet(f"<plus:DataMining>{PROHIBITED_URI}</plus:DataMining>"),
        packet("<plus:DataMining>DMI-PROHIBITED</plus:DataMining>"),
        packet("<plus:DataMining>dmi-prohibited-aimltraining</plus:DataMining>"),
        packet(
            "<plus:DataMining>http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-SEECONSTRAINT"
            "</plus:DataMining><plus:OtherConstraints><rdf:Alt><rdf:li xml:lang='x-default'>"
            "No AI training</rdf:li></rdf:Alt></plus:OtherConstraints>"
        ),
    ],
)
def test_data_mining_prohibited_refuses_in_every_form(xmp: bytes) -> None:
    info = read_xmp(jpeg_with(b"http://ns.adobe.com/xap/1.0/\x00" + xmp))
    assert info is not None
    mining = xmp_signals(info, exclude_minors=True)[0]
    assert mining.decision == DENY
    assert mining.reason == IPTC_DATA_MINING_PROHIBITED and mining.reason in ALL
    assert mining.found and "DataMining" in mining.found
    assert not mining.error


def test_other_constraints_are_kept_as_evidence() -> None:
    xmp = packet(
        "<plus:DataMining>DMI-PROHIBITED-SEECONSTRAINT</plus:DataMining>"
        "<plus:OtherConstraints><rdf:Alt><rdf:li xml:lang='x-default'>No AI training"
        "</rdf:li></rdf:Alt></plus:OtherConstraints>"
    )
    mining = xmp_signals(read_xmp(xmp), True)[0]
    assert "No AI training" in (mining.detail or "")


def test_data_mining_allowed_and_unspecified() -> None:
    allowed = read_xmp(
        packet("<plus:DataMining rdf:resource='http://ns.useplus.org/ldf/vocab/DMI-ALLOWED'/>")
    )
    assert xmp_signals(allowed, True)[0].decision == ALLOW
    unspecified = read_xmp(packet("", attributes="plus:DataMining='DMI-UNSPECIFIED'"))
    assert xmp_signals(unspecified, True)[0].decision == NONE


def test_prohibited_wins_over_allowed_in_another_description() -> None:
    xmp = packet(
        "<plus:DataMining>DMI-ALLOWED</plus:DataMining>",
        attributes=f"plus:DataMining='{PROHIBITED_URI}'",
    )
    assert xmp_signals(read_xmp(xmp), True)[0].decision == DENY


def test_unknown_data_mining_value_is_not_permission() -> None:
    result = xmp_signals(read_xmp(packet("<plus:DataMining>maybe</plus:DataMining>")), True)[0]
    assert result.decision == DENY and result.error
    assert result.reason == IPTC_DATA_MINING_PROHIBITED


def test_vocab_code() -> None:
    assert vocab_code(" http://ns.useplus.org/ldf/vocab/DMI-ALLOWED ") == "DMI-ALLOWED"
    assert vocab_code("plus:ag-u14") == "AG-U14"


# --------------------------------------------------------------------------- minors


@pytest.mark.parametrize("code", ["AG-U14", "AG-A15", "AG-A16", "AG-A17"])
def test_minor_disclosure_excludes_when_exclude_minors(code: str) -> None:
    uri = f"http://ns.useplus.org/ldf/vocab/{code}"
    xmp = packet(
        f"<plus:MinorModelAgeDisclosure rdf:resource='{uri}'/>",
        attributes="plus:ModelReleaseStatus='http://ns.useplus.org/ldf/vocab/MR-LMR'",
    )
    mining, minors = xmp_signals(read_xmp(xmp), exclude_minors=True)
    assert mining.decision == NONE
    assert minors.decision == DENY
    assert minors.reason == MINOR_DEPICTED and minors.reason in ALL
    assert code in (minors.detail or "") and "MR-LMR" in (minors.detail or "")
    off = xmp_signals(read_xmp(xmp), exclude_minors=False)[1]
    assert off.decision == OFF and code in (off.found or "")


@pytest.mark.parametrize(
    ("code", "decision"), [("AG-A18", ALLOW), ("AG-A25", ALLOW), ("AG-UNK", NONE)]
)
def test_adult_or_unknown_age(code: str, decision: str) -> None:
    xmp = packet(f"<plus:MinorModelAgeDisclosure>{code}</plus:MinorModelAgeDisclosure>")
    assert xmp_signals(read_xmp(xmp), True)[1].decision == decision


def test_unreadable_age_is_not_an_adult() -> None:
    xmp = packet("<plus:MinorModelAgeDisclosure>teen</plus:MinorModelAgeDisclosure>")
    result = xmp_signals(read_xmp(xmp), True)[1]
    assert result.decision == DENY and result.error and result.reason == MINOR_DEPICTED


# --------------------------------------------------------------------------- rights fields


def test_rights_fields_in_element_and_attribute_forms() -> None:
    xmp = packet(
        "<dc:creator><rdf:Seq><rdf:li>Ada</rdf:li><rdf:li>Grace</rdf:li></rdf:Seq></dc:creator>"
        "<dc:rights><rdf:Alt><rdf:li xml:lang='x-default'>CC BY 4.0, Ada</rdf:li></rdf:Alt>"
        "</dc:rights>"
        "<cc:license rdf:resource='https://creativecommons.org/licenses/by/4.0/'/>"
        "<xmpRights:UsageTerms><rdf:Alt><rdf:li xml:lang='x-default'>Attribution required"
        "</rdf:li></rdf:Alt></xmpRights:UsageTerms>"
        "<dcterms:provenance rdf:parseType='Resource'><rdf:value>https://m.example/x.c2pa"
        "</rdf:value></dcterms:provenance>",
        attributes="xmpRights:WebStatement='https://example.org/licence'",
    )
    info = read_xmp(xmp)
    assert info is not None
    assert info.creator == ("Ada", "Grace")
    assert info.rights == ("CC BY 4.0, Ada",)
    assert info.licence == ("https://creativecommons.org/licenses/by/4.0/",)
    assert info.web_statement == ("https://example.org/licence",)
    assert info.usage_terms == ("Attribution required",)
    assert info.provenance == ("https://m.example/x.c2pa",)


# --------------------------------------------------------------------------- containers


def test_png_itxt_plain_and_compressed() -> None:
    xmp = packet("<plus:DataMining>DMI-PROHIBITED</plus:DataMining>")
    for compressed in (False, True):
        info = read_xmp(png_with_itxt(xmp, compressed=compressed))
        assert info is not None and info.source == "png-itxt"
        assert xmp_signals(info, True)[0].decision == DENY


def test_png_zip_bomb_is_refused() -> None:
    bomb = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>" + b" " * (50 * 1024 * 1024) + b"</x:xmpmeta>"
    data = png_with_itxt(bomb, compressed=True)
    assert len(data) < 200_000
    started = time.perf_counter()
    with pytest.raises(XmpError, match="limit"):
        read_xmp(data)
    assert time.perf_counter() - started < 2.0


def test_webp_xmp_chunk() -> None:
    info = read_xmp(webp_with(packet("<plus:DataMining>DMI-ALLOWED</plus:DataMining>")))
    assert info is not None and info.source == "webp"
    assert xmp_signals(info, True)[0].decision == ALLOW


def test_jpeg_extended_xmp_is_reassembled() -> None:
    extended = packet("<plus:DataMining>DMI-PROHIBITED</plus:DataMining>")
    guid = b"0123456789ABCDEF0123456789ABCDEF"
    header = b"http://ns.adobe.com/xmp/extension/\x00" + guid + struct.pack(">I", len(extended))
    half = len(extended) // 2
    parts = [header + struct.pack(">I", 0) + extended[:half]]
    parts.append(header + struct.pack(">I", half) + extended[half:])
    main = b"http://ns.adobe.com/xap/1.0/\x00" + packet("<dc:creator>Ada</dc:creator>")
    info = read_xmp(jpeg_with(main, parts[1], parts[0]))
    assert info is not None
    assert info.source == "jpeg-app1+jpeg-extended-xmp"
    assert xmp_signals(info, True)[0].decision == DENY
    with pytest.raises(XmpError, match="incomplete"):
        read_xmp(jpeg_with(main, parts[0]))


def test_image_without_xmp() -> None:
    assert read_xmp(tiny_jpeg()) is None
    assert read_xmp(b"GIF89a" + b"\x00" * 100) is None
    assert xmp_signals(None, True)[0].decision == NONE
    assert xmp_signals(None, False)[1].decision == OFF


def test_generic_scan_for_other_containers() -> None:
    data = b"II*\x00" + b"\x00" * 64 + packet("<plus:DataMining>DMI-PROHIBITED</plus:DataMining>")
    assert find_packets(data)[0][0] == "scan"
    assert xmp_signals(read_xmp(data), True)[0].decision == DENY


def test_utf16_packet_found_by_scan() -> None:
    xmp = packet("<plus:DataMining>DMI-PROHIBITED</plus:DataMining>").decode("utf-8")
    data = b"\x00\x01garbage" + xmp.encode("utf-16-le")
    assert xmp_signals(read_xmp(data), True)[0].decision == DENY


# --------------------------------------------------------------------------- hostile input

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF
 xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'><rdf:Description
 xmlns:dc='http://purl.org/dc/elements/1.1/'><dc:rights>&lol9;</dc:rights>
</rdf:Description></rdf:RDF></x:xmpmeta>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE x [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF
 xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'><rdf:Description
 xmlns:dc='http://purl.org/dc/elements/1.1/'><dc:rights>&xxe;</dc:rights>
</rdf:Description></rdf:RDF></x:xmpmeta>"""


@pytest.mark.parametrize("hostile", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
def test_entity_attacks_fail_closed_fast(hostile: bytes) -> None:
    data = jpeg_with(b"http://ns.adobe.com/xap/1.0/\x00" + hostile)
    started = time.perf_counter()
    with pytest.raises(XmpError, match="refused"):
        read_xmp(data)
    info, results = check_xmp(data, exclude_minors=True)
    assert time.perf_counter() - started < 1.0
    assert info is None
    [result] = results
    assert result.decision == DENY and result.error
    assert result.reason == IPTC_DATA_MINING_PROHIBITED
    assert (result.detail or "").startswith("unreadable XMP: ")
    assert "root:" not in (result.detail or "")


def test_malformed_and_truncated_packets_fail_closed() -> None:
    broken = packet("<plus:DataMining>DMI-ALLOWED</plus:DataMining>")[:-60]
    with pytest.raises(XmpError):
        read_xmp(b"II*\x00" + broken)
    with pytest.raises(XmpError, match="well-formed"):
        read_xmp(jpeg_with(b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta><unclosed></x:xmpmeta>"))
    assert xmp_unreadable(XmpError("boom"))[0].detail == "unreadable XMP: boom"


def test_oversized_packet_is_refused_unparsed() -> None:
    big = packet("<dc:rights>" + "x" * (MAX_PACKET_BYTES + 10) + "</dc:rights>")
    started = time.perf_counter()
    with pytest.raises(XmpError, match="limit"):
        read_xmp(b"II*\x00" + big)
    assert time.perf_counter() - started < 1.0


def test_two_megabyte_garbage_completes_quickly() -> None:
    started = time.perf_counter()
    assert read_xmp(b"\xff\xd8" + bytes(range(256)) * 8192) is None
    assert read_xmp(b"\x00" * (2 * 1024 * 1024)) is None
    assert time.perf_counter() - started < 1.0
