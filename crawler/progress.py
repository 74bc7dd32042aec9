"""Live crawl progress on stderr with rich: pages, images, rejections per reason."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live
from rich.text import Text
from scrapy import signals
from twisted.internet.task import LoopingCall

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from crawler.context import CrawlContext


def _line(context: CrawlContext) -> Text:
    writer = context.writer
    top = ", ".join(f"{r} {n}" for r, n in writer.by_reason.most_common(4))
    text = Text("crawling ", style="bold")
    text.append(f"{sum(context.pages.values())} pages  ", style="cyan")
    text.append(f"{writer.items.count} images kept  ", style="green")
    text.append(f"{writer.rejections.count} refused", style="yellow")
    if top:
        text.append(f" ({top})", style="dim")
    return text


def attach_progress(crawler: Crawler, context: CrawlContext) -> None:
    console = Console(stderr=True)
    live = Live(_line(context), console=console, refresh_per_second=4, transient=True)
    loops: list[LoopingCall] = []

    def opened(spider: object) -> None:
        # Made here, not above: LoopingCall() imports the default reactor, which must not be
        # installed before Scrapy installs its own.
        loop = LoopingCall(lambda: live.update(_line(context)))
        loops.append(loop)
        live.start()
        loop.start(0.25, now=True)

    def closed(spider: object, reason: str) -> None:
        for loop in loops:
            if loop.running:
                loop.stop()
        live.stop()
        console.print(_line(context))

    crawler.signals.connect(opened, signal=signals.spider_opened, weak=False)
    crawler.signals.connect(closed, signal=signals.spider_closed, weak=False)
