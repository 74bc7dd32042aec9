"""Opt-out gate: per-host policy files that can refuse a URL before it is fetched.

After the robots gate: ``/.well-known/tdmrep.json`` (TDMRep; a reserved location is never
requested, ``tdm_reserved``) and Spawning's ``/ai.txt`` (matched against image file names,
``ai_txt_disallowed``). Each file is fetched once per origin through the engine, inside consent,
and cached (:class:`crawler.policyfiles.OriginPolicies`); a file that fails (5xx, timeout,
malformed) reserves the host until it can be read. Response-level signals (headers, HTML meta,
embedded metadata) are read after the fetch, in :mod:`crawler.signals.response`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from scrapy import Request

from crawler.context import CrawlContext, context_of
from crawler.exceptions import Refused
from crawler.meta import META_KIND, META_PAGE, META_POLICY, META_SOURCE, record_signal
from crawler.policyfiles import OriginPolicies, PolicyParseError
from crawler.signals import SignalResult, aitxt, evidence, located, tdmrep
from pipeline.runs import reasons

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)

def _parse_tdmrep(response: Response) -> tdmrep.TdmRepFile | None:
    try:
        return tdmrep.TdmRepFile.parse(response.body)
    except tdmrep.TdmRepError as exc:
        raise PolicyParseError(str(exc)) from None


def _parse_aitxt(response: Response) -> aitxt.AiTxt | None:
    try:
        return aitxt.AiTxt.parse(response.body)
    except aitxt.AiTxtError as exc:
        raise PolicyParseError(str(exc)) from None


class OptOutGateMiddleware:
    def __init__(self, crawler: Crawler, context: CrawlContext):
        self.crawler = crawler
        self.context = context
        self.stats = crawler.stats
        switches = context.config.settings.signals
        self.token = context.config.settings.robots_token
        retry = crawler.settings.getfloat("CLEARANCE_POLICY_RETRY_AFTER", 60.0)
        timeout = crawler.settings.getfloat("CLEARANCE_POLICY_TIMEOUT", 30.0)
        # An absent file is stored as a falsy policy (None wrapped in a tuple) so the cache
        # can tell "absent" from "not fetched yet".
        self.tdmrep: OriginPolicies[tuple[tdmrep.TdmRepFile | None, str]] | None = None
        self.aitxt: OriginPolicies[tuple[aitxt.AiTxt | None, str]] | None = None
        if switches.tdmrep:
            self.tdmrep = OriginPolicies(
                crawler, "tdmrep", tdmrep.WELL_KNOWN_PATH,
                parse=lambda r: (_parse_tdmrep(r), r.url),
                absent=lambda why: (None, why),
                max_bytes=tdmrep.MAX_FILE_BYTES, retry_after=retry, timeout=timeout,
            )
        if switches.ai_txt:
            self.aitxt = OriginPolicies(
                crawler, "ai_txt", "/ai.txt",
                parse=lambda r: (_parse_aitxt(r), r.url),
                absent=lambda why: (None, why),
                max_bytes=1024 * 1024, retry_after=retry, timeout=timeout,
            )

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> OptOutGateMiddleware:
        return cls(crawler, context_of(crawler))

    async def process_request(self, request: Request) -> None:
        if request.meta.get(META_POLICY):
            return
        if self.tdmrep is not None:
            await self._tdmrep(request)
        if self.aitxt is not None and request.meta.get(META_KIND) == "image":
            await self._aitxt(request)

    async def _tdmrep(self, request: Request) -> None:
        assert self.tdmrep is not None
        await self._check(
            request, self.tdmrep, "tdmrep.file", tdmrep.file_unreadable, tdmrep.file_absent,
            lambda parsed: parsed.match(request.url),
        )

    async def _aitxt(self, request: Request) -> None:
        assert self.aitxt is not None
        await self._check(
            request, self.aitxt, "ai_txt", aitxt.file_unreadable, aitxt.file_absent,
            lambda parsed: parsed.check(request.url, self.token),
        )

    async def _check(
        self,
        request: Request,
        files: OriginPolicies[tuple[Any, str]],
        label: str,
        unreadable: Callable[[str], SignalResult],
        absent: Callable[[str], SignalResult],
        decide: Callable[[Any], SignalResult],
    ) -> None:
        """Read the origin's file (cached), decide for this URL, record it, refuse if it says no."""
        state = await files.get(request)
        if state.policy is None:
            result = unreadable(state.failure or "unavailable")
        else:
            parsed, where = state.policy
            result = absent(where) if parsed is None else located(decide(parsed), where)
        record_signal(request, result, label)
        if result.denies:
            self._refuse(request, result)

    def _refuse(self, request: Request, result: SignalResult) -> None:
        reason = result.reason or reasons.TDM_RESERVED
        detail = evidence(result)
        self.context.reject(
            request.url, reason, reasons.STAGE_SIGNALS, detail,
            source_id=request.meta.get(META_SOURCE), page_url=request.meta.get(META_PAGE),
        )
        self.stats.inc_value(f"optout/forbidden/{reason}")
        raise Refused(reason, detail)

