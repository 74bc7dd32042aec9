"""The crawl's shared state: eligible sources by scope, the run writer, the rejection log.

One :class:`CrawlContext` is made by :mod:`crawler.runner` per crawl and attached to the
Scrapy crawler (:func:`attach`) before its components are built, so the gates, the spider and
the item stages agree on one registry and write to one run. (Not a setting: Scrapy copies
settings, and the context holds open Parquet writers.)
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from crawler.conditional import Validators
from crawler.images import (
    DecodePool,
    DecodeThreads,
    ImageRejected,
    content_hashes,
    inspect_image,
)
from crawler.meta import META_PAGE, META_SOURCE
from crawler.screening import CrawlScreen, Fetched
from pipeline.registry.config import Config, Source
from pipeline.registry.scope import is_policy_url, url_in_prefixes
from pipeline.runs.reasons import STAGE_SIGNALS
from pipeline.runs.writer import RunWriter

if TYPE_CHECKING:
    from crawler.resume import Resume

logger = logging.getLogger(__name__)


_ATTR = "clearance_context"
ERROR_BODY_DECODE_BYTES = 256 * 1024  # error bodies decoded inline up to this size


def attach(crawler: Any, context: CrawlContext) -> None:
    setattr(crawler, _ATTR, context)


def context_of(crawler: Any) -> CrawlContext:
    context = getattr(crawler, _ATTR, None)
    if context is None:
        raise RuntimeError(
            "Clearance components need a CrawlContext attached to the crawler "
            "(crawler.context.attach); refusing to run without the consent registry"
        )
    return context


class Registry:
    """Eligible sources and the scope question: which source (if any) covers this URL?"""

    def __init__(self, sources: list[Source]):
        self.sources: dict[str, Source] = {s.id: s for s in sources}

    def source_for(self, url: str, prefer: str | None = None) -> Source | None:
        if prefer is not None:
            preferred = self.sources.get(prefer)
            if preferred is not None and url_in_prefixes(url, preferred.scope):
                return preferred
        for source in self.sources.values():
            if url_in_prefixes(url, source.scope):
                return source
        return None

    def policy_sources(self, url: str) -> list[Source]:
        """Sources whose scope names the origin of this policy-file URL (robots.txt, ...)."""
        return [s for s in self.sources.values() if is_policy_url(url, s.scope)]


@dataclass
class CrawlContext:
    config: Config
    registry: Registry
    writer: RunWriter
    signals_off: list[str] = field(default_factory=list)
    # Contributor opt-out lists read this crawl, per source (crawler.optoutlists; run.json).
    optout_lists: dict[str, dict[str, Any]] = field(default_factory=dict)
    _seen: set[tuple[str, str]] = field(default_factory=set)
    pages: Counter[str] = field(default_factory=Counter)  # pages parsed, per source
    # page requests sent, per source (crawler.downloadermiddlewares.pagebudget)
    page_requests: Counter[str] = field(default_factory=Counter)
    images: Counter[str] = field(default_factory=Counter)
    limits_hit: dict[str, list[str]] = field(default_factory=dict)
    # Image URLs refused through a page's opt-out: url -> (reason, detail). An image also found
    # on a page that did not opt out is still refused (opt-outs win).
    opted_out: dict[str, tuple[str, str]] = field(default_factory=dict)
    item_urls: set[str] = field(default_factory=set)
    # Blocklist screening (crawler.screening); None only in unit tests that build a context
    # by hand without lists.
    screen: CrawlScreen | None = None
    # Images are decoded + PDQ-hashed in threads (crawler.images.DecodeThreads) or, for large
    # bodies, in worker processes (DecodePool).
    decode_pool: DecodePool | DecodeThreads | None = None
    # The frontiers and what was resumed (crawler.resume); None: not resumable (unit tests).
    resume: Resume | None = None
    # Validators of images kept by earlier runs (crawler.conditional); None: no conditional
    # requests (unit tests that build a context by hand).
    validators: Validators | None = None

    @property
    def run_id(self) -> str:
        return self.writer.run_id

    @property
    def settings(self):  # type: ignore[no-untyped-def]
        return self.config.settings

    def reject(
        self,
        url: str,
        reason: str,
        stage: str,
        detail: str | None = None,
        *,
        source_id: str | None = None,
        page_url: str | None = None,
    ) -> bool:
        """Record one rejection row per (URL, reason) per run; False if already recorded.

        A URL withheld by a blocklist (or on a URL list) never gets a row.
        """
        if self.screen is not None and (
            url in self.screen.withheld_urls
            or (page_url is not None and page_url in self.screen.withheld_urls)
            or self.screen.check_url(url, source_id, page_url)
        ):
            return False
        if detail and self.screen is not None:
            # a detail may quote another URL (a redirect hop, a remote C2PA manifest)
            for withheld in self.screen.withheld_urls:
                if withheld in detail:
                    detail = detail.replace(withheld, "<withheld by blocklist>")
        key = (url, reason)
        if key in self._seen:
            return False
        self._seen.add(key)
        self.writer.add_rejection(
            {
                "url": url,
                "page_url": page_url,
                "source_id": source_id,
                "stage": stage,
                "reason": reason,
                "detail": detail,
                "at": datetime.now(UTC),
            }
        )
        logger.debug("rejected %s: %s (%s)", url, reason, detail)
        return True

    def opt_out(
        self, url: str, reason: str, detail: str, *, source_id: str, page_url: str
    ) -> None:
        """Refuse an image found on a page whose own signals refuse; never fetched."""
        self.opted_out.setdefault(url, (reason, detail))
        self.reject(url, reason, STAGE_SIGNALS, detail, source_id=source_id, page_url=page_url)

    def add_item(self, row: dict[str, Any]) -> None:
        if self.screen is not None:
            if row["url"] in self.screen.withheld_urls or self.screen.is_suspended(
                row["source_id"]
            ):
                return
        if row["url"] in self.opted_out:
            reason, detail = self.opted_out[row["url"]]
            self.reject(row["url"], reason, STAGE_SIGNALS, detail,
                        source_id=row["source_id"], page_url=row["page_url"])
            return
        if self.screen is not None:  # only rows in the run can be withdrawn as neighbours
            self.screen.admit(row["url"], row.get("pdq"), row.get("pdq_quality"))
        self.item_urls.add(row["url"])
        self.writer.add_item(row)

    def late_opt_outs(self) -> set[str]:
        """Items written before a page carrying them opted out: removed at commit."""
        return self.item_urls & set(self.opted_out)

    # ------------------------------------------------------------------ screening

    @property
    def blocklist_refs(self) -> list[dict[str, str]]:
        """The items' ``blocklists`` column: every list each image was screened against."""
        return [] if self.screen is None else self.screen.screener.refs()

    @property
    def pdq_dihedral(self) -> bool:
        return self.screen is not None and self.screen.screener.pdq_dihedral

    def is_suspended(self, source_id: str | None) -> bool:
        return self.screen is not None and self.screen.is_suspended(source_id)

    def withheld(self, response: Any, hashes: Any, facts: Any, mime: str | None) -> bool:
        """Screen a fetched image (before anything about it is recorded): True when it must
        leave no row, because it is a hit or a hit's neighbour, or its source is suspended."""
        if self.screen is None:
            return False
        source_id = response.meta[META_SOURCE]
        ip = getattr(response, "ip_address", None)
        image = Fetched(
            url=response.url, source_id=source_id, page_url=response.meta.get(META_PAGE),
            sha256=hashes.sha256, md5=hashes.md5, sha1=hashes.sha1,
            pdq=getattr(facts, "pdq", None), pdq_quality=getattr(facts, "pdq_quality", None),
            pdq_variants=getattr(facts, "pdq_variants", ()),
            server_ip=None if ip is None else str(ip), http_status=response.status,
            content_type=mime, bytes=getattr(facts, "bytes", None) or len(response.body),
            redirect_chain=tuple(response.meta.get("redirect_urls") or ()),
            accessed_at=datetime.now(UTC).isoformat(),
        )
        if self.screen.check_image(image):
            if self.validators is not None:  # a hit keeps nothing, earlier runs' included
                self.validators.forget({image.url})
            # Neighbours already admitted leave the run now, not only at commit: a crawl killed
            # after this hit must not leave them in its hidden partial file.
            self.withdraw_neighbours()
            return True
        return self.screen.is_suspended(source_id)

    def withheld_error_body(self, response: Any, max_pixels: int) -> bool:
        """Screen the body of an image request answered with an HTTP error (it is not
        recorded as an image, but its URL would be): exact hashes always, PDQ when it is
        small enough to decode here."""
        if self.screen is None or not response.body:
            return False
        hashes = content_hashes(response.body)
        facts = None
        if len(response.body) <= ERROR_BODY_DECODE_BYTES:
            try:
                facts = inspect_image(response.body, max_pixels, pdq=True, hashes=hashes,
                                      dihedral=self.pdq_dihedral)
            except ImageRejected:
                pass
        content_type = response.headers.get(b"Content-Type")
        mime = content_type.decode("latin-1") if content_type else None
        return self.withheld(response, hashes, facts, mime)

    def withdraw_neighbours(self) -> int:
        """Neighbour expansion: admitted items near a hit leave the run before it commits."""
        if self.screen is None:
            return 0
        found = self.screen.neighbours()
        if not found:
            return 0
        centres = {url: (centre, threshold, incident, hit)
                   for url, centre, threshold, incident, hit in found}
        rows = self.writer.remove_items(set(centres))
        if self.validators is not None:
            self.validators.forget(set(centres))
        self.item_urls.difference_update(centres)
        self.screen.withdraw(rows, centres)
        return len(rows)

    def hit_limit(self, name: str, source_id: str) -> None:
        hit = self.limits_hit.setdefault(name, [])
        if source_id not in hit:
            hit.append(source_id)
