"""What a page offers: links to follow, images with captions, and page-level licence links.

One image per ``<img>`` (or ``<picture>``): the largest candidate among its ``srcset`` and
``<source srcset>`` entries, else ``src``, so a responsive image is one item, not one per size.

Licence links are split by scope: a ``rel="license"`` inside the element that the page marks as
the image's own (the nearest ancestor of the ``<img>`` below ``<body>`` carrying ``about=``,
``typeof=`` or ``itemscope``, or a ``<figure>``) is about that image only; the others are
page-wide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urldefrag, urljoin

from parsel import Selector, SelectorList

_DESCRIPTOR = re.compile(r"^(\d+(?:\.\d+)?)([wx])$")
_CANDIDATE_URL = re.compile(r"[\s,]*([^\s,]\S*)")


# The element a page marks as one image's own (ccREL/RDFa subject, microdata item, figure).
_SCOPE = ("*[not(self::html or self::body)]"
          "[@about or @typeof or @itemscope or self::figure]")
_REL = "concat(' ', translate(normalize-space(@rel), 'LICENSE', 'license'), ' ')"
_LICENCE_LINK = (f"(self::a or self::link or self::area) and (contains({_REL}, ' license ')"
                 f" or contains({_REL}, ' licence '))")  # the British spelling is seen too


@dataclass(frozen=True)
class FoundImage:
    url: str
    caption: str | None
    # The image's own element (see module doc), for rights markup scoped to it.
    scope: Selector | None = field(default=None, compare=False, repr=False)


def _absolute(base: str, href: str | None) -> str | None:
    if not href:
        return None
    href = href.strip()
    if not href or href.startswith(("data:", "javascript:", "mailto:", "tel:", "#")):
        return None
    url = urldefrag(urljoin(base, href))[0]
    return url if url.startswith(("http://", "https://")) else None


def _srcset(value: str | None) -> list[tuple[float, str]]:
    """Parse a srcset into (weight, url) pairs; weight is width (w) or density*1e6 (x)."""
    out: list[tuple[float, str]] = []
    if not value:
        return out
    # HTML's algorithm, not a split on ",": a URL runs to whitespace, so the comma inside a
    # `data:image/gif;base64,...` placeholder does not turn its payload into a relative URL.
    pos = 0
    while match := _CANDIDATE_URL.match(value, pos):
        url, pos = match.group(1), match.end()
        descriptors: list[str] = []
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            end = value.find(",", pos)
            end = len(value) if end < 0 else end
            descriptors, pos = value[pos:end].split(), end + 1
        weight = 1e6  # no descriptor means 1x
        if descriptors:
            found = _DESCRIPTOR.match(descriptors[-1])
            if found:
                number = float(found.group(1))
                weight = number if found.group(2) == "w" else number * 1e6
        out.append((weight, url))
    return out


def _best(base: str, candidates: list[tuple[float, str]], src: str | None) -> str | None:
    ranked = sorted(
        ((w, u) for w, u in candidates if _absolute(base, u)), key=lambda c: c[0], reverse=True
    )
    if ranked:
        return _absolute(base, ranked[0][1])
    return _absolute(base, src)


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    value = " ".join(value.split())
    return value or None


def find_images(sel: Selector, base: str) -> list[FoundImage]:
    found: list[FoundImage] = []
    seen: set[str] = set()
    for img in sel.css("img"):
        candidates = _srcset(img.attrib.get("srcset"))
        # libxml2 does not know <source> is void and may nest the <img> inside it.
        picture = img.xpath("ancestor::picture[1]")
        if picture:
            for source in picture.css("source"):
                candidates += _srcset(source.attrib.get("srcset"))
        url = _best(base, candidates, img.attrib.get("src"))
        if url is None or url in seen:
            continue
        seen.add(url)
        caption = _text(img.attrib.get("alt"))
        if caption is None:
            caption = _text(" ".join(img.xpath("ancestor::figure[1]/figcaption//text()").getall()))
        scope = img.xpath(f"ancestor::{_SCOPE}[1]")
        found.append(FoundImage(url, caption, scope[0] if scope else None))
    return found


def find_links(sel: Selector, base: str) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for href in sel.css("a::attr(href), area::attr(href)").getall():
        url = _absolute(base, href)
        if url and url not in seen:
            seen.add(url)
            out.append(url)
    return out


def _targets(nodes: SelectorList[Selector], base: str) -> list[str]:
    """Absolute ``href`` targets of licence links, first occurrence order, no repeats."""
    out: list[str] = []
    for node in nodes:
        url = _absolute(base, node.attrib.get("href"))
        if url and url not in out:
            out.append(url)
    return out


def find_licence_links(sel: Selector, base: str) -> list[str]:
    """Page-level ``rel="license"`` targets (a, link, area), in document order."""
    return _targets(sel.xpath(f"//*[{_LICENCE_LINK}]"), base)


def find_page_licence_links(sel: Selector, base: str) -> list[str]:
    """Page-wide ``rel="license"`` targets: those not inside an image's own element."""
    return _targets(sel.xpath(f"//*[{_LICENCE_LINK}][not(ancestor::{_SCOPE}[.//img])]"), base)


def find_scoped_licence_links(scope: Selector, base: str) -> list[str]:
    """``rel="license"`` targets inside one image's own element, in document order."""
    return _targets(scope.xpath(f"descendant-or-self::*[{_LICENCE_LINK}]"), base)
