"""Stage 400, rows: an image that passed every stage becomes its ``items.parquet`` row.

The row carries its evidence: source, consent record (id and hash as it stood), age
verification, licence with where it was found, every opt-out check (pre-fetch gates, the page's
signals, the response's headers, the embedded metadata; checks switched off say so), the hash
lists it was screened against, and its content hashes. Columns follow
:mod:`pipeline.runs.schema`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from crawler.conditional import reuse_key
from crawler.context import CrawlContext, context_of
from crawler.items import FetchedImage
from crawler.meta import META_SIGNALS
from crawler.signals import OFF
from crawler.signals.response import Verdict

if TYPE_CHECKING:
    from scrapy.crawler import Crawler


class RowStage:
    def __init__(self, context: CrawlContext):
        self.context = context
        self.consent_sha256 = {s.id: s.consent_sha256 for s in context.registry.sources.values()}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RowStage:
        return cls(context_of(crawler))

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, FetchedImage):
            return item
        return self.row(item)

    def row(self, item: FetchedImage) -> dict[str, Any]:
        context, source, response = self.context, item.source, item.response
        facts, decision, embedded = item.facts, item.decision, item.embedded
        assert facts is not None and decision is not None and embedded is not None
        assert item.headers is not None
        context.images[source.id] += 1
        signals = {**item.found["page_signals"], **(response.meta.get(META_SIGNALS) or {}),
                   **item.headers.rows(), **Verdict(item.results).rows()}
        for name in context.signals_off:
            signals[name] = {"check": name, "ran": False, "found": None, "decision": OFF,
                             "detail": "switched off in clearance.yaml signals:"}
        av = source.age_verification
        assert av is not None  # eligible sources always have one
        rights = embedded.rights
        row = {
            "row_id": facts.sha256,
            "url": response.url,
            "page_url": item.page_url,
            "source_id": source.id,
            "consent_id": source.consent.id,
            "consent_sha256": self.consent_sha256[source.id],
            "age_verification_id": av.id,
            "fetched_at": datetime.now(UTC),
            "http_status": response.status,
            "content_type": item.mime or facts.mime,
            "bytes": facts.bytes,
            "sha256": facts.sha256,
            "md5": facts.md5,
            "pdq": facts.pdq,
            "width": facts.width,
            "height": facts.height,
            "licence": decision.licence,
            "licence_url": decision.licence_url,
            "licence_source": decision.licence_source,
            "creator": decision.creator,
            "attribution": decision.attribution,
            "caption": item.found["caption"],
            "signals": [signals[k] for k in sorted(signals)],
            "blocklists": context.blocklist_refs,
            "run_id": context.run_id,
            "sha1": facts.sha1,
            "pdq_quality": facts.pdq_quality,
            "licence_evidence": decision.evidence,
            "licence_disagreement": decision.disagreement,
            "minor_age_disclosure": rights.minor_age,
            "model_release_status": rights.model_release,
            "credit": decision.credit,
        }
        if context.validators is not None and not embedded.c2pa_remote_url:
            # recorded in state.sqlite only once the run commits with this row in it
            key = reuse_key(context.config, source, item.found, response.url, item.page_url)
            context.validators.note(row, response.headers, key, facts.pdq_variants,
                                    item.earlier)
        return row
