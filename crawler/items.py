"""What travels through the crawl's per-item stages: one fetched image and what each stage found.

The spider yields a :class:`FetchedImage` for every image response; the item pipelines in
:mod:`crawler.pipelines` fill it in, in the flow's order (screening -> opt-out signals ->
rights -> row), and the last one turns it into the row written to ``items.parquet``. A stage
that refuses the image records the rejection and drops the item (:func:`refuse`); a blocklist
hit is dropped without any record (:func:`withhold`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from crawler.exceptions import ItemRefused, ItemWithheld

if TYPE_CHECKING:
    from scrapy.http import Response

    from crawler.conditional import Earlier
    from crawler.context import CrawlContext
    from crawler.images import Hashes, ImageFacts, ImageRejected
    from crawler.rights.resolve import Decision
    from crawler.signals import SignalResult
    from crawler.signals.response import EmbeddedMetadata, Verdict
    from pipeline.registry.config import Source


@dataclass
class FetchedImage:
    """One image response on its way to a row (never logged: see crawler.redaction)."""

    response: Response
    source: Source
    page_url: str | None
    found: dict[str, Any]  # what the page said about it (caption, rights markup, page signals)
    mime: str | None  # the response's Content-Type
    # A 304 to a conditional request: the earlier row whose content this response confirmed
    # (crawler.conditional); the stages use its hashes, size and embedded evidence, no body.
    earlier: Earlier | None = None
    # screening (crawler.pipelines.screening)
    hashes: Hashes | None = None
    large: bool = False  # too large in bytes or pixels to decode or read on the reactor thread
    facts: ImageFacts | None = None
    undecodable: ImageRejected | None = None
    # opt-out signals (crawler.pipelines.signals)
    headers: Verdict | None = None
    embedded: EmbeddedMetadata | None = None
    results: list[tuple[str, SignalResult]] = field(default_factory=list)
    # rights (crawler.pipelines.rights)
    decision: Decision | None = None

    @property
    def url(self) -> str:
        return self.response.url


def refuse(context: CrawlContext, item: FetchedImage, reason: str, detail: str,
           stage: str) -> NoReturn:
    """Record the rejection of this image at ``stage`` and drop it from the stages after."""
    context.reject(item.url, reason, stage, detail, source_id=item.source.id,
                   page_url=item.page_url)
    raise ItemRefused(reason, log_level="DEBUG")


def withhold() -> NoReturn:
    raise ItemWithheld("withheld", log_level="DEBUG")
