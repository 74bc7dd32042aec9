"""Resuming a killed crawl: adopt its durable rows, keep its sources' frontiers, checkpoint.

A crawl writes its run durably (:class:`pipeline.runs.writer.RunWriter` with ``resumable``):
rows go to fsynced segments at every checkpoint (:mod:`crawler.extensions.checkpoint`, about
once a second), and each source's :class:`crawler.frontier.Frontier` records the requests made
and those whose result is durable. When such a crawl dies (SIGKILL, OOM, power), the next
``clearance crawl`` whose sources include all of the dead run's:

1. re-checks eligibility first (the caller's plan): a source revoked, expired or suspended
   since is not crawled, its frontier is removed and its rows in the dead run are dropped;
2. adopts the dead run's segments into its own run (``resumed_from`` in run.json), so the
   next build has each item once, and nothing durable is lost;
3. requests none of the URLs whose item or rejection was durable, nor pages that were parsed
   with all their images done (:meth:`Frontier.plan`); what the dead crawl had fetched but
   not made durable is fetched again.

A dead run with nothing durable is removed by the sweep as before; a crawl the scheduler had
to abandon is removed by the scheduler, not resumed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from crawler import frontier as frontiers
from crawler.frontier import Frontier, Pending
from pipeline.runs.writer import RunWriter, resumable_runs
from pipeline.safety.incidents import BLOCKLIST_MATCH, read_incidents
from pipeline.safety.matching import Hit, reliable

if TYPE_CHECKING:
    from crawler.context import CrawlContext
    from crawler.screening import CrawlScreen

logger = logging.getLogger(__name__)


@dataclass
class Resume:
    """The crawl's frontiers and what it resumed; one per crawl, on the CrawlContext."""

    frontiers: dict[str, Frontier] = field(default_factory=dict)
    settled: set[str] = field(default_factory=set)  # never requested again
    pending: dict[str, list[Pending]] = field(default_factory=dict)
    pages_sent: dict[str, int] = field(default_factory=dict)
    resumed_from: list[str] = field(default_factory=list)
    resumed_sources: list[str] = field(default_factory=list)
    adopted_items: pa.Table | None = None
    adopted_rejections: pa.Table | None = None

    def summary(self) -> dict[str, Any]:
        """run.json ``resume``: what was taken over from the killed run(s)."""
        items = 0 if self.adopted_items is None else self.adopted_items.num_rows
        rejections = 0 if self.adopted_rejections is None else self.adopted_rejections.num_rows
        return {"sources": self.resumed_sources, "items": items, "rejections": rejections,
                "not_requested_again": len(self.settled),
                "pages_to_request": sum(len(p) for p in self.pending.values())}

    def checkpoint(self, writer: RunWriter) -> None:
        """Rows so far to durable segments, then the frontiers (never ahead of the rows)."""
        for source_id, url in writer.checkpoint():
            found = self.frontiers.get(source_id or "")
            if found is not None:
                found.done(url)
        for one in self.frontiers.values():
            one.flush()

    def forget(self, urls: Iterable[str]) -> None:
        """Withheld URLs leave every frontier now (CrawlScreen.on_withheld)."""
        gone = list(urls)
        for one in self.frontiers.values():
            one.forget(gone)
        self.settled.difference_update(gone)

    def close(self, *, delete: bool) -> None:
        for one in self.frontiers.values():
            one.close(delete=delete)
        self.frontiers = {}

    def seed(self, context: CrawlContext) -> None:
        """The crawl's in-memory state as if it had written the adopted rows itself: one
        rejection per (URL, reason), late opt-outs and neighbour checks over adopted items."""
        if self.adopted_rejections is not None:
            for url, reason in zip(self.adopted_rejections["url"].to_pylist(),
                                   self.adopted_rejections["reason"].to_pylist(), strict=True):
                context._seen.add((url, reason))
        if self.adopted_items is not None:
            cols = self.adopted_items.select(["url", "pdq", "pdq_quality"]).to_pylist()
            for row in cols:
                context.item_urls.add(row["url"])
                if context.screen is not None:
                    context.screen.admit(row["url"], row["pdq"], row["pdq_quality"])
        for source_id, sent in self.pages_sent.items():
            context.page_requests[source_id] += sent
        if context.screen is not None and self.resumed_from:
            self._seed_hits(context.screen)

    def _seed_hits(self, screen: CrawlScreen) -> None:
        """The killed runs' blocklist hits count as this run's (``counts.withheld``), and
        their PDQs withdraw adopted neighbours at commit as if found in this crawl."""
        killed = set(self.resumed_from)
        for record in read_incidents(screen.data_dir):
            if record.get("crawler", {}).get("run_id") not in killed:
                continue
            screen.incidents += 1
            hashes, match = record.get("hashes") or {}, record.get("match") or {}
            pdq, quality = hashes.get("pdq"), hashes.get("pdq_quality")
            if (record.get("incident_type") != BLOCKLIST_MATCH or not isinstance(pdq, str)
                    or not reliable(pdq, quality)):
                continue
            hit = Hit(match.get("list_id") or "", match.get("list_version") or "",
                      match.get("kind") or "", match.get("matched") or "",
                      match.get("distance"))
            screen.hit_pdqs.append((pdq, screen.screener.threshold_for(hit),
                                    str(record["incident_id"]), hit))


def prepare(data_dir: Path, writer: RunWriter, eligible: list[str], skipped: list[str],
            requested: set[str]) -> Resume:
    """Adopt killed runs of ``requested`` sources into ``writer``, open the frontiers of the
    ``eligible`` sources (kept where resumed, emptied otherwise), remove those of ``skipped``
    sources, and plan what is left to request."""
    resume = Resume()
    keep = set(eligible)
    items, rejections = [], []
    resumed: set[str] = set()
    for run in resumable_runs(data_dir, requested):
        try:
            adopted_items, adopted_rejections = writer.adopt(run, keep)
        finally:
            run.release()
        items.append(adopted_items)
        rejections.append(adopted_rejections)
        resumed.update(set(run.sources) & keep)
    resume.resumed_from = list(writer.resumed_from)
    resume.resumed_sources = sorted(resumed)
    if items:
        resume.adopted_items = pa.concat_tables(items)
        resume.adopted_rejections = pa.concat_tables(rejections)
    for source_id in skipped:
        if not frontiers.discard(data_dir, source_id):
            logger.warning("%s: its frontier is held by another crawl; left alone", source_id)
    for source_id in eligible:
        one = Frontier.open(data_dir, source_id, writer.run_id, keep=source_id in resumed)
        if one is None:
            logger.warning("%s: another crawl of this source holds its frontier; this crawl "
                           "runs without one (not resumable)", source_id)
            continue
        resume.frontiers[source_id] = one
    for table in (resume.adopted_items, resume.adopted_rejections):
        if table is None:
            continue
        for source_id, url in zip(table["source_id"].to_pylist(), table["url"].to_pylist(),
                                  strict=True):
            found = resume.frontiers.get(source_id or "")
            if found is not None:
                found.done(url)  # the segments are the truth; the frontier may have lagged
    for source_id in sorted(resumed):
        one = resume.frontiers.get(source_id)
        if one is None:
            continue
        plan = one.plan()
        resume.settled |= plan.settled
        resume.pending[source_id] = plan.pending
        resume.pages_sent[source_id] = plan.pages_sent
    return resume
