"""Contributor opt-out lists: creators of a source who asked that their work not be used.

A source declares them in its YAML (``optouts: {creators: [...], file: PATH, url: URL}``). A
file (relative to the config dir) or a URL (inside the source's scope, fetched by the crawl
through every gate) holds one name per line (UTF-8, ``#`` starts a comment, blank lines are
skipped), or JSON: a list of names or ``{"creators": [...]}``. Names compare case- and
whitespace-insensitively (:func:`normalise_creator`), like ``creator`` takedowns.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

MAX_LIST_BYTES = 16 * 1024 * 1024
MAX_NAME_CHARS = 1000


class OptoutListError(ValueError):
    """An opt-out list that cannot be read as one; the message says what was expected."""


def normalise_creator(value: str) -> str:
    """Case- and whitespace-insensitive form of a creator name (casefold, runs of whitespace
    collapsed to one space, trimmed)."""
    return " ".join(value.casefold().split())


@dataclass(frozen=True)
class OptoutList:
    """One list as the build applies it: where it came from (``label``, never a name), the
    sha256 of its bytes, and the normalised names."""

    source_id: str
    label: str
    sha256: str
    names: frozenset[str]

    def summary(self) -> dict[str, object]:
        """For manifest.json: what was applied, counted, without naming anyone."""
        return {"source_id": self.source_id, "list": self.label, "sha256": self.sha256,
                "names": len(self.names)}


def parse_optout_list(data: bytes) -> list[str]:
    """The names of a list file's bytes, in order, as written (trimmed)."""
    if len(data) > MAX_LIST_BYTES:
        raise OptoutListError(f"larger than {MAX_LIST_BYTES} bytes ({len(data)})")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise OptoutListError(f"not UTF-8 text (byte {exc.start})") from None
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        names = _json_names(stripped)
    else:
        names = []
        for line in text.splitlines():
            name = line.split("#", 1)[0].strip()
            if name:
                names.append(name)
    for i, name in enumerate(names):
        if len(name) > MAX_NAME_CHARS:
            raise OptoutListError(f"name {i + 1} is longer than {MAX_NAME_CHARS} characters")
    return names


def _json_names(text: str) -> list[str]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OptoutListError(f"invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if isinstance(doc, dict):
        if set(doc) != {"creators"}:
            raise OptoutListError('a JSON object must have exactly one key, "creators"')
        doc = doc["creators"]
    if not isinstance(doc, list) or not all(isinstance(n, str) for n in doc):
        raise OptoutListError("expected a JSON list of names (strings)")
    return [n.strip() for n in doc if n.strip()]


def optout_list(source_id: str, label: str, names: list[str], raw: bytes) -> OptoutList:
    return OptoutList(
        source_id=source_id,
        label=label,
        sha256=hashlib.sha256(raw).hexdigest(),
        names=frozenset(normalise_creator(n) for n in names) - {""},
    )
