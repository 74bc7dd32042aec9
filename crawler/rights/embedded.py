"""Rights evidence in an image's bytes: XMP, IPTC IIM and C2PA creative-work assertions.

XMP comes already parsed (:class:`crawler.signals.xmp.XmpInfo`, shared with the opt-out checks).
``cc:license`` is licence evidence whatever it says (an unknown URL becomes a ``LicenseRef-``);
``xmpRights:WebStatement`` only when it is a known licence URL; ``xmpRights:UsageTerms`` and
``dc:rights`` only when their text names a licence. Everything else is kept as rights/credit text.

IIM (the legacy IPTC record, JPEG APP13 / TIFF) is read with Pillow's ``getiptcinfo`` on a
header-only open of the bytes; C2PA ``stds.schema-org.CreativeWork`` (and ``*.metadata``) of the
*active* manifest only (an ingredient's author is not this image's author), offline.
A block that is present but cannot be read raises :class:`RightsUnreadable`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from dataclasses import dataclass
from typing import Any

from PIL import Image, IptcImagePlugin

from crawler.rights.evidence import (
    C2PA,
    EMBEDDED,
    IPTC,
    XMP,
    Evidence,
    first,
    licence_evidence,
)
from crawler.signals.xmp import XmpError, XmpInfo, read_xmp

# IIM record 2 datasets (IPTC IIM 4.2).
IIM_OBJECT_NAME, IIM_BYLINE, IIM_CREDIT, IIM_SOURCE, IIM_COPYRIGHT = (
    (2, 5), (2, 80), (2, 110), (2, 115), (2, 116))
IIM_CODED_CHARSET = (1, 90)
_UTF8_ESCAPE = b"\x1b%G"
MAX_IIM_VALUE = 4096

_CREATIVE_WORK = re.compile(r"^stds\.schema-org\.CreativeWork(?:__\d+)?$")
_METADATA = re.compile(r"^(?:c2pa|cawg)\.metadata(?:__\d+)?$")


class RightsUnreadable(ValueError):
    """Rights metadata present but unreadable: the item is excluded with this message."""


def _describing(creator: str | None, credit: str | None, title: str | None,
                attribution_name: str | None = None,
                attribution_url: str | None = None) -> dict[str, Any]:
    return {"creator": creator, "credit": credit, "title": title,
            "attribution_name": attribution_name, "attribution_url": attribution_url}


def _with_text(source: str, field: str, licences: list[Evidence], texts: list[tuple[str, str]],
               described: dict[str, Any]) -> list[Evidence]:
    """Licence evidence, else one entry carrying the rights text and who to credit."""
    if licences:
        return licences
    if texts or any(described.values()):
        raw = "; ".join(f"{name}: {text}" for name, text in texts) or None
        return [Evidence(source, EMBEDDED, field, raw=raw, **described)]
    return []


# --------------------------------------------------------------------------- XMP


def xmp_evidence(info: XmpInfo | None) -> list[Evidence]:
    if info is None:
        return []
    described = _describing(
        creator=first(info.creator) or first(info.licensor_name),
        credit=first(info.credit),
        title=first(info.title),
        attribution_name=first(info.attribution_name),
        attribution_url=first(info.attribution_url),
    )
    found: list[Evidence] = []
    texts: list[tuple[str, str]] = []
    for value in info.licence:
        found.append(licence_evidence(XMP, EMBEDDED, "cc:license", value, **described))
    for value in info.web_statement:
        piece = licence_evidence(XMP, EMBEDDED, "xmpRights:WebStatement", value,
                                 url_only_if_known=True, **described)
        if piece.licence:
            found.append(piece)
        else:
            texts.append(("xmpRights:WebStatement", value))
    for field, values in (("xmpRights:UsageTerms", info.usage_terms),
                          ("dc:rights", info.rights)):
        for value in values:
            piece = licence_evidence(XMP, EMBEDDED, field, value, **described)
            if piece.licence:
                found.append(piece)
            else:
                texts.append((field, value))
    unique = list({(e.field, e.licence, e.raw): e for e in found}.values())
    return _with_text(XMP, "xmp", unique, texts, described)


# --------------------------------------------------------------------------- IIM


def _iim_text(value: bytes, utf8: bool) -> str | None:
    value = value[:MAX_IIM_VALUE]
    if utf8:
        text = value.decode("utf-8", errors="replace")
    else:
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = value.decode("latin-1")
    text = " ".join(text.replace("\x00", " ").split())
    return text or None


def read_iim(body: bytes) -> dict[tuple[int, int], list[str]]:
    """IIM datasets of a JPEG/TIFF (empty when it has none); raises :class:`RightsUnreadable`."""
    if b"8BIM" not in body and not body.startswith((b"II*\x00", b"MM\x00*")):
        return {}
    try:
        with Image.open(io.BytesIO(body)) as image:  # header only: no pixel decoding
            raw = IptcImagePlugin.getiptcinfo(image)
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on a bad IIM block
        raise RightsUnreadable(f"unreadable IPTC IIM: {type(exc).__name__}: {exc}") from None
    if not raw:
        return {}
    charset = raw.get(IIM_CODED_CHARSET)
    utf8 = isinstance(charset, bytes) and charset.startswith(_UTF8_ESCAPE)
    out: dict[tuple[int, int], list[str]] = {}
    for key, value in raw.items():
        items = value if isinstance(value, list) else [value]
        texts = [t for t in (_iim_text(v, utf8) for v in items if isinstance(v, bytes)) if t]
        if texts:
            out[key] = texts
    return out


def iim_evidence(datasets: dict[tuple[int, int], list[str]]) -> list[Evidence]:
    described = _describing(
        creator=first(datasets.get(IIM_BYLINE)),
        credit=first(datasets.get(IIM_CREDIT)),
        title=first(datasets.get(IIM_OBJECT_NAME)),
    )
    found: list[Evidence] = []
    texts: list[tuple[str, str]] = []
    for value in datasets.get(IIM_COPYRIGHT, []):
        piece = licence_evidence(IPTC, EMBEDDED, "2:116 Copyright Notice", value, **described)
        if piece.licence:
            found.append(piece)
        else:
            texts.append(("2:116 Copyright Notice", value))
    for value in datasets.get(IIM_SOURCE, []):
        texts.append(("2:115 Source", value))
    return _with_text(IPTC, "iim", found, texts, described)


# --------------------------------------------------------------------------- C2PA


def _names(value: Any) -> list[str]:
    """Names of a schema.org creator/author value (string, Person, list of them)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        name = value.get("name") or value.get("@id")
        return [str(name)] if name else []
    if isinstance(value, list):
        return [n for item in value for n in _names(item)]
    return []


