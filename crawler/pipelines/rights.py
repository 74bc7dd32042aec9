"""Stage 300, rights: which licence an image carries, from all its evidence, or why none.

Evidence, most specific first: the image's embedded metadata (read by the opt-out stage in the
same pass), the page's markup about this image (matched by the requested or the final URL),
its scoped ccREL, the page-wide markup, and the source's ``licence.default`` last. Markup or
metadata present but unparseable refuses (``no_licence``); so does a missing or disallowed
licence, or evidence that disagrees with one outside the policy (:mod:`crawler.rights.resolve`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crawler.context import CrawlContext, context_of
from crawler.items import FetchedImage, refuse
from crawler.rights.resolve import Decision, resolve
from pipeline.runs import reasons

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from crawler.rights.embedded import EmbeddedRights
    from crawler.rights.markup import PageMarkup


class RightsStage:
    def __init__(self, context: CrawlContext):
        self.context = context
        self.allow = context.config.settings.licences.effective  # after presets

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RightsStage:
        return cls(context_of(crawler))

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, FetchedImage):
            return item
        if item.earlier is not None:  # a 304, and nothing it was decided on has changed
            item.decision = earlier_decision(item.earlier.row)
            return item
        assert item.embedded is not None
        rights: EmbeddedRights = item.embedded.rights
        markup: PageMarkup = item.found["markup"]
        if rights.error or markup.errors:
            refuse(self.context, item, reasons.NO_LICENCE,
                   "; ".join(filter(None, [rights.error, *markup.errors])), reasons.STAGE_LICENCE)
        decision = resolve(
            rights.evidence + markup.for_image(item.found["requested"], item.url)
            + item.found["scoped"] + markup.page,
            self.allow, item.source.licence.default, source_url=item.page_url or item.url)
        if decision.reason is not None:
            refuse(self.context, item, decision.reason, decision.detail or "",
                   reasons.STAGE_LICENCE)
        item.decision = decision
        return item


def earlier_decision(row: dict[str, Any]) -> Decision:
    """The licence decision of an earlier row whose bytes a 304 confirmed. Its page evidence,
    licence default and policy are those of this crawl: the conditional request was sent only
    when they were unchanged (crawler.conditional.reuse_key)."""
    return Decision(
        licence=row["licence"], licence_url=row["licence_url"],
        licence_source=row["licence_source"], disagreement=row["licence_disagreement"],
        creator=row["creator"], credit=row["credit"], attribution=row["attribution"],
        evidence=list(row["licence_evidence"] or []),
    )
