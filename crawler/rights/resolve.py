"""Which licence an item carries, from all its evidence; who to credit and how.

Precedence (most specific first): embedded (XMP, then IPTC IIM, then C2PA) > per-image markup
(JSON-LD, microdata, RDFa, ccREL in the image's element) > page-wide markup > the source's
``licence.default``, which applies only when no evidence names a licence.

* one licence named (by one or several pieces): it is the item's licence, ``licence_source`` is
  the most specific piece naming it; not allowed by the effective policy: ``licence_not_allowed``
  (a ``LicenseRef-`` the policy does not list: ``no_licence``, as in the build).
* several different licences: if any is not allowed, ``licence_conflict`` with every piece
  (source, licence, raw) in ``detail``; if all are allowed, the more restrictive is kept
  (``pipeline.registry.licences.more_restrictive``) and ``licence_disagreement`` says who said
  what.
* no licence named and no default: ``no_licence``, with any rights text found in ``detail``.

The credit line follows Creative Commons' recommended title-author-source-licence form:
``"Title" by Creator is licensed under CC BY 4.0 (https://...). Source: URL``; a part that no
evidence gives is left out, never invented. The line is composed by
:func:`pipeline.reports.attribution.credit_line`, the same function the ATTRIBUTION report uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import reduce
from typing import Any

from crawler.rights.evidence import DEFAULT, SOURCE_DEFAULT, Evidence
from pipeline.registry import licences, spdx
from pipeline.reports.attribution import credit_line
from pipeline.runs import reasons


@dataclass(frozen=True)
class Decision:
    licence: str | None = None
    licence_url: str | None = None
    licence_source: str | None = None
    reason: str | None = None  # a rejection reason code when the item cannot be kept
    detail: str | None = None
    disagreement: str | None = None
    creator: str | None = None
    credit: str | None = None
    attribution: str | None = None
    evidence: list[dict[str, Any]] = field(default_factory=list)


def allowed(licence: str, allow: tuple[str, ...] | list[str]) -> bool:
    try:
        return licences.is_allowed(licence, allow)
    except spdx.LicenceError:
        return False  # a LicenseRef or invalid expression is allowed only when listed verbatim


def _first(pieces: list[Evidence], attr: str) -> str | None:
    return next((getattr(e, attr) for e in pieces if getattr(e, attr)), None)


def _listing(pieces: list[Evidence]) -> str:
    return "; ".join(e.describe() for e in pieces)


def resolve(evidence: list[Evidence], allow: tuple[str, ...] | list[str],
            default: str | None, *, source_url: str | None = None) -> Decision:
    """Decide one item's licence from every piece of evidence (any order)."""
    ordered = sorted(evidence, key=lambda e: e.rank)
    naming = [e for e in ordered if e.licence]
    distinct = list(dict.fromkeys(str(e.licence) for e in naming))
    rows = [e.as_row() for e in ordered if e.licence or e.raw]
    credit = _first(ordered, "credit")
    creator = _first(ordered, "creator") or _first(ordered, "attribution_name")
    base: dict[str, Any] = {"creator": creator, "credit": credit, "evidence": rows}
    policy = ", ".join(allow)
    if not naming:
        if not default:
            texts = _listing([e for e in ordered if e.raw])
            detail = ("no licence evidence (embedded, per-image or page markup) and no "
                      "licence.default for the source")
            if texts:
                detail += f"; rights text found, naming no licence: {texts}"
            return Decision(reason=reasons.NO_LICENCE, detail=detail, **base)
        chosen = Evidence(SOURCE_DEFAULT, DEFAULT, "licence.default", licence=default,
                          raw=default)
        naming, distinct = [chosen], [default]
        base["evidence"] = rows + [chosen.as_row()]
    disagreement = None
    if len(distinct) == 1:
        licence = distinct[0]
        if licence == spdx.ALL_RIGHTS_RESERVED and not allowed(licence, allow):
            return Decision(
                reason=reasons.LICENCE_NOT_ALLOWED,
                detail=f"the rights holder reserves all rights; evidence: {_listing(naming)}",
                **base)
        if licence.startswith("LicenseRef-") and not allowed(licence, allow):
            # As the build filter: an unrecognised licence the policy does not list is none.
            return Decision(
                reason=reasons.NO_LICENCE,
                detail=f"{licence} is not a recognised licence and the licence policy "
                f"[{policy}] does not list it; evidence: {_listing(naming)}", **base)
        if not allowed(licence, allow):
            return Decision(
                reason=reasons.LICENCE_NOT_ALLOWED,
                detail=f"licence {licence} is not allowed by the licence policy [{policy}]; "
                f"evidence: {_listing(naming)}", **base)
    else:
        refused = [lic for lic in distinct if not allowed(lic, allow)]
        if refused:
            return Decision(
                reason=reasons.LICENCE_CONFLICT,
                detail=f"evidence names different licences ({', '.join(distinct)}) and "
                f"{', '.join(refused)} is not allowed by [{policy}]: {_listing(naming)}",
                **base)
        licence = reduce(licences.more_restrictive, distinct)
        disagreement = (
            f"{'; '.join(f'{e.source} [{e.scope}]: {e.licence}' for e in naming)}; "
            f"kept the more restrictive {licence}")
    chosen = next((e for e in naming if e.licence == licence), naming[0])
    author = _first(ordered, "attribution_name") or creator
    line = credit_line(title=_first(ordered, "title"), author=author, licence=licence,
                       licence_url=chosen.url, source_url=source_url)
    return Decision(licence=licence, licence_url=chosen.url, licence_source=chosen.source,
                    disagreement=disagreement, attribution=line, **base)
