"""Embedded XMP, read safely: IPTC/PLUS data-mining and minor-model fields, rights and licence.

Packets are found, size-bounded, by :mod:`crawler.signals.xmppackets` (JPEG APP1 and Extended
XMP, PNG iTXt, WebP, or a marker scan for other containers and sidecar files) and parsed with
defusedxml with DTDs forbidden, so entity expansion ("billion laughs") and external entities
(XXE) are refused before expat does any work.

Fields (each in attribute form or element form, as a literal, an ``rdf:resource`` or the items
of an ``rdf:Bag``/``Seq``/``Alt``):

* ``plus:DataMining``: any ``DMI-PROHIBITED*`` value, full URI or bare code, refuses
  (``iptc_data_mining_prohibited``); ``DMI-ALLOWED`` allows; ``DMI-UNSPECIFIED`` declares nothing;
  a value outside the PLUS vocabulary is unreadable and refuses.
* ``plus:MinorModelAgeDisclosure``: ``AG-U14`` and ``AG-A15``..``AG-A17`` disclose a minor
  (``minor_depicted`` when ``exclude_minors``); ``plus:ModelReleaseStatus`` is kept as evidence.
* ``dc:creator``, ``dc:rights``, ``dc:title``, ``xmpRights:WebStatement``,
  ``xmpRights:UsageTerms``, ``cc:license``, ``cc:attributionName``, ``cc:attributionURL``,
  ``plus:Licensor`` (``plus:LicensorName``, ``plus:LicensorURL`` of its items),
  ``photoshop:Credit`` and ``dcterms:provenance`` (where a C2PA manifest lives) for the licence
  and provenance stages (:mod:`crawler.rights.embedded`).

An unreadable packet raises :class:`XmpError`; DESIGN.md: "per-item metadata that fails to parse
excludes the item, with the parse error in detail" (:func:`xmp_unreadable`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from crawler.signals import ALLOW, DENY, NONE, OFF, SignalResult, clip, unreadable
from crawler.signals.xmppackets import XmpError, find_packets
from pipeline.runs.reasons import IPTC_DATA_MINING_PROHIBITED, MINOR_DEPICTED

CHECK = "xmp"

NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_PLUS = "http://ns.useplus.org/ldf/xmp/1.0/"
NS_DC = "http://purl.org/dc/elements/1.1/"
NS_DCTERMS = "http://purl.org/dc/terms/"
NS_XMP_RIGHTS = "http://ns.adobe.com/xap/1.0/rights/"
NS_CC = "http://creativecommons.org/ns#"
NS_PHOTOSHOP = "http://ns.adobe.com/photoshop/1.0/"

_RDF_RESOURCE = f"{{{NS_RDF}}}resource"
_RDF_VALUE = f"{{{NS_RDF}}}value"
_RDF_LI = f"{{{NS_RDF}}}li"
_RDF_CONTAINERS = frozenset(f"{{{NS_RDF}}}{name}" for name in ("Bag", "Seq", "Alt"))
_RDF_DESCRIPTION = f"{{{NS_RDF}}}Description"

_MINOR_CODES = frozenset({"AG-U14", "AG-A15", "AG-A16", "AG-A17"})
_AGE_CODE = re.compile(r"^AG-([AU])(\d{1,3})$")


@dataclass(frozen=True)
class XmpInfo:
    """What Clearance reads from an image's XMP (each field: every value found, in order)."""

    source: str  # where the packet(s) came from: jpeg-app1, png-itxt, webp, scan, ...
    size: int  # total bytes of XMP parsed
    data_mining: tuple[str, ...] = ()
    other_constraints: tuple[str, ...] = ()  # plus:OtherConstraints (what SEECONSTRAINT points at)
    minor_age: tuple[str, ...] = ()
    model_release: tuple[str, ...] = ()
    creator: tuple[str, ...] = ()
    rights: tuple[str, ...] = ()
    web_statement: tuple[str, ...] = ()
    usage_terms: tuple[str, ...] = ()
    licence: tuple[str, ...] = ()  # cc:license
    provenance: tuple[str, ...] = ()  # dcterms:provenance (C2PA manifest location)
    title: tuple[str, ...] = ()  # dc:title (every language alternative)
    licensor_name: tuple[str, ...] = ()  # plus:Licensor items' plus:LicensorName
    licensor_url: tuple[str, ...] = ()  # plus:Licensor items' plus:LicensorURL
    credit: tuple[str, ...] = ()  # photoshop:Credit (IPTC Core "Credit Line")
    attribution_name: tuple[str, ...] = ()  # cc:attributionName
    attribution_url: tuple[str, ...] = ()  # cc:attributionURL
    packets: tuple[str, ...] = field(default=(), repr=False)  # the decoded packets, as evidence


