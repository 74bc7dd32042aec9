"""Rich output for people: the one console and table they go through, and live crawl progress.

Output for people never wraps a path or a URL across lines, in a terminal or a pipe (DESIGN.md):
what a script or a person copies must exist. So every rich line printed for people goes through
:func:`people_console` and every table is an :class:`UnbrokenTable`; nothing makes its own
``Console`` or ``Table``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text
from scrapy import signals
from twisted.internet.task import LoopingCall

if TYPE_CHECKING:
    from rich.console import ConsoleOptions, RenderableType, RenderResult
    from rich.measure import Measurement
    from scrapy.crawler import Crawler

    from crawler.context import CrawlContext


def people_console(*, stderr: bool = True) -> Console:
    """A rich console that writes every line whole.

    ``soft_wrap``: rich otherwise breaks (and crops) lines at the terminal width, or at 80
    columns (``$COLUMNS``) when writing into a pipe; a long path is written on one line instead
    and a terminal folds it only on screen, so copying it gives the path. ``markup`` and
    ``highlight`` off: text is printed as given (a path holding ``[brackets]`` is not read as
    markup); style comes from :class:`~rich.text.Text` spans.
    """
    return Console(stderr=stderr, soft_wrap=True, markup=False, highlight=False)


class UnbrokenTable(Table):
    """A rich table that never splits a word, a path or a URL inside a cell.

    rich fits a table to the console by wrapping cells, folding words and cutting cells with an
    ellipsis. Here each column is at least as wide as its longest word (its longest line, for
    ``no_wrap`` columns, which is how path and URL columns are declared), so cells wrap only
    between words; a table that cannot fit that way is written wider than the console, whole,
    and a terminal folds it only on screen.
    """

    def _keep_words_whole(self) -> None:
        for column in self.columns:
            cells: list[RenderableType] = [column.header, *column.cells]
            texts = [c.plain if isinstance(c, Text) else str(c) for c in cells]
            pieces = ([line for t in texts for line in t.splitlines()] if column.no_wrap
                      else [word for t in texts for word in t.split()])
            longest = max((cell_len(p) for p in pieces), default=0)
            column.min_width = max(column.min_width or 0, longest)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        self._keep_words_whole()
        # rich's last resort for a table wider than the console shrinks every column evenly,
        # whatever its minimum; give it the room the minimums need instead.
        need = self.__rich_measure__(console, options.update_width(_UNBOUNDED)).minimum
        yield from super().__rich_console__(console, options.update_width(
            max(options.max_width, need)))

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        self._keep_words_whole()
        return super().__rich_measure__(console, options)


_UNBOUNDED = 1 << 20


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
    console = people_console()
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
