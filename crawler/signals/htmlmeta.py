"""``<meta name="..." content="...">`` from an HTML page, for the signals carried in markup.

Parsed with lxml's forgiving HTML parser (what Scrapy's selectors use), never fetching anything
(``no_network``). Only the first :data:`MAX_HTML_BYTES` are read: the meta elements that carry
opt-outs belong in the document head.
"""

from __future__ import annotations

from dataclasses import dataclass

import lxml.etree
import lxml.html

MAX_HTML_BYTES = 4 * 1024 * 1024

_PARSER = lxml.html.HTMLParser(recover=True, no_network=True, remove_comments=True)


@dataclass(frozen=True)
class MetaTag:
    name: str  # lower-cased (HTML meta names compare ASCII case-insensitively)
    content: str
    raw: str  # the element as written back by lxml, as evidence


def meta_tags(html: bytes | str, names: set[str] | frozenset[str]) -> list[MetaTag]:
    """Every ``<meta>`` whose ``name`` is in ``names`` (lower-case), in document order."""
    if isinstance(html, str):
        html = html.encode("utf-8")
    html = html[:MAX_HTML_BYTES]
    if not html.strip():
        return []
    try:
        root = lxml.html.fromstring(html, parser=_PARSER)
    except (lxml.etree.ParserError, ValueError):
        return []
    if root is None:
        return []
    found: list[MetaTag] = []
    for element in root.iter("meta"):
        name = (element.get("name") or "").strip().lower()
        if name not in names:
            continue
        raw = lxml.html.tostring(element, encoding="unicode", with_tail=False).strip()
        found.append(MetaTag(name=name, content=(element.get("content") or "").strip(), raw=raw))
    return found
