"""Shared fixtures: the third-party fixture files, a local HTTP server, config directories."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mockserver import MockServer

from crawler.demo.config import settings_dict, source_dict, write_config_dir

SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """``../shared/fixtures`` (real third-party files, see SOURCES.md there)."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip("../shared/fixtures is absent (a user's clone); CI has it")
    return SHARED_FIXTURES


@pytest.fixture
def mockserver() -> Iterator[MockServer]:
    """A started :class:`MockServer` on 127.0.0.1 (port 0), stopped and joined afterwards."""
    with MockServer() as server:
        yield server


def write_config(dir: Path, sources: list[dict[str, Any]], **settings_overrides: Any) -> Path:
    """Write a valid config dir (``clearance.yaml`` + ``sources/<id>.yaml``); return its path.

    Each source needs ``id`` and ``start_urls``; everything else defaults to an eligible source
    (see :func:`crawler.demo.config.source_dict`: consent and age verification valid relative to
    today, ``scope`` = ``start_urls``, ``allow_private_network: true``, no licence default) and
    nested keys merge, so ``{"consent": {"status": "revoked"}}`` changes only the status.
    ``settings_overrides`` merge into ``clearance.yaml`` the same way, e.g.
    ``limits={"max_pages_per_source": 5}`` or ``signals={"robots": False}``.
    """
    docs = []
    for source in sources:
        rest = {k: v for k, v in source.items() if k not in ("id", "start_urls")}
        docs.append(source_dict(source["id"], source["start_urls"], **rest))
    return write_config_dir(dir, settings_dict(**settings_overrides), docs)
