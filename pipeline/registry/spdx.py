"""SPDX licences: parsing, and normalisation of licence URLs, ids and names to SPDX.

Parsing is license-expression's job (SPDX list, case folding, `+` and `WITH`); this module adds
what a dataset builder needs on top: licence URLs and common names found in pages and metadata
mapped to SPDX ids (:func:`normalise_licence`).

Nothing is guessed: a licence SPDX does not list keeps its identity as a ``LicenseRef-`` id
(``LicenseRef-CC-BY-2.0-DE`` for a Creative Commons port SPDX lacks, ``LicenseRef-<slug>`` for
any other URL) and is allowed only where the allow list names it verbatim. What the allow
list admits, the presets and the ranking are :mod:`pipeline.registry.licences`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from license_expression import (
    ExpressionError,
    LicenseExpression,
    get_spdx_licensing,
)


class LicenceError(ValueError):
    """A licence id or expression that is not valid SPDX."""


@dataclass(frozen=True)
class NormalisedLicence:
    """What a licence statement names: ``spdx`` (canonical id/expression, ``LicenseRef-...`` when
    SPDX does not list it, None when the text names no licence), ``url`` (the input, when it
    was a URL) and ``known`` (True only when every id is on the SPDX list)."""

    spdx: str | None
    url: str | None = None
    known: bool = False


@lru_cache(maxsize=1)
def _licensing():  # type: ignore[no-untyped-def]
    return get_spdx_licensing()


# SPDX 2.3 Annex D: `LicenseRef-idstring`, optionally `DocumentRef-idstring:` before it.
_REF = re.compile(r"^(?:DocumentRef-[A-Za-z0-9.-]+:)?LicenseRef-[A-Za-z0-9.-]+$")
_REF_PREFIX = re.compile(r"(?i)\b(documentref|licenseref)-")


def _ref_prefix(match: re.Match[str]) -> str:
    return "DocumentRef-" if match[1].lower() == "documentref" else "LicenseRef-"


@lru_cache(maxsize=4096)
def parse_expression(value: str) -> LicenseExpression:
    text = _REF_PREFIX.sub(_ref_prefix, value.strip())
    if not text:
        raise LicenceError("empty licence expression")
    try:
        parsed = _licensing().parse(text, validate=False, strict=True)
    except ExpressionError as exc:
        raise LicenceError(
            f"not a known SPDX licence id or expression: {value!r} ({exc})"
        ) from None
    if parsed is None:
        raise LicenceError(f"empty licence expression: {value!r}")
    unknown = [k for k in _licensing().unknown_license_keys(parsed) if not _REF.match(k)]
    if unknown:
        raise LicenceError(
            f"not a known SPDX licence id or expression: {value!r} "
            f"(unknown license key(s): {', '.join(unknown)})"
        )
    return parsed


def normalise_expression(value: str) -> str:
    """Canonical SPDX rendering (``cc-by-4.0`` -> ``CC-BY-4.0``); raises :class:`LicenceError`.

    ``LicenseRef-...`` ids are valid SPDX and kept (prefix in canonical case, id as given).
    """
    return str(parse_expression(value).render())


def _refs(expr: LicenseExpression) -> list[str]:
    return [k for k in _licensing().unknown_license_keys(expr) if _REF.match(k)]


def is_licence_ref(expression: str) -> bool:
    """True when every id of the expression is a ``LicenseRef-`` (no SPDX-listed licence)."""
    keys = [s.key for s in _licensing().license_symbols(parse_expression(expression))]
    return bool(keys) and all(_REF.match(k) for k in keys)


@lru_cache(maxsize=1)
def spdx_ids() -> frozenset[str]:
    return frozenset(str(k) for k in _licensing().known_symbols)


# --------------------------------------------------------------------------- licence URLs

_CC_CODES = {  # URL licence code -> SPDX element order (1.0 spelled some in another order)
    "by": "BY", "by-sa": "BY-SA", "by-nd": "BY-ND", "by-nc": "BY-NC", "by-nc-sa": "BY-NC-SA",
    "by-nc-nd": "BY-NC-ND", "by-nd-nc": "BY-NC-ND", "sa": "SA", "nc": "NC", "nd": "ND",
    "nc-sa": "NC-SA", "nd-nc": "NC-ND",
}
_CC_VERSIONS = frozenset({"1.0", "2.0", "2.1", "2.5", "3.0", "4.0"})
# Creative Commons jurisdiction ports (URL codes). 4.0 has none.
_CC_PORTS = frozenset(
    "ar at au be bg br ca ch cl cn co cr cz de dk ec ee es fi fr ge gr gt hk hr hu ie igo il "
    "in it jp kr lu mk mt mx my nl no nz pe ph pl pr pt ro rs scotland se sg si th tw ug uk us "
    "ve vn za".split()
)
_CC_LICENCE = re.compile(
    r"^/licenses/(?P<code>[a-z-]+)/(?P<version>\d\.\d)(?:/(?!legalcode|deed|rdf|index)(?P<port>[a-z]+))?"
    r"(?:/(?:legalcode(?:\.[a-z_-]+)?|deed(?:\.[a-z_-]+)?|rdf|index\.html)?)?/?$"
)
_CC_PUBLIC_DOMAIN = {
    "/publicdomain/zero/1.0": "CC0-1.0",
    "/publicdomain/mark/1.0": "CC-PDM-1.0",
    "/licenses/publicdomain": "CC-PDDC",
}
_ODC = {
    "/licenses/pddl": "PDDL-1.0",
    "/licenses/odbl": "ODbL-1.0",
    "/licenses/by": "ODC-By-1.0",
}
_CC_TAIL = re.compile(r"^(?:/(?:legalcode(?:\.[a-z_-]+)?|deed(?:\.[a-z_-]+)?|rdf))?/?$")


def _cc_id(code: str, version: str, port: str | None) -> str | None:
    """SPDX id of a Creative Commons licence, ``LicenseRef-CC-...`` when SPDX lacks it, None
    when no such licence exists."""
    element = _CC_CODES.get(code)
    if element is None or version not in _CC_VERSIONS:
        return None
    if port is not None and (port not in _CC_PORTS or version == "4.0"):
        return None
    candidate = f"CC-{element}-{version}" + (f"-{port.upper()}" if port else "")
    return candidate if candidate in spdx_ids() else f"LicenseRef-{candidate}"


def _url_ref(parts_host: str, path: str, query: str) -> str:
    """A stable ``LicenseRef-`` for a URL no table knows: readable slug plus a hash of the URL
    (scheme, ``www.`` and a trailing slash ignored) so two URLs never share an id."""
    key = f"{parts_host}{path.rstrip('/')}" + (f"?{query}" if query else "")
    slug = re.sub(r"[^a-z0-9.]+", "-", key.lower()).strip("-.")[:60].strip("-.")
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:10]
    return f"LicenseRef-{slug}-{digest}" if slug else f"LicenseRef-{digest}"


def _from_url(url: str) -> str | None:
    if url.startswith("//"):
        url = "https:" + url
    parts = urlsplit(url if "://" in url else "https://" + url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if host.startswith("www."):
        host = host[4:]
    raw_path = re.sub(r"/+", "/", parts.path)
    path = raw_path.lower()
    if host == "creativecommons.org":
        for prefix, spdx in _CC_PUBLIC_DOMAIN.items():
            if path.startswith(prefix) and _CC_TAIL.match(path[len(prefix):]):
                return spdx
        match = _CC_LICENCE.match(path)
        if match:
            found = _cc_id(match["code"], match["version"], match["port"])
            if found is not None:
                return found
    elif host == "opendatacommons.org":
        for prefix, spdx in _ODC.items():
            if path == prefix or path.startswith(prefix + "/"):
                return spdx
    elif host == "spdx.org":
        match = re.match(r"^/licenses/([A-Za-z0-9.+-]+?)(?:\.html|\.json)?/?$", raw_path)
        if match and match[1] in spdx_ids():
            return match[1]
    return _url_ref(host, raw_path, parts.query)


def licence_from_url(url: str) -> str | None:
    """Map a licence URL to its SPDX-listed id, else None (see :func:`normalise_licence` for the
    ``LicenseRef-`` an unlisted URL gets).

    Accepts http/https, with or without ``www.``, trailing paths such as ``legalcode``,
    ``deed.fr`` or ``rdf``. A URL that names a licence SPDX does not list (e.g. a CC port that
    SPDX lacks) gives None rather than a guess.
    """
    text = url.strip()
    if not _looks_like_url(text):
        return None
    found = _from_url(text)
    return found if found is not None and found in spdx_ids() else None


def _looks_like_url(text: str) -> bool:
    lowered = text.lower()
    return lowered.startswith(("http://", "https://", "//", "www.")) or bool(
        re.match(r"^(?:creativecommons|opendatacommons)\.org/", lowered)
    )


# --------------------------------------------------------------------------- names

_CC_WORDS = {  # word sequences (after hyphens become spaces) -> CC element
    ("by",): "by", ("attribution",): "by", ("sa",): "sa", ("sharealike",): "sa",
    ("share", "alike"): "sa", ("nc",): "nc", ("noncommercial",): "nc",
    ("non", "commercial"): "nc", ("nd",): "nd", ("noderivatives",): "nd", ("noderivs",): "nd",
    ("no", "derivatives"): "nd", ("no", "derivs"): "nd", ("no", "derivative", "works"): "nd",
}
_CC_ORDER = ("by", "nc", "nd", "sa")
_UNPORTED = {"", "international", "unported", "generic"}
_PORT_NAMES = {
    "austria": "at", "australia": "au", "germany": "de", "netherlands": "nl",
    "united states": "us", "france": "fr", "japan": "jp", "england and wales": "uk",
    "uk england and wales": "uk", "scotland": "scotland", "igo": "igo",
}
_ALIASES = (
    (re.compile(r"^(?:creative commons (?:cc0|zero)|cc0|cc zero)(?: 1\.0)?(?: universal)?"
                r"(?: public domain dedication| waiver)?$"), "CC0-1.0"),
    (re.compile(r"^(?:creative commons |cc )?(?:public domain mark|pdm)(?: 1\.0)?$"),
     "CC-PDM-1.0"),
    (re.compile(r"^(?:odc |open data commons )?(?:pddl|public domain dedication and)"
                r"(?: 1\.0)?$"), "PDDL-1.0"),
)


def _words(text: str) -> str:
    text = text.lower().replace("&", " and ")
    text = re.sub(r"\b(?:this work is )?licensed under(?: the| a)?\b", " ", text)
    text = re.sub(r"\b(?:public )?licen[cs]e\b", " ", text)
    text = re.sub(r"[-–_,;:/\"'’]", " ", text)
    text = re.sub(r"\bv(?:ersion)?\s*(?=\d)", " ", text)
    text = re.sub(r"(?<![\w.])(\d)(?![\w.])", r"\1.0", text)  # "CC BY 4" -> 4.0
    return " ".join(t.strip(".") for t in text.split() if t.strip("."))


def _cc_from_words(words: str, need_prefix: bool) -> str | None:
    tokens = words.split()
    i = 0
    if tokens[:1] == ["cc"]:
        i = 1
    elif tokens[:2] == ["creative", "commons"]:
        i = 2
    elif need_prefix:
        return None
    elements: set[str] = set()
    while i < len(tokens):
        for length in (3, 2, 1):
            element = _CC_WORDS.get(tuple(tokens[i:i + length]))
            if element is not None:
                elements.add(element)
                i += length
                break
        else:
            break
    if not elements or i >= len(tokens) or not re.fullmatch(r"\d\.\d", tokens[i]):
        return None
    version, rest = tokens[i], " ".join(tokens[i + 1:])
    port = None if rest in _UNPORTED else _PORT_NAMES.get(rest, rest)
    code = "-".join(e for e in _CC_ORDER if e in elements).lower()
    return _cc_id(code, version, port)


def _from_text(text: str, need_prefix: bool = True) -> str | None:
    words = _words(text)
    if not words:
        return None
    for pattern, spdx in _ALIASES:
        if pattern.match(words):
            return spdx
    if " " not in words:  # "MIT License" -> "mit"
        try:
            return str(parse_expression(words).render())
        except LicenceError:
            pass
    return _cc_from_words(words, need_prefix)


def _from_name(text: str) -> str | None:
    found = _from_text(text)
    if found is not None:
        return found
    # "Attribution 4.0 International (CC BY 4.0)": both halves must name the same licence.
    inner = re.findall(r"\(([^()]*)\)", text)
    if len(inner) != 1:
        return None
    outer = re.sub(r"\([^()]*\)", " ", text).strip()
    named = _from_text(inner[0])
    if named is None or (outer and _from_text(outer, need_prefix=False) != named):
        return None
    return named


# A reservation of all rights is a licence statement: it permits nothing. Camera and agency
# metadata carry it in dc:rights / UsageTerms / copyrightNotice; beside a CC licence elsewhere it
# is a disagreement, never noise to skip over to the source's default.
ALL_RIGHTS_RESERVED = "LicenseRef-All-Rights-Reserved"
_RESERVED = re.compile(
    r"(?i)\ball\s+rights\s+reserved\b|\balle\s+rechte\s+vorbehalten\b"
    r"|\btous\s+droits\s+r[ée]serv[ée]s\b|\btodos\s+los\s+derechos\s+reservados\b"
    r"|\btutti\s+i\s+diritti\s+riservati\b|\balle\s+rechten\s+voorbehouden\b"
)


def normalise_licence(value: str) -> NormalisedLicence:
    """What licence a URL, SPDX id/expression or common name states.

    URLs: Creative Commons (every licence, version and port; CC0; the Public Domain Mark),
    Open Data Commons and spdx.org pages map to SPDX ids; a CC port SPDX lacks keeps its identity
    as ``LicenseRef-CC-<CODE>-<VERSION>-<PORT>``; any other URL becomes
    ``LicenseRef-<slug>-<hash>``, with ``url`` kept. Names such as "CC BY-SA 4.0" or "Creative
    Commons Attribution 4.0 International" are recognised; text that names no licence (or no
    version of one) gives ``spdx=None``. Text reserving all rights ("All rights reserved",
    "Alle Rechte vorbehalten", ...) gives :data:`ALL_RIGHTS_RESERVED`, which no policy allows
    unless it lists that id.
    """
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        return NormalisedLicence(None)
    if _looks_like_url(text):
        found = _from_url(text)
        return NormalisedLicence(found, text, found is not None and found in spdx_ids())
    try:
        parsed = parse_expression(text)
    except LicenceError:
        if _RESERVED.search(text):  # even beside a licence name: the text contradicts itself
            return NormalisedLicence(ALL_RIGHTS_RESERVED, None, False)
        found = _from_name(text)
        return NormalisedLicence(found, None, found is not None and not _REF.match(found))
    return NormalisedLicence(str(parsed.render()), None, not _refs(parsed))