def _text_of(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("url", "@id", "name", "@value"):
            if isinstance(value.get(key), str):
                return str(value[key])
    if isinstance(value, list):
        return next((t for t in (_text_of(v) for v in value) if t), None)
    return None


def read_c2pa_store(body: bytes, mime: str | None) -> dict[str, Any] | None:
    """The manifest store as JSON (offline), None when the bytes carry no C2PA JUMBF."""
    from crawler.signals.c2pa_manifest import has_c2pa_jumbf, offline_context

    if not has_c2pa_jumbf(body):
        return None
    import c2pa

    media = (mime or "").split(";", 1)[0].strip().lower() or None
    try:
        with c2pa.Reader(media, io.BytesIO(body), context=offline_context()) as reader:
            store: dict[str, Any] = json.loads(reader.json())
    except (c2pa.C2paError, ValueError, TypeError, OSError) as exc:
        raise RightsUnreadable(f"unreadable C2PA manifest: {type(exc).__name__}: {exc}") from None
    return store


def c2pa_evidence(store: dict[str, Any] | None) -> list[Evidence]:
    if not store:
        return []
    active = (store.get("manifests") or {}).get(store.get("active_manifest") or "") or {}
    found: list[Evidence] = []
    texts: list[tuple[str, str]] = []
    creators: list[str] = []
    credit = title = None
    licence_values: list[tuple[str, str]] = []
    for assertion in active.get("assertions") or []:
        label = str(assertion.get("label", ""))
        data = assertion.get("data")
        if not isinstance(data, dict):
            continue
        if _CREATIVE_WORK.match(label):
            creators += _names(data.get("author")) + _names(data.get("creator"))
            credit = credit or _text_of(data.get("creditText"))
            title = title or _text_of(data.get("name"))
            if (value := _text_of(data.get("license"))) is not None:
                licence_values.append((f"{label}.license", value))
            if (value := _text_of(data.get("copyrightNotice"))) is not None:
                texts.append((f"{label}.copyrightNotice", value))
        elif _METADATA.match(label):
            creators += _names(data.get("dc:creator"))
            for key in ("cc:license", "xmpRights:WebStatement", "xmpRights:UsageTerms",
                        "dc:rights"):
                if (value := _text_of(data.get(key))) is not None:
                    licence_values.append((f"{label}.{key}", value))
    described = _describing(creator=first(creators), credit=credit, title=title)
    for field, value in licence_values:
        piece = licence_evidence(C2PA, EMBEDDED, field, value,
                                 url_only_if_known=not field.endswith("license"), **described)
        if piece.licence:
            found.append(piece)
        else:
            texts.append((field, value))
    return _with_text(C2PA, "c2pa", found, texts, described)


# --------------------------------------------------------------------------- all of it


def embedded_evidence(body: bytes, mime: str | None, xmp: XmpInfo | None = None, *,
                      xmp_read: bool = False, c2pa_store: dict[str, Any] | None = None,
                      c2pa_read: bool = False) -> list[Evidence]:
    """XMP, then IIM, then C2PA evidence of one image.

    ``xmp_read``: the caller already parsed the XMP (``xmp`` may then be None: there is none);
    otherwise it is read here. ``c2pa_read`` likewise for the embedded C2PA store (the opt-out
    check read it: the native reader is the costly part). Raises :class:`RightsUnreadable` for
    an unreadable block.
    """
    if not xmp_read:
        try:
            xmp = read_xmp(body)
        except XmpError as exc:
            raise RightsUnreadable(f"unreadable XMP: {exc}") from None
    store = c2pa_store if c2pa_read else read_c2pa_store(body, mime)
    return xmp_evidence(xmp) + iim_evidence(read_iim(body)) + c2pa_evidence(store)


def disclosure(info: XmpInfo | None) -> tuple[str | None, str | None]:
    """Raw ``plus:MinorModelAgeDisclosure`` and ``plus:ModelReleaseStatus`` values."""
    if info is None:
        return None, None
    return (" | ".join(info.minor_age) or None, " | ".join(info.model_release) or None)


@dataclass(frozen=True)
class EmbeddedRights:
    """Rights evidence of one image's bytes, or why it could not be read."""

    evidence: list[Evidence]
    error: str | None = None
    minor_age: str | None = None  # raw plus:MinorModelAgeDisclosure
    model_release: str | None = None  # raw plus:ModelReleaseStatus


def read_rights(body: bytes, mime: str | None, xmp: XmpInfo | None = None, *,
                xmp_read: bool = False, c2pa_store: dict[str, Any] | None = None,
                c2pa_read: bool = False) -> EmbeddedRights:
    """:func:`embedded_evidence` that never raises (off the reactor thread, with the decode)."""
    if not xmp_read:
        try:
            xmp, xmp_read = read_xmp(body), True
        except XmpError as exc:
            return EmbeddedRights([], f"unreadable XMP: {exc}")
    minor_age, model_release = disclosure(xmp)
    try:
        evidence = embedded_evidence(body, mime, xmp, xmp_read=True, c2pa_store=c2pa_store,
                                     c2pa_read=c2pa_read)
    except RightsUnreadable as exc:
        return EmbeddedRights([], str(exc), minor_age, model_release)
    return EmbeddedRights(evidence, None, minor_age, model_release)


def with_rights(embedded: Any, body: bytes, mime: str | None) -> Any:
    """An ``EmbeddedMetadata`` (crawler.signals.response) with its ``rights`` read, reusing
    its parsed XMP."""
    rights = read_rights(body, mime, embedded.xmp, xmp_read=embedded.xmp_read,
                         c2pa_store=embedded.c2pa_store, c2pa_read=embedded.c2pa_read)
    return dataclasses.replace(embedded, rights=rights)


__all__ = ["EmbeddedRights", "RightsUnreadable", "c2pa_evidence", "disclosure",
           "embedded_evidence", "iim_evidence", "read_c2pa_store", "read_iim", "read_rights",
           "with_rights", "xmp_evidence"]