_FIELDS: dict[str, tuple[str, str]] = {
    "data_mining": (NS_PLUS, "DataMining"),
    "other_constraints": (NS_PLUS, "OtherConstraints"),
    "minor_age": (NS_PLUS, "MinorModelAgeDisclosure"),
    "model_release": (NS_PLUS, "ModelReleaseStatus"),
    "creator": (NS_DC, "creator"),
    "rights": (NS_DC, "rights"),
    "web_statement": (NS_XMP_RIGHTS, "WebStatement"),
    "usage_terms": (NS_XMP_RIGHTS, "UsageTerms"),
    "licence": (NS_CC, "license"),
    "provenance": (NS_DCTERMS, "provenance"),
    "title": (NS_DC, "title"),
    "licensor_name": (NS_PLUS, "LicensorName"),
    "licensor_url": (NS_PLUS, "LicensorURL"),
    "credit": (NS_PHOTOSHOP, "Credit"),
    "attribution_name": (NS_CC, "attributionName"),
    "attribution_url": (NS_CC, "attributionURL"),
}


# --------------------------------------------------------------------------- reading fields


def _text(element: Element) -> str | None:
    text = (element.text or "").strip()
    return text or None


def _struct_value(element: Element) -> str | None:
    """``rdf:value`` of a struct (parseType="Resource" or a nested rdf:Description)."""
    value = element.get(_RDF_VALUE)
    if value is not None:
        return value.strip()
    for child in element:
        if child.tag == _RDF_VALUE:
            return _text(child)
        if child.tag == _RDF_DESCRIPTION:
            return _struct_value(child)
    return None


def _item_value(element: Element) -> str | None:
    resource = element.get(_RDF_RESOURCE)
    if resource is not None:
        return resource.strip()
    if len(element) == 0:
        return _text(element)
    return _struct_value(element)


def _property_values(element: Element) -> list[str]:
    """Values of one property element: literal, rdf:resource, container items or rdf:value."""
    containers = [child for child in element if child.tag in _RDF_CONTAINERS]
    if containers:
        items = [_item_value(li) for c in containers for li in c if li.tag == _RDF_LI]
        return [item for item in items if item]
    value = _item_value(element)
    return [value] if value else []


def _values(root: Element, namespace: str, local: str) -> list[str]:
    name = f"{{{namespace}}}{local}"
    found: list[str] = []
    for element in root.iter():
        attribute = element.get(name)
        if attribute is not None and attribute.strip():
            found.append(attribute.strip())
    for element in root.iter(name):
        found.extend(_property_values(element))
    return found


