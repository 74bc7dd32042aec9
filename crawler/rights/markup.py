"""Rights evidence in a page's markup: schema.org (JSON-LD, microdata, RDFa via extruct) and ccREL.

Per image (scope ``image``): a schema.org node whose ``contentUrl``, ``thumbnailUrl`` or (for an
ImageObject/Photograph/MediaObject) ``url`` — or a WHATWG ``work`` item whose ``work`` — is the
image's requested or final URL after normalisation (w3lib ``canonicalize_url``: scheme and host
lower-cased, default port, fragment and percent-encoding normalised); an RDFa subject that is the
image; ``rel="license"`` / ``property="cc:attributionName"`` inside the image's own element
(:mod:`crawler.extract`). Page-wide (scope ``page``): other schema.org nodes with a licence, RDFa
about the page itself, the remaining ``rel="license"`` links. ``license`` is licence evidence;
``acquireLicensePage`` and ``copyrightNotice`` are rights text; ``creditText`` the credit line;
``creator``/``author`` and ``name`` (per image only: a page's author is not a photo's author).

A syntax block that cannot be parsed (malformed JSON-LD) is recorded in :attr:`PageMarkup.errors`;
the page's images are excluded with it, since what it said about them is unknown.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import extruct
from parsel import Selector
from w3lib.url import canonicalize_url

from crawler.extract import FoundImage, find_page_licence_links, find_scoped_licence_links
from crawler.rights.evidence import (
    IMAGE,
    JSONLD,
    MICRODATA,
    PAGE,
    RDFA,
    REL_LICENSE,
    Evidence,
    first,
    licence_evidence,
)

IMAGE_TYPES = frozenset({"ImageObject", "Photograph", "MediaObject", "ImageObjectSnapshot"})
_URL_KEYS = ("contentUrl", "thumbnailUrl", "work")

_CC = "http://creativecommons.org/ns#"
_RDFA_LICENCE = ("http://creativecommons.org/ns#license", "http://schema.org/license",
                 "https://schema.org/license", "http://purl.org/dc/terms/license")
_RDFA_CREATOR = ("http://purl.org/dc/terms/creator", "http://purl.org/dc/elements/1.1/creator",
                 "http://schema.org/creator", "https://schema.org/creator")
_RDFA_TITLE = ("http://purl.org/dc/terms/title", "http://purl.org/dc/elements/1.1/title",
               "http://schema.org/name", "https://schema.org/name")
_RDFA_RIGHTS = ("http://purl.org/dc/terms/rights", "http://purl.org/dc/elements/1.1/rights",
                "http://schema.org/copyrightNotice", "https://schema.org/copyrightNotice")


_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


@lru_cache(maxsize=8192)
def norm_url(url: str) -> str:
    """Comparable form of a URL: w3lib's canonical form (host lower-cased, percent-encoding and
    query order normalised, fragment dropped) without the scheme's default port."""
    try:
        canonical = canonicalize_url(url.strip(), keep_fragments=False)
    except ValueError:
        return url.strip()
    parts = urlsplit(canonical)
    port = _DEFAULT_PORTS.get(parts.scheme)
    if port and parts.netloc.endswith(port):
        canonical = urlunsplit(parts._replace(netloc=parts.netloc[: -len(port)]))
    return canonical


def _properties(node: Selector) -> dict[str, list[Selector]]:
    """Elements under ``node`` by each ``property``/``rel`` term they carry (one XPath pass)."""
    out: dict[str, list[Selector]] = {}
    for element in node.xpath(".//*[@property or @rel]"):
        terms = (element.attrib.get("property", "") + " " + element.attrib.get("rel", "")).split()
        for term in dict.fromkeys(terms):
            out.setdefault(term, []).append(element)
    return out


def _content(node: Selector) -> str | None:
    """A literal (``property=``): ``content``, else the element's text."""
    if node.attrib.get("content"):
        return node.attrib["content"].strip()
    return " ".join(" ".join(node.xpath(".//text()").getall()).split()) or None


def _link(node: Selector) -> str | None:
    """A resource (``rel=``/``property=`` on a link): ``href``/``resource``, else a literal."""
    for attr in ("href", "resource"):
        if node.attrib.get(attr):
            return node.attrib[attr].strip()
    return _content(node)


