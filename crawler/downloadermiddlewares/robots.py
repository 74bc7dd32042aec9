"""Robots gate: robots.txt obeyed for our token, fail closed, with no race on the first fetch.

Replaces Scrapy's RobotsTxtMiddleware, which DESIGN.md shows lets requests through (a shared
Deferred hands later waiters no parser, 5xx bodies are parsed as rules, download errors mean
allow-all). The file is fetched and cached by :class:`crawler.policyfiles.OriginPolicies`: every
request to an origin waits for that origin's answer; 4xx allows, 5xx/errors/oversize reserve the
origin until a retry after ``CLEARANCE_POLICY_RETRY_AFTER`` seconds; kept for at most 24 hours.

The other policy files (tdmrep.json, ai.txt, fetched by the opt-out gate) pass through here too:
each is requested only where that cached robots policy allows it for our token.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from scrapy import Request
from scrapy.exceptions import IgnoreRequest

from crawler.context import CrawlContext, context_of
from crawler.exceptions import Refused
from crawler.meta import META_PAGE, META_POLICY, META_SOURCE, record_signal
from crawler.policyfiles import OriginPolicies, PolicyFileDisallowed
from crawler.signals import ALLOW, DENY, SignalResult, evidence, located
from crawler.signals.agents import load_ai_agents
from crawler.signals.aipref import content_usage_from_robots
from crawler.signals.robots import ROBOTS_MAX_BYTES, RobotsPolicy
from crawler.signals.robotsfile import decode
from pipeline.runs import reasons

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

MAX_CRAWL_DELAY_S = 60.0


def _path(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class RobotsGateMiddleware:
    def __init__(self, crawler: Crawler, context: CrawlContext):
        self.crawler = crawler
        self.context = context
        self.stats = crawler.stats
        settings = context.config.settings
        self.token = settings.robots_token
        self.ai_optout = settings.signals.ai_agents
        self.ai_agents = load_ai_agents()
        self.content_usage = settings.signals.content_usage
        self.files: OriginPolicies[RobotsPolicy] = OriginPolicies(
            crawler,
            "robots",
            "/robots.txt",
            parse=lambda r: RobotsPolicy(decode(r.body), self.token, self.ai_agents, r.url),
            absent=lambda why: RobotsPolicy.allow_all(why, self.token),
            max_bytes=ROBOTS_MAX_BYTES,
            retry_after=crawler.settings.getfloat("CLEARANCE_POLICY_RETRY_AFTER", 60.0),
            timeout=crawler.settings.getfloat("CLEARANCE_POLICY_TIMEOUT", 30.0),
        )

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RobotsGateMiddleware:
        return cls(crawler, context_of(crawler))

    async def process_request(self, request: Request) -> None:
        policy_file = request.meta.get(META_POLICY)
        if policy_file == self.files.name:
            return  # robots.txt itself, and its redirect hops (already inside consent)
        if policy_file:
            await self._policy_file(request)
            return
        state = await self.files.get(request)
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
        if self.content_usage and state.policy.content_usage:
            usage = content_usage_from_robots(state.policy.content_usage, _path(request.url))
            usage = located(usage, state.policy.source_url)
            record_signal(request, usage, "content_usage.robots")
            if usage.denies:
                self._refuse(request, usage.reason or reasons.CONTENT_USAGE_DISALLOWED,
                             evidence(usage), source_id)
        if state.policy.crawl_delay:
            self._apply_crawl_delay(request, state.policy.crawl_delay)
        self.stats.inc_value("robots/allowed")

    async def _policy_file(self, request: Request) -> None:
        """tdmrep.json, ai.txt (and each redirect hop): requested only where robots.txt allows.

        Decided on the origin's cached robots policy (the request that triggered the file has
        already waited for it, so robots.txt is not fetched again). Disallowed: nothing is sent
        and the file counts as absent (:class:`PolicyFileDisallowed`), since the site chose not
        to let us read it. Our token's group decides, not the AI-agent groups: the question is
        whether we may read the file, and reading more opt-out files is the cautious side. An
        unreachable robots.txt, or a decision that timed out, reserves the origin instead.
        """
        state = await self.files.get(request)
        path = _path(request.url)
        if state.policy is None:
            self.stats.inc_value("robots/policy_file_not_read/unreachable")
            raise IgnoreRequest(
                f"robots.txt unreachable ({state.failure or 'unavailable'}); {path} not read"
            )
        decision = state.policy.check(request.url, ai_optout=False)
        if decision.allowed:
            return
        self.stats.inc_value("robots/policy_file_not_read/disallowed")
        if decision.timed_out:
            raise IgnoreRequest(f"{path} not read: {decision.detail}")
        hops = request.meta.get("redirect_urls")
        via = f" (redirected from {_path(hops[0])})" if hops else ""
        raise PolicyFileDisallowed(
            f"robots.txt disallows {path}{via} for {self.token}; not read",
            after_redirect=bool(hops),
        )

    def _apply_crawl_delay(self, request: Request, delay: float) -> None:
        downloader = self.crawler.engine.downloader
        _, slot = downloader._get_slot(request)
        wanted = min(delay, MAX_CRAWL_DELAY_S)
        if slot.delay < wanted or slot.jitter:
            # Crawl-delay is a minimum: Scrapy's jitter (0.5x-1.5x) would undercut it.
            slot.delay = max(slot.delay, wanted)
            slot.jitter = 0.0
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