def _parse(packet: bytes) -> Element:
    try:
        return SafeET.fromstring(
            packet, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise XmpError(f"XMP refused: {type(exc).__name__} ({exc})") from None
    except (ParseError, ValueError, UnicodeError, RecursionError) as exc:
        raise XmpError(f"XMP is not well-formed XML: {exc}") from None


def _decode(packet: bytes) -> str:
    for encoding in ("utf-8", "utf-16"):
        try:
            return packet.decode(encoding)
        except UnicodeDecodeError:
            continue
    return packet.decode("latin-1")


def parse_packets(packets: list[tuple[str, bytes]]) -> XmpInfo | None:
    """Fields from already-extracted packets (e.g. a sidecar file's bytes as one packet)."""
    if not packets:
        return None
    roots = [_parse(packet) for _, packet in packets]
    values = {
        attr: tuple(dict.fromkeys(v for root in roots for v in _values(root, ns, local)))
        for attr, (ns, local) in _FIELDS.items()
    }
    return XmpInfo(
        source="+".join(dict.fromkeys(where for where, _ in packets)),
        size=sum(len(packet) for _, packet in packets),
        packets=tuple(_decode(packet) for _, packet in packets),
        **values,
    )


def read_xmp(data: bytes) -> XmpInfo | None:
    """The XMP of an image (or a sidecar ``.xmp``); None if it has none.

    Raises :class:`XmpError` when a packet is present but cannot be read.
    """
    return parse_packets(find_packets(data))


# --------------------------------------------------------------------------- decisions


def vocab_code(value: str) -> str:
    """The bare code of a PLUS vocabulary value, upper-cased.

    ``http://ns.useplus.org/ldf/vocab/DMI-ALLOWED``, ``plus:DMI-ALLOWED`` -> ``DMI-ALLOWED``.
    """
    code = value.strip()
    code = code.rsplit("/", 1)[-1].rsplit("#", 1)[-1]
    if ":" in code:
        code = code.rsplit(":", 1)[-1]
    return code.upper()


def _data_mining(info: XmpInfo) -> SignalResult:
    values = info.data_mining
    if not values:
        return SignalResult(CHECK, NONE, detail="XMP has no plus:DataMining")
    found = clip("plus:DataMining=" + " | ".join(values))
    codes = [vocab_code(v) for v in values]
    constraints = (
        f"; plus:OtherConstraints: {' | '.join(info.other_constraints)}"
        if info.other_constraints
        else ""
    )
    prohibited = [c for c in codes if c.startswith("DMI-PROHIBITED")]
    if prohibited:
        return SignalResult(
            CHECK,
            DENY,
            found=found,
            reason=IPTC_DATA_MINING_PROHIBITED,
            detail=f"plus:DataMining {', '.join(prohibited)}: data mining prohibited{constraints}",
        )
    unknown = [c for c in codes if c not in ("DMI-ALLOWED", "DMI-UNSPECIFIED")]
    if unknown:
        return unreadable(
            CHECK,
            IPTC_DATA_MINING_PROHIBITED,
            f"plus:DataMining value(s) {', '.join(unknown)} are not in the PLUS vocabulary; "
            "an unreadable value is not permission",
            found=found,
        )
    if "DMI-ALLOWED" in codes:
        return SignalResult(CHECK, ALLOW, found=found, detail="plus:DataMining DMI-ALLOWED")
    return SignalResult(CHECK, NONE, found=found, detail="plus:DataMining DMI-UNSPECIFIED")


def _is_minor(code: str) -> bool | None:
    """True for a disclosed minor, False for a disclosed adult, None for unknown/unparsable."""
    if code in _MINOR_CODES:
        return True
    match = _AGE_CODE.match(code)
    if not match:
        return None
    kind, years = match.group(1), int(match.group(2))
    return years <= 18 if kind == "U" else years < 18


def _minors(info: XmpInfo, exclude_minors: bool) -> SignalResult:
    release = (
        f"; plus:ModelReleaseStatus {', '.join(vocab_code(v) for v in info.model_release)}"
        if info.model_release
        else ""
    )
    found_parts = []
    if info.minor_age:
        found_parts.append("plus:MinorModelAgeDisclosure=" + " | ".join(info.minor_age))
    if info.model_release:
        found_parts.append("plus:ModelReleaseStatus=" + " | ".join(info.model_release))
    found = clip("; ".join(found_parts)) if found_parts else None
    if not exclude_minors:
        return SignalResult(CHECK, OFF, found=found, detail=f"exclude_minors is off{release}")
    if not info.minor_age:
        return SignalResult(CHECK, NONE, found=found, detail=f"XMP discloses no model age{release}")
    codes = [vocab_code(v) for v in info.minor_age]
    verdicts = {code: _is_minor(code) for code in codes}
    minors = [code for code, minor in verdicts.items() if minor]
    if minors:
        return SignalResult(
            CHECK,
            DENY,
            found=found,
            reason=MINOR_DEPICTED,
            detail=f"plus:MinorModelAgeDisclosure {', '.join(minors)} discloses a minor{release}",
        )
    unreadable_codes = [c for c, minor in verdicts.items() if minor is None and c != "AG-UNK"]
    if unreadable_codes:
        return unreadable(
            CHECK,
            MINOR_DEPICTED,
            f"plus:MinorModelAgeDisclosure {', '.join(unreadable_codes)} is not in the PLUS "
            f"vocabulary; an unreadable age is not an adult{release}",
            found=found,
        )
    if all(minor is False for minor in verdicts.values()):
        return SignalResult(
            CHECK,
            ALLOW,
            found=found,
            detail=f"plus:MinorModelAgeDisclosure {', '.join(codes)}: adult model{release}",
        )
    return SignalResult(CHECK, NONE, found=found, detail=f"model age unknown (AG-UNK){release}")


def xmp_signals(info: XmpInfo | None, exclude_minors: bool) -> list[SignalResult]:
    """``[data-mining result, minor-model result]``, both with check ``"xmp"``."""
    if info is None:
        return [
            SignalResult(CHECK, NONE, detail="no XMP"),
            SignalResult(
                CHECK, NONE if exclude_minors else OFF, detail="no XMP: no model age disclosed"
            ),
        ]
    return [_data_mining(info), _minors(info, exclude_minors)]


def xmp_unreadable(error: Exception) -> list[SignalResult]:
    """The results for an item whose XMP could not be read: excluded, error in detail."""
    return [unreadable(CHECK, IPTC_DATA_MINING_PROHIBITED, f"unreadable XMP: {error}")]


def check_xmp(data: bytes, exclude_minors: bool) -> tuple[XmpInfo | None, list[SignalResult]]:
    """Read and decide in one call: ``(info or None, results)``; never raises on bad XMP."""
    try:
        info = read_xmp(data)
    except XmpError as exc:
        return None, xmp_unreadable(exc)
    return info, xmp_signals(info, exclude_minors)
