"""Licence policy: may an expression be used under the allow list, the named presets of
``licences.preset``, and the "more restrictive of two" rule used when two pieces of evidence
disagree. Parsing and normalisation are :mod:`pipeline.registry.spdx`.
"""

from __future__ import annotations

import re
from functools import lru_cache

from license_expression import (
    AND,
    OR,
    LicenseExpression,
    LicenseSymbol,
    LicenseWithExceptionSymbol,
)

from pipeline.registry.spdx import normalise_expression, parse_expression, spdx_ids

# --------------------------------------------------------------------------- policy


def is_allowed(expression: str, allow: list[str] | tuple[str, ...]) -> bool:
    """True when the expression can be used with only allowed licences.

    ``A OR B`` needs one allowed branch, ``A AND B`` needs both; an allow-list entry that is
    itself an expression is matched as a whole, after normalisation. A ``LicenseRef-`` id is
    allowed only when the allow list names it verbatim (presets never do).
    """
    allowed = frozenset(normalise_expression(a) for a in allow)
    return _satisfiable(parse_expression(expression), allowed)


def _satisfiable(expr: LicenseExpression, allowed: frozenset[str]) -> bool:
    if str(expr.render()) in allowed:
        return True
    if isinstance(expr, OR):
        return any(_satisfiable(arg, allowed) for arg in expr.args)
    if isinstance(expr, AND):
        return all(_satisfiable(arg, allowed) for arg in expr.args)
    if isinstance(expr, (LicenseSymbol, LicenseWithExceptionSymbol)):
        return False
    return False


_PD = ("CC0-1.0", "CC-PDM-1.0", "PDDL-1.0")
_PRESET_PATTERNS = {
    "commercial-ai-training": (r"CC-BY-\d\.\d(?:-[A-Z]+)?", r"CC-BY-SA-\d\.\d(?:-[A-Z]+)?"),
    "research": (
        r"CC-BY-\d\.\d(?:-[A-Z]+)?", r"CC-BY-SA-\d\.\d(?:-[A-Z]+)?",
        r"CC-BY-NC-\d\.\d(?:-[A-Z]+)?", r"CC-BY-NC-SA-\d\.\d(?:-[A-Z]+)?",
    ),
}
PRESETS = tuple(sorted(_PRESET_PATTERNS))


@lru_cache(maxsize=16)
def preset_licences(name: str) -> tuple[str, ...]:
    """The SPDX ids a named preset allows: the public-domain tools plus every version and
    SPDX-listed port of the listed Creative Commons families. No preset contains an ND licence
    or a ``LicenseRef-``; raises KeyError for an unknown name."""
    patterns = [re.compile(p) for p in _PRESET_PATTERNS[name]]
    ids = sorted(i for i in spdx_ids() if any(p.fullmatch(i) for p in patterns))
    return _PD + tuple(ids)


@lru_cache(maxsize=64)
def effective_allow(allow: tuple[str, ...], presets: tuple[str, ...]
                    ) -> tuple[str, ...]:
    """``allow`` in its order, then each preset's ids not already listed."""
    out = list(dict.fromkeys(allow))
    seen = set(out)
    for name in presets:
        for spdx in preset_licences(name):
            if spdx not in seen:
                seen.add(spdx)
                out.append(spdx)
    return tuple(out)


# --------------------------------------------------------------------------- ranking

# Obligation weights: a licence's rank is the sum of its obligations; a strict superset of
# obligations always ranks higher. Licences outside this table rank above every known one.
_WEIGHT = {"by": 1, "sa": 2, "nc": 4, "nd": 8}
_UNKNOWN_RANK = 16
_NO_OBLIGATIONS = frozenset({"CC0-1.0", "CC-PDM-1.0", "PDDL-1.0", "CC-PDDC"})
_CC_SHAPE = re.compile(
    r"^(?:LicenseRef-)?CC-(?P<code>(?:BY|NC|ND|SA)(?:-(?:NC|ND|SA))*)-(?P<version>\d\.\d)"
    r"(?P<port>-[A-Z]+)?$"
)


def _obligations(expr: LicenseExpression) -> frozenset[str] | None:
    if isinstance(expr, AND) or isinstance(expr, OR):
        parts = [_obligations(a) for a in expr.args]
        if any(p is None for p in parts):
            return None
        sets = [p for p in parts if p is not None]
        if isinstance(expr, AND):
            return frozenset().union(*sets)
        return frozenset.intersection(*sets)
    key = str(getattr(expr, "key", "")) or str(expr.render())
    if isinstance(expr, LicenseWithExceptionSymbol):
        key = str(expr.license_symbol.key)
    if key in _NO_OBLIGATIONS:
        return frozenset()
    if key == "ODC-By-1.0":
        return frozenset({"by"})
    if key == "ODbL-1.0":
        return frozenset({"by", "sa"})
    match = _CC_SHAPE.match(key)
    if match:
        return frozenset(match["code"].lower().split("-"))
    return None


def _rank_key(expression: str) -> tuple[int, int, float, str]:
    parsed = parse_expression(expression)
    canonical = str(parsed.render())
    obligations = _obligations(parsed)
    rank = _UNKNOWN_RANK if obligations is None else sum(_WEIGHT[o] for o in obligations)
    match = _CC_SHAPE.match(canonical)
    ported = int(bool(match and match["port"]))
    version = -float(match["version"]) if match else 0.0
    return rank, ported, version, canonical


def more_restrictive(a: str, b: str) -> str:
    """Of two licences, the one whose obligations are the larger (canonical form).

    Obligations: none (CC0, PDM, PDDL) < attribution (BY) < share-alike (BY-SA) < non-commercial
    < no-derivatives, summed (BY 1, SA 2, NC 4, ND 8), so a superset of obligations always wins;
    licences outside this table (MIT, ``LicenseRef-`` URLs) rank above all. Equal ranks go to a
    ported licence over an unported one, then to the older version, then to the id that sorts
    last, so the answer never depends on argument order. Raises :class:`LicenceError`.
    """
    return max(_rank_key(a), _rank_key(b))[3]
