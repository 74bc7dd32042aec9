"""The well-known AI crawler user agents, as data (``crawler/data/ai_agents.txt``).

A robots.txt group naming one of these is an AI-training opt-out for the paths it disallows
(DESIGN.md, ``robots_ai_optout``). The list is derived from the ai.robots.txt project and
regenerated with ``tools/update_ai_agents.py``; edit the data file, not this module.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

# Package data of ``crawler`` (pyproject: crawler = ["data/*", ...]).
DATA_PACKAGE = "crawler"
DATA_FILE = ("data", "ai_agents.txt")


def parse_agents(text: str) -> frozenset[str]:
    """Lower-cased product tokens from the data file format (``#`` starts a comment)."""
    agents = set()
    for line in text.splitlines():
        token = " ".join(line.split("#", 1)[0].split())
        if token:
            agents.add(token.lower())
    return frozenset(agents)


def _read_data() -> str:
    try:
        return resources.files(DATA_PACKAGE).joinpath(*DATA_FILE).read_text(encoding="utf-8")
    except (OSError, TypeError, ModuleNotFoundError):
        # setuptools' editable finder can expose ``crawler`` as a namespace package whose path
        # holds a non-directory hook entry, which importlib.resources (3.11) refuses; the file
        # is still beside this module.
        return Path(__file__).resolve().parents[1].joinpath(*DATA_FILE).read_text(encoding="utf-8")


@cache
def load_ai_agents() -> frozenset[str]:
    """The bundled list of AI crawler product tokens, lower-cased (read once per process)."""
    agents = parse_agents(_read_data())
    if not agents:
        raise RuntimeError(f"{DATA_PACKAGE}/{'/'.join(DATA_FILE)} lists no agents")
    return agents
