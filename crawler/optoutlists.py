"""Contributor opt-out lists published by a source (``optouts.url``): fetched by the crawl like any
other request, through every gate (consent and scope on every redirect hop, blocklisted URLs,
robots.txt, tdmrep.json), and kept in the run's ``run.json`` (``optout_lists``) for the build
(:mod:`pipeline.build.optouts`), which applies the latest fetched copy.

A list that cannot be fetched or read leaves a rejection row (``fetch_failed``, or the gate's
own reason) and no copy: the build then fails closed for that source.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from scrapy import Request
from scrapy.http import Response

from crawler.meta import META_DEPTH, META_KIND, META_SOURCE
from pipeline.registry.config import Source
from pipeline.registry.optouts import OptoutListError, parse_optout_list
from pipeline.runs import reasons

KIND = "optouts"


def list_requests(
    sources: Iterable[Source], callback: Callable[..., Any], errback: Callable[..., Any]
) -> Iterator[Request]:
    """One request per source that publishes its opt-out list at a URL, before its pages."""
    for source in sources:
        if source.optouts.url is not None:
            yield Request(
                source.optouts.url, callback=callback, errback=errback, priority=2,
                dont_filter=True,
                meta={META_SOURCE: source.id, META_DEPTH: 0, META_KIND: KIND},
            )


def read_list(response: Response, source: Source) -> tuple[dict[str, Any] | None, str | None]:
    """(the run.json record of the source's fetched list, None) or (None, why it cannot be
    used); ``url`` is the declared URL (the build looks it up by that), ``final_url`` where it
    was read after redirects."""
    try:
        names = parse_optout_list(response.body)
    except OptoutListError as exc:
        return None, f"opt-out list: {exc}"
    return {
        "url": source.optouts.url,
        "final_url": response.url,
        "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sha256": hashlib.sha256(response.body).hexdigest(),
        "names": names,
    }, None


def unreadable(response: Response, why: str) -> tuple[str, str, str]:
    """(reason, stage, detail) of the rejection row for a list that could not be used."""
    return reasons.FETCH_FAILED, reasons.STAGE_FETCH, f"{why} (HTTP {response.status})"
