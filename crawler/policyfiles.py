"""Per-origin policy files (robots.txt, tdmrep.json, ai.txt): fetched once, cached, fail closed.

The way Scrapy's robotstxt.py does it, minus its races: the first request to an origin fetches
the file through the engine (so the consent gate checks it and every redirect hop), and every
other request to that origin waits for the answer with its own Deferred. 4xx means the file is
absent (the origin declares nothing); 2xx is parsed (a parse error reserves the origin); 5xx,
timeouts, oversize bodies, redirects out of consent reserve the origin until a retry after
``retry_after`` seconds. A parsed policy is kept for ``ttl`` seconds (24 h).

Files other than robots.txt are requested only where robots.txt allows them for our token: the
robots gate checks each request (and redirect hop) against the origin's cached robots policy and
raises :class:`PolicyFileDisallowed` before anything is sent, which counts as an absent file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from scrapy import Request
from scrapy.exceptions import IgnoreRequest
from scrapy.http.request import NO_CALLBACK
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.defer import Deferred

from crawler.exceptions import Refused
from crawler.meta import META_POLICY, META_SOURCE

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)

P = TypeVar("P")
CACHE_TTL_S = 24 * 3600


class PolicyParseError(ValueError):
    """A policy file that was served but cannot be read: the origin is reserved."""


class PolicyFileDisallowed(IgnoreRequest):
    """robots.txt disallows a policy file (or a redirect hop of it) for our token: not requested.

    The site chose not to let us read it, so the file counts as absent (``absent(detail)``), not
    as a failure; the URLs it would have governed remain governed by robots.txt.
    """

    def __init__(self, detail: str, *, after_redirect: bool = False):
        self.detail = detail
        self.after_redirect = after_redirect  # the file's own URL was requested, a hop was not
        super().__init__(detail)


@dataclass
class PolicyState(Generic[P]):
    policy: P | None = None  # parsed file, or the "absent" policy for a 4xx
    failure: str | None = None  # why the origin is reserved (fail closed)
    fetched_at: float = 0.0
    retry_at: float = 0.0
    fetching: bool = False
    waiters: list[Deferred[None]] = field(default_factory=list)


class OriginPolicies(Generic[P]):
    """One policy per origin for one well-known path."""

    PRIORITY = 1000

    def __init__(
        self,
        crawler: Crawler,
        name: str,
        path: str,
        parse: Callable[[Response], P],
        absent: Callable[[str], P],
        *,
        max_bytes: int,
        retry_after: float = 60.0,
        timeout: float = 30.0,
        ttl: float = CACHE_TTL_S,
    ):
        self.crawler = crawler
        self.name = name
        self.path = path
        self.parse = parse
        self.absent = absent
        self.max_bytes = max_bytes
        self.retry_after = retry_after
        self.timeout = timeout
        self.ttl = ttl
        self.states: dict[str, PolicyState[P]] = {}

    async def get(self, request: Request) -> PolicyState[P]:
        parts = urlparse_cached(request)
        origin = f"{parts.scheme}://{parts.netloc}"
        state = self.states.setdefault(origin, PolicyState())
        now = time.monotonic()
        stale = (state.policy is not None and now - state.fetched_at > self.ttl) or (
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

    async def _fetch(self, origin: str, state: PolicyState[P], trigger: Request) -> None:
        url = f"{origin}{self.path}"
        req = Request(
            url,
            priority=self.PRIORITY,
            dont_filter=True,
            callback=NO_CALLBACK,
            meta={
                META_POLICY: self.name,
                META_SOURCE: trigger.meta.get(META_SOURCE),
                "dont_obey_robotstxt": True,
                "redirect_ttl": 5,
                "download_maxsize": self.max_bytes,
                "download_timeout": self.timeout,
            },
        )
        stats = self.crawler.stats
        policy: P | None = None
        failure: str | None = None
        requested = True
        try:
            response: Response = await self.crawler.engine.download_async(req)
        except PolicyFileDisallowed as exc:
            # Not requested (unless a redirect hop was refused), so not counted as a request.
            requested = exc.after_redirect
            stats.inc_value(f"{self.name}/robots_disallowed")
            policy = self.absent(exc.detail)
        except Refused as exc:
            failure = f"{url}: fetch refused ({exc})"
        except IgnoreRequest as exc:
            failure = f"{url}: {exc}"
        except Exception as exc:  # noqa: BLE001 - any download error reserves the origin
            failure = f"{url}: {type(exc).__name__}: {exc}".rstrip(": ")
        else:
            status, final = response.status, response.url
            stats.inc_value(f"{self.name}/response_status_count/{status}")
            if 200 <= status < 300:
                try:
                    policy = self.parse(response)
                except PolicyParseError as exc:
                    failure = f"{final}: unreadable ({exc}); reserved until it can be read"
            elif 400 <= status < 500:
                policy = self.absent(f"{final} answered HTTP {status}: declares nothing")
            elif 300 <= status < 400:
                failure = f"{url}: redirect not followed (HTTP {status} from {final})"
            else:
                failure = f"{url}: HTTP {status}; reserved until it answers"
        if requested:
            stats.inc_value(f"{self.name}/request_count")
        now = time.monotonic()
        state.fetched_at = now
        if policy is not None:
            state.policy, state.failure = policy, None
        else:
            state.policy, state.failure = None, failure
            state.retry_at = now + self.retry_after
            stats.inc_value(f"{self.name}/unreachable")
            logger.warning("%s unavailable, origin reserved: %s", self.path, failure)