@dataclass
class PageMarkup:
    """Evidence of one page, computed once; :meth:`for_image` picks an image's share."""

    page_url: str
    by_image: dict[str, list[Evidence]] = field(default_factory=dict)
    page: list[Evidence] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ccrel: bool = True  # the page has ccREL-looking markup at all (else skip per-image XPaths)

    def for_image(self, *urls: str | None) -> list[Evidence]:
        out: list[Evidence] = []
        for key in dict.fromkeys(norm_url(u) for u in urls if u):
            out += self.by_image.get(key, [])
        return out


# --------------------------------------------------------------------------- schema.org


def _types(node: dict[str, Any]) -> set[str]:
    value = node.get("@type") or node.get("type") or []
    values = value if isinstance(value, list) else [value]
    return {str(v).rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1] for v in values}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, dict):
        for key in ("url", "@id", "contentUrl", "name", "@value"):
            if isinstance(value.get(key), str) and value[key].strip():
                return [value[key]]
        return []
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def _names(value: Any) -> list[str]:
    if isinstance(value, dict):
        name = value.get("name")
        return [name] if isinstance(name, str) and name.strip() else []
    if isinstance(value, list):
        return [n for item in value for n in _names(item)]
    return _strings(value)


def _nodes(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        if "@type" in value or "type" in value:
            yield value
        for key, child in value.items():
            if key != "@context":
                yield from _nodes(child)
    elif isinstance(value, list):
        for item in value:
            yield from _nodes(item)


def _schema_node(markup: PageMarkup, source: str, node: dict[str, Any]) -> None:
    types = _types(node)
    keys = list(_URL_KEYS) + (["url"] if types & IMAGE_TYPES else [])
    images = [norm_url(u) for k in keys for u in _strings(node.get(k))]
    licences = _strings(node.get("license"))
    texts = [("acquireLicensePage", t) for t in _strings(node.get("acquireLicensePage"))]
    texts += [("copyrightNotice", t) for t in _strings(node.get("copyrightNotice"))]
    kind = "/".join(sorted(types)) or "item"
    if images:
        described: dict[str, Any] = {
            "creator": first(_names(node.get("creator")) or _names(node.get("author"))),
            "credit": first(_strings(node.get("creditText"))),
            "title": first(_strings(node.get("name")) or _strings(node.get("title"))),
        }
        scope, targets = IMAGE, images
    elif licences and not types & IMAGE_TYPES:
        described, scope, targets = {}, PAGE, [""]
    else:
        return
    pieces = [licence_evidence(source, scope, f"{kind}.license", v, **described)
              for v in licences]
    if not pieces and (texts or any(described.values())):
        raw = "; ".join(f"{k}: {t}" for k, t in texts) or None
        pieces = [Evidence(source, scope, kind, raw=raw, **described)]
    for target in targets:
        if scope == PAGE:
            markup.page.extend(pieces)
        else:
            markup.by_image.setdefault(target, []).extend(pieces)


def _rdfa_subject(markup: PageMarkup, subject: dict[str, Any]) -> None:
    def values(predicates: tuple[str, ...]) -> list[str]:
        found: list[str] = []
        for predicate in predicates:
            for obj in subject.get(predicate) or []:
                if isinstance(obj, dict):
                    value = obj.get("@id") or obj.get("@value")
                    if isinstance(value, str) and value.strip() and not value.startswith("_:"):
                        found.append(value.strip())
        return found

    about = norm_url(str(subject.get("@id", "")))
    scope = PAGE if about == norm_url(markup.page_url) else IMAGE
    licences, texts = values(_RDFA_LICENCE), values(_RDFA_RIGHTS)
    described: dict[str, Any] = {
        "creator": first(values(_RDFA_CREATOR)),
        "attribution_name": first(values((_CC + "attributionName",))),
        "attribution_url": first(values((_CC + "attributionURL",))),
        "title": first(values(_RDFA_TITLE)) if scope == IMAGE else None,
    }
    pieces = [licence_evidence(RDFA, scope, "cc:license", v, **described) for v in licences]
    if not pieces and (texts or described["creator"] or described["attribution_name"]):
        pieces = [Evidence(RDFA, scope, "rdfa", raw="; ".join(texts) or None, **described)]
    if scope == PAGE:
        markup.page.extend(pieces)
    else:
        markup.by_image.setdefault(about, []).extend(pieces)


# --------------------------------------------------------------------------- ccREL


def _ccrel(scope: Selector, base: str, where: str, links: list[str]) -> list[Evidence]:
    terms = _properties(scope)
    names = [c for c in (_content(n) for n in terms.get("cc:attributionName", [])) if c]
    urls = [c for c in (_link(n) for n in terms.get("cc:attributionURL", [])) if c]
    titles = [c for c in (_content(n) for n in terms.get("dct:title", [])
                          + terms.get("dc:title", [])) if c]
    described: dict[str, Any] = {
        "attribution_name": first(names), "attribution_url": first(urls),
        "title": first(titles) if where == IMAGE else None,
    }
    pieces = [licence_evidence(REL_LICENSE, where, "a[rel=license]", link, **described)
              for link in links]
    if not pieces and described["attribution_name"]:
        pieces = [Evidence(REL_LICENSE, where, "cc:attributionName", **described)]
    return pieces


def scoped_evidence(image: FoundImage, base: str, markup: PageMarkup | None = None
                    ) -> list[Evidence]:
    """ccREL inside the image's own element."""
    if image.scope is None or (markup is not None and not markup.ccrel):
        return []
    return _ccrel(image.scope, base, IMAGE, find_scoped_licence_links(image.scope, base))


# --------------------------------------------------------------------------- the page


# RDFa is parsed (pyRdfa, ~6 ms on a 20-image gallery) only where ccREL-by-parsel cannot answer:
# a licence given as a property (``property="license"``, ``schema:license``) or explicit RDFa
# subjects/vocabularies. ``rel="license"``, ``cc:attributionName``/``URL`` and ``dct:title``
# (what Creative Commons' licence chooser emits) are read by :func:`_ccrel` directly.
_RDFA_NEEDED = re.compile(
    rb"""\s(?:about|typeof|vocab|prefix)\s*=|\sproperty\s*=\s*["'][^"']*licen[cs]e""")


def _wanted(lowered: bytes) -> list[tuple[str, str]]:
    syntaxes = []
    if b"application/ld+json" in lowered:
        syntaxes.append(("json-ld", JSONLD))
    if b"itemscope" in lowered:
        syntaxes.append(("microdata", MICRODATA))
    if _RDFA_NEEDED.search(lowered):
        syntaxes.append(("rdfa", RDFA))
    return syntaxes


def page_markup(body: bytes, text: str, sel: Selector, page_url: str) -> PageMarkup:
    """All rights markup of one page (extruct for schema.org, parsel for ccREL).

    JSON-LD and microdata are read from parsel's already-parsed tree; RDFa needs extruct's own
    DOM parse of the text.
    """
    lowered = body.lower()
    markup = PageMarkup(page_url, ccrel=b"license" in lowered or b"cc:attribution" in lowered)
    for syntax, source in _wanted(lowered):
        document: Any = text if syntax == "rdfa" else sel.root
        try:
            data = extruct.extract(document, base_url=page_url, syntaxes=[syntax],
                                   uniform=syntax != "rdfa", errors="strict")
        except Exception as exc:  # noqa: BLE001 - extruct surfaces its parsers' own errors
            markup.errors.append(f"unreadable {source} on {page_url}: "
                                 f"{type(exc).__name__}: {str(exc)[:200]}")
            continue
        items = data.get(syntax) or []
        if syntax == "rdfa":
            for subject in items:
                if isinstance(subject, dict):
                    _rdfa_subject(markup, subject)
        else:
            for node in _nodes(items):
                _schema_node(markup, source, node)
    if markup.ccrel:
        markup.page.extend(_ccrel_page(sel, page_url, find_page_licence_links(sel, page_url)))
    return markup


def _ccrel_page(root: Selector, base: str, links: list[str]) -> list[Evidence]:
    """Page-wide ccREL: the remaining rel=license links, attribution names outside any image
    element."""
    scope = ("ancestor::*[not(self::html or self::body)]"
             "[@about or @typeof or @itemscope or self::figure][.//img]")
    names = [c for c in (_content(n) for n in root.xpath(
        ".//*[contains(concat(' ', normalize-space(@property), ' '), ' cc:attributionName ')]"
        f"[not({scope})]")) if c]
    described: dict[str, Any] = {"attribution_name": first(names)}
    return [licence_evidence(REL_LICENSE, PAGE, "a[rel=license]", link, **described)
            for link in links]
