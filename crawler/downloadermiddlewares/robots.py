"""Robots gate: robots.txt obeyed for our token, fail closed, with no race on the first fetch.

Replaces Scrapy's RobotsTxtMiddleware, which DESIGN.md shows lets requests through (a shared
Deferred hands later waiters no parser, 5xx bodies are parsed as rules, download errors mean
allow-all). Here every request to an origin waits for that origin's own policy object; each
waiter gets its own Deferred; 4xx allows, 5xx/errors/oversize reserve the origin until a retry
after ``CLEARANCE_ROBOTS_RETRY_AFTER`` seconds; a policy is kept for at most 24 hours.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scrapy import Request
from scrapy.exceptions import IgnoreRequest
from scrapy.http.request import NO_CALLBACK
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.defer import Deferred

from crawler.context import CrawlContext, context_of
from crawler.downloadermiddlewares.consent import META_PAGE, META_POLICY, META_SOURCE
from crawler.exceptions import Refused
from crawler.robots import ROBOTS_MAX_BYTES, RobotsPolicy
from crawler.signals import ALLOW, DENY, SignalResult
from crawler.signals.agents import load_ai_agents
from pipeline import reasons

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)

META_SIGNALS = "clearance_signals"
CACHE_TTL_S = 24 * 3600
MAX_CRAWL_DELAY_S = 60.0


@dataclass
class _HostState:
    policy: RobotsPolicy | None = None
    failure: str | None = None  # why the origin is reserved (fail closed)
    fetched_at: float = 0.0
    retry_at: float = 0.0
    fetching: bool = False
    waiters: list[Deferred[None]] = field(default_factory=list)


def record_signal(request: Request, result: SignalResult) -> None:
    """Keep the latest result per check on the request (redirect hops overwrite)."""
    request.meta.setdefault(META_SIGNALS, {})[result.check] = result.as_row()


class RobotsGateMiddleware:
    PRIORITY = 1000

    def __init__(self, crawler: Crawler, context: CrawlContext):
        self.crawler = crawler
        self.context = context
        self.stats = crawler.stats
        settings = context.config.settings
        self.token = settings.robots_token
        self.ai_optout = settings.signals.ai_agents
        self.ai_agents = load_ai_agents()
        self.retry_after = crawler.settings.getfloat("CLEARANCE_ROBOTS_RETRY_AFTER", 60.0)
        self.fetch_timeout = crawler.settings.getfloat("CLEARANCE_ROBOTS_TIMEOUT", 30.0)
        self.hosts: dict[str, _HostState] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RobotsGateMiddleware:
        return cls(crawler, context_of(crawler))

    async def process_request(self, request: Request) -> None:
        if request.meta.get(META_POLICY):
            return  # policy files themselves (already inside consent: the gate checked)
        parts = urlparse_cached(request)
        origin = f"{parts.scheme}://{parts.netloc}"
        state = await self._state(origin, request)
        source_id = request.meta.get(META_SOURCE)
        if state.policy is None:
            self._refuse(request, reasons.ROBOTS_UNREACHABLE, state.failure or "unavailable")
        assert state.policy is not None
        decision = state.policy.check(request.url, ai_optout=self.ai_optout)
        record_signal(
            request,
            SignalResult(
                "robots",
                ALLOW if decision.allowed else DENY,
                decision.found,
                decision.reason,
                decision.detail,
            ),
        )
        if not decision.allowed:
            assert decision.reason is not None
            detail = f"{decision.found}; {decision.detail}" if decision.found else decision.detail
            self._refuse(request, decision.reason, detail or "", source_id)
        if state.policy.crawl_delay:
            self._apply_crawl_delay(request, state.policy.crawl_delay)
        self.stats.inc_value("robots/allowed")

    async def _state(self, origin: str, request: Request) -> _HostState:
        state = self.hosts.setdefault(origin, _HostState())
        now = time.monotonic()
        stale = (state.policy is not None and now - state.fetched_at > CACHE_TTL_S) or (
            state.failure is not None and now >= state.retry_at
        )
        if state.fetching:
            waiter: Deferred[None] = Deferred()
            state.waiters.append(waiter)
            await maybe_deferred_to_future(waiter)
        elif state.fetched_at == 0.0 or stale:
            state.fetching = True
            try:
                await self._fetch(origin, state, request)
            finally:
                state.fetching = False
                waiters, state.waiters = state.waiters, []
                for w in waiters:
                    w.callback(None)
        return state

    async def _fetch(self, origin: str, state: _HostState, trigger: Request) -> None:
        url = f"{origin}/robots.txt"
        robots_req = Request(
            url,
            priority=self.PRIORITY,
            dont_filter=True,
            callback=NO_CALLBACK,
            meta={
                META_POLICY: "robots",
                META_SOURCE: trigger.meta.get(META_SOURCE),
                "dont_obey_robotstxt": True,
                "redirect_ttl": 5,
                "download_maxsize": ROBOTS_MAX_BYTES,
                "download_timeout": self.fetch_timeout,
            },
        )
        self.stats.inc_value("robots/request_count")
        policy: RobotsPolicy | None = None
        failure: str | None = None
        try:
            response: Response = await self.crawler.engine.download_async(robots_req)
        except Refused as exc:
            failure = f"{url}: fetch refused ({exc})"
        except IgnoreRequest as exc:
            failure = f"{url}: {exc}"
        except Exception as exc:  # noqa: BLE001 - any download error reserves the origin
            failure = f"{url}: {type(exc).__name__}: {exc}"
        else:
            status = response.status
            final = response.url
            self.stats.inc_value(f"robots/response_status_count/{status}")
            if 200 <= status < 300:
                text = response.body.decode("utf-8", errors="replace")
                policy = RobotsPolicy(text, self.token, self.ai_agents, final)
            elif 400 <= status < 500:
                policy = RobotsPolicy.allow_all(f"{final} answered {status}: allow all", self.token)
            elif 300 <= status < 400:
                failure = f"{url}: redirect not followed (HTTP {status} from {final})"
            else:
                failure = f"{url}: HTTP {status}; reserved until it answers"
        now = time.monotonic()
        state.fetched_at = now
        if policy is not None:
            state.policy, state.failure = policy, None
        else:
            state.policy, state.failure = None, failure
            state.retry_at = now + self.retry_after
            self.stats.inc_value("robots/unreachable")
            logger.warning("robots.txt unavailable, origin reserved: %s", failure)

    def _apply_crawl_delay(self, request: Request, delay: float) -> None:
        downloader = self.crawler.engine.downloader
        _, slot = downloader._get_slot(request)
        wanted = min(delay, MAX_CRAWL_DELAY_S)
        if slot.delay < wanted:
            slot.delay = wanted
            logger.info("Crawl-delay %.2fs applied to %s", wanted, request.url)

    def _refuse(
        self, request: Request, reason: str, detail: str, source_id: str | None = None
    ) -> None:
        self.context.reject(
            request.url,
            reason,
            reasons.STAGE_ROBOTS,
            detail,
            source_id=source_id or request.meta.get(META_SOURCE),
            page_url=request.meta.get(META_PAGE),
        )
        self.stats.inc_value(f"robots/forbidden/{reason}")
        raise Refused(reason, detail)

