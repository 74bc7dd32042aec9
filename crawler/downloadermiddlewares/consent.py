"""Consent gate: nothing outside an eligible source's scope is ever sent.

The first downloader middleware on the way out, placed before robots handling, so it sees every
request: start URLs, followed links, images, policy files (robots.txt, ai.txt, tdmrep.json), and
each redirect hop (Scrapy re-schedules redirects, and ``engine.download_async`` loops them back
through the middlewares). ``dont_filter`` and ``dont_obey_robotstxt`` do not bypass it.

A URL carrying user info (``http://user:password@host/``) is refused whatever its scope.
Scrapy 2.19 makes no ``Authorization`` header of it, but Twisted takes ``user:password@host`` for
the host name: directly it fails with ``invalid hostname: user:password@host`` (an error that
quotes the password), through a proxy it sends the whole URL and ``Host: user:password@host``.
The crawl never authenticates, so such a link or redirect hop is never sent, and is recorded
``out_of_scope`` with the detail ``URL carries credentials`` (rows mask user info as ``***``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scrapy import Request
from scrapy.http import Response
from scrapy.utils.httpobj import urlparse_cached

from crawler.context import CrawlContext, context_of
from crawler.exceptions import Refused
from crawler.meta import META_KIND, META_PAGE, META_POLICY, META_SOURCE
from crawler.netguard import Resolver, non_public
from crawler.screening import Dropped
from pipeline.runs import reasons

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

CREDENTIALS_DETAIL = "URL carries credentials (user info before the host); never sent"


def carries_credentials(request: Request) -> bool:
    """True when the URL's authority holds user info (``user@``, ``user:password@``)."""
    return "@" in urlparse_cached(request).netloc


def _via(request: Request, detail: str) -> str:
    hop = request.meta.get("redirect_urls")
    return f"{detail} (redirected from {hop[-1]})" if hop else detail


class ConsentGateMiddleware:
    def __init__(self, crawler: Crawler, context: CrawlContext):
        self.crawler = crawler
        self.context = context
        self.stats = crawler.stats
        self.resolver = Resolver()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ConsentGateMiddleware:
        return cls(crawler, context_of(crawler))

    async def process_request(self, request: Request) -> None:
        url = request.url
        page_url = request.meta.get(META_PAGE)
        prev_source = request.meta.get(META_SOURCE)
        registry = self.context.registry
        screen = self.context.screen
        if screen is not None:
            # Blocklists before anything else: a listed URL is never sent nor named in a row.
            if request.meta.get(META_KIND) == "image":
                screen.image_urls.add(url)
            if screen.is_suspended(prev_source):
                self._drop(request, "source_suspended")
            owner = prev_source or getattr(registry.source_for(url), "id", None)
            if screen.check_url(url, owner, page_url, request.meta.get("redirect_urls")):
                self._drop(request, "blocklist_url")
        if carries_credentials(request):
            self.stats.inc_value("consent/credentials_in_url")
            self._refuse(request, reasons.OUT_OF_SCOPE, _via(request, CREDENTIALS_DETAIL),
                         prev_source, page_url)
        if request.meta.get(META_POLICY):
            owners = registry.policy_sources(url)
            source = owners[0] if owners else registry.source_for(url, prefer=prev_source)
            allow_private = any(s.allow_private_network for s in owners) or bool(
                source and source.allow_private_network
            )
        else:
            source = registry.source_for(url, prefer=prev_source)
            allow_private = bool(source and source.allow_private_network)
        if source is None:
            detail = _via(request, "not inside the scope of any eligible source")
            self._refuse(request, reasons.OUT_OF_SCOPE, detail, prev_source, page_url)
        assert source is not None
        if screen is not None and screen.is_suspended(source.id):
            self._drop(request, "source_suspended")
        request.meta[META_SOURCE] = source.id
        if not allow_private:
            host = urlparse_cached(request).hostname or ""
            why = await self.resolver.refusal(host)
            if why:
                self._refuse(request, reasons.PRIVATE_ADDRESS, why, source.id, page_url)
        self.stats.inc_value("consent/allowed")

    def process_response(self, request: Request, response: Response) -> Response:
        # The peer we actually talked to must pass the same test (DNS rebinding).
        source_id = request.meta.get(META_SOURCE)
        source = self.context.registry.sources.get(source_id or "")
        ip = getattr(response, "ip_address", None)
        if source is not None and not source.allow_private_network and ip is not None:
            why = non_public(ip)
            if why:
                self._refuse(
                    request,
                    reasons.PRIVATE_ADDRESS,
                    f"response came from {ip} ({why})",
                    source_id,
                    request.meta.get(META_PAGE),
                )
        return response

    def _drop(self, request: Request, why: str) -> None:
        """Not sent and no row: a blocklisted URL, or a request of a suspended source."""
        self.stats.inc_value(f"consent/dropped/{why}")
        raise Dropped(why)

    def _refuse(
        self,
        request: Request,
        reason: str,
        detail: str,
        source_id: str | None,
        page_url: str | None,
    ) -> None:
        self.context.reject(
            request.url, reason, reasons.STAGE_CONSENT, detail,
            source_id=source_id, page_url=page_url,
        )
        self.stats.inc_value(f"consent/forbidden/{reason}")
        logger.debug("consent gate refused %s: %s", request.url, detail)
        raise Refused(reason, detail)
