"""One piece of rights evidence, and licence normalisation of raw values.

Scopes, most specific first: ``embedded`` (in the image's bytes), ``image`` (page markup tied to
this image: an ImageObject whose URL matches, ccREL inside the image's own element), ``page``
(markup about the whole page), ``default`` (the source's ``licence.default``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pipeline.registry import spdx

# licence_source values (README "Outputs"); jsonld/microdata/rdfa extend the contract list.
XMP, IPTC, C2PA = "xmp", "iptc", "c2pa"
JSONLD, MICRODATA, RDFA, REL_LICENSE = "jsonld", "microdata", "rdfa", "rel-license"
SOURCE_DEFAULT = "source-default"

EMBEDDED, IMAGE, PAGE, DEFAULT = "embedded", "image", "page", "default"
SCOPE_RANK = {EMBEDDED: 0, IMAGE: 1, PAGE: 2, DEFAULT: 3}
# Inside "embedded": XMP is where IPTC Core and Creative Commons put licence fields; IIM is its
# legacy mirror (no licence field, only a copyright notice); a C2PA CreativeWork assertion is
# about authorship and rarely states a licence.
SOURCE_RANK = {XMP: 0, IPTC: 1, C2PA: 2, JSONLD: 3, MICRODATA: 4, RDFA: 5, REL_LICENSE: 6,
               SOURCE_DEFAULT: 7}


@dataclass(frozen=True)
class Evidence:
    """What one place says. ``licence`` is set only when the raw value names a licence."""

    source: str  # licence_source value
    scope: str  # embedded | image | page | default
    field: str  # where exactly: "cc:license", "ImageObject.license", "a[rel=license]"...
    licence: str | None = None  # SPDX id/expression or LicenseRef-...
    url: str | None = None  # the licence URL as found
    raw: str | None = None  # the raw licence/rights value
    creator: str | None = None
    credit: str | None = None  # a credit line the rights holder asks for
    attribution_name: str | None = None  # cc:attributionName
    attribution_url: str | None = None
    title: str | None = None

    @property
    def rank(self) -> tuple[int, int]:
        return SCOPE_RANK[self.scope], SOURCE_RANK.get(self.source, 99)

    def as_row(self) -> dict[str, Any]:
        """The ``licence_evidence`` struct."""
        return {"source": self.source, "licence": self.licence, "url": self.url,
                "raw": self.raw, "scope": self.scope}

    def describe(self) -> str:
        value = self.licence or "no licence"
        raw = f" ({self.raw!r})" if self.raw and self.raw not in (self.licence, self.url) else ""
        url = f" <{self.url}>" if self.url else ""
        return f"{self.source} {self.field} [{self.scope}]: {value}{url}{raw}"


@dataclass(frozen=True)
class Named:
    """A raw value mapped to a licence (spdx None: the value names no licence)."""

    spdx: str | None
    url: str | None
    known: bool


def name_licence(value: str | None) -> Named:
    """``pipeline.registry.spdx.normalise_licence`` (URL, SPDX id or free-text name) on a raw
    value."""
    if value is None or not value.strip():
        return Named(None, None, False)
    return _named(value.strip())


@lru_cache(maxsize=4096)
def _named(value: str) -> Named:  # a gallery repeats one licence URL on every image
    result = spdx.normalise_licence(value)
    return Named(result.spdx, result.url, result.known)


def licence_evidence(source: str, scope: str, field: str, value: str, *,
                     url_only_if_known: bool = False, **extra: Any) -> Evidence:
    """Evidence for a raw licence value.

    ``url_only_if_known``: a value that is a URL (``xmpRights:WebStatement``) counts as a licence
    only when it is a known licence URL; another URL is a rights statement, kept as raw text.
    """
    named = name_licence(value)
    spdx = named.spdx
    if url_only_if_known and not named.known:
        spdx = None
    return Evidence(source, scope, field, licence=spdx, url=named.url if spdx else None,
                    raw=value.strip(), **extra)


def first(values: tuple[str, ...] | list[str] | None) -> str | None:
    for value in values or ():
        text = " ".join(str(value).split())
        if text:
            return text
    return None
