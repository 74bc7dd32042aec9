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


@pytest.fixture
def slow_site() -> Iterator[MockServer]:
    """A site of 40 pages that each take 0.4 s, with an image each: a crawl long enough to be
    interrupted (SIGINT, SIGTERM, SIGKILL) mid-way."""
    from crawlkit import image_bytes, page

    with MockServer() as srv:
        srv.route("/robots.txt", status=404)
        links = "".join(f'<a href="/site/p{i}.html">p</a>' for i in range(40))
        srv.route("/site/", body=page(links + '<img src="/site/a.jpg">'))
        srv.route("/site/a.jpg", body=image_bytes(), content_type="image/jpeg")
        for i in range(40):
            srv.route(f"/site/p{i}.html", body=page(f'<img src="/site/i{i}.jpg">'), delay=0.4)
            srv.route(f"/site/i{i}.jpg", body=image_bytes((i, i, i)), content_type="image/jpeg")
        yield srv
