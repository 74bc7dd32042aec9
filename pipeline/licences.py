"""SPDX licence expressions: normalisation, CC/ODC URL mapping and the allow-list test.

Parsing is license-expression's job (SPDX list, case folding, `+` and `WITH`); this module adds
what a dataset builder needs on top: licence URLs found in pages mapped to SPDX ids, and the
question "may this expression be used under the allow list?".
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import urlsplit

from license_expression import (
    AND,
    OR,
    ExpressionError,
    LicenseExpression,
    LicenseSymbol,
    LicenseWithExceptionSymbol,
    get_spdx_licensing,
)


class LicenceError(ValueError):
    """A licence id or expression that is not valid SPDX."""


@lru_cache(maxsize=1)
def _licensing():  # type: ignore[no-untyped-def]
    return get_spdx_licensing()


@lru_cache(maxsize=4096)
def _parse(value: str) -> LicenseExpression:
    text = value.strip()
    if not text:
        raise LicenceError("empty licence expression")
    try:
        parsed = _licensing().parse(text, validate=True, strict=True)
    except ExpressionError as exc:
        raise LicenceError(
            f"not a known SPDX licence id or expression: {value!r} ({exc})"
        ) from None
    if parsed is None:
        raise LicenceError(f"empty licence expression: {value!r}")
    return parsed


def normalise_expression(value: str) -> str:
    """Canonical SPDX rendering (``cc-by-4.0`` -> ``CC-BY-4.0``); raises :class:`LicenceError`."""
    return str(_parse(value).render())


_CC_LICENCE = re.compile(
    r"^/licen[cs]es/(?P<code>by|by-sa|by-nd|by-nc|by-nc-sa|by-nc-nd|sa|nc|nd|nc-sa)"
    r"/(?P<version>\d\.\d)"
    # Any segment after the version but legalcode/deed/rdf names a port (de, igo, scotland):
    # it maps to that port's own SPDX id or to None, never to the unported licence.
    r"(?:/(?!legalcode|deed|rdf)(?P<port>[^/]+))?(?:/.*)?$"
)
_CC_PUBLIC_DOMAIN = {
    "/publicdomain/zero/1.0": "CC0-1.0",
    "/publicdomain/mark/1.0": "CC-PDM-1.0",
}
_ODC = {
    "/licenses/pddl": "PDDL-1.0",
    "/licenses/odbl": "ODbL-1.0",
    "/licenses/by": "ODC-By-1.0",
}


def licence_from_url(url: str) -> str | None:
    """Map a Creative Commons or Open Data Commons licence URL to its SPDX id, else None.

    Accepts http/https, with or without ``www.``, trailing paths such as ``legalcode`` or
    ``deed.fr``. A URL that names a licence SPDX does not list (e.g. a CC port that SPDX
    lacks) gives None rather than a guess.
    """
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if host.startswith("www."):
        host = host[4:]
    path = re.sub(r"/+", "/", parts.path.lower())
    candidate: str | None = None
    if host == "creativecommons.org":
        for prefix, spdx in _CC_PUBLIC_DOMAIN.items():
            if path == prefix or path.startswith(prefix + "/"):
                candidate = spdx
                break
        else:
            match = _CC_LICENCE.match(path)
            if match:
                candidate = f"CC-{match['code'].upper()}-{match['version']}"
                if match["port"]:
                    candidate += "-" + match["port"].upper()
    elif host == "opendatacommons.org":
        for prefix, spdx in _ODC.items():
            if path.startswith(prefix + "/") or path == prefix:
                candidate = spdx
                break
    if candidate is None:
        return None
    try:
        return normalise_expression(candidate)
    except LicenceError:
        return None


def is_allowed(expression: str, allow: list[str] | tuple[str, ...]) -> bool:
    """True when the expression can be used with only allowed licences.

    ``A OR B`` needs one allowed branch, ``A AND B`` needs both; an allow-list entry that is
    itself an expression is matched as a whole, after normalisation.
    """
    allowed = frozenset(normalise_expression(a) for a in allow)
    return _satisfiable(_parse(expression), allowed)


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
