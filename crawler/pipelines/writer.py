"""The last stage: rows go to the run's items.parquet (streamed; committed at the end)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crawler.context import context_of

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from crawler.context import CrawlContext


class RunWriterPipeline:
    def __init__(self, context: CrawlContext):
        self.context = context

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RunWriterPipeline:
        return cls(context_of(crawler))

    def process_item(self, item: dict[str, Any]) -> dict[str, Any]:
        self.context.add_item(item)
        return item
