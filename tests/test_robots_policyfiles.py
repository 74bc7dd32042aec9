"""The robots gate decides whether tdmrep.json and ai.txt may be requested (unit level).

The crawl-level checks (the server's access log) are in test_crawl_signals.py; these cover the
branches a crawl rarely reaches: robots.txt unreachable, a timed-out decision, the stats.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from scrapy import Request
from scrapy.exceptions import IgnoreRequest

from crawler.downloadermiddlewares.robots import RobotsGateMiddleware
from crawler.meta import META_POLICY
from crawler.policyfiles import OriginPolicies, PolicyFileDisallowed, PolicyState
from crawler.signals.robots import RobotsPolicy

TOKEN = "ClearanceBot"
ORIGIN = "http://h.example"


class Stats:
    def __init__(self) -> None:
        self.values: Counter[str] = Counter()

    def inc_value(self, key: str, count: int = 1) -> None:
        self.values[key] += count


def crawler(download: Any = None) -> SimpleNamespace:
    return SimpleNamespace(stats=Stats(), engine=SimpleNamespace(download_async=download))


def gate(robots: str | None, failure: str = "http://h.example/robots.txt: HTTP 503") -> Any:
    """A robots gate whose policy for ORIGIN is already cached (as after the trigger request)."""
    middleware = RobotsGateMiddleware.__new__(RobotsGateMiddleware)
    middleware.crawler = crawler()
    middleware.stats = middleware.crawler.stats
    middleware.token = TOKEN
    middleware.files = OriginPolicies(
        middleware.crawler, "robots", "/robots.txt",
        parse=lambda r: None, absent=lambda why: None, max_bytes=1024,
    )
    state: PolicyState[RobotsPolicy] = PolicyState(fetched_at=time.monotonic())
    if robots is None:
        state.failure, state.retry_at = failure, time.monotonic() + 60
    else:
        state.policy = RobotsPolicy(robots, TOKEN, frozenset({"gptbot"}), f"{ORIGIN}/robots.txt")
    middleware.files.states[ORIGIN] = state
    return middleware


def policy_request(path: str, name: str = "ai_txt", **meta: Any) -> Request:
    return Request(ORIGIN + path, meta={META_POLICY: name, **meta})


def run(middleware: Any, request: Request) -> None:
    asyncio.run(middleware.process_request(request))


def test_allowed_policy_file_passes() -> None:
    middleware = gate(f"User-agent: {TOKEN}\nDisallow: /private/\n")
    run(middleware, policy_request("/ai.txt"))
    assert not middleware.stats.values


def test_disallowed_policy_file_is_not_read() -> None:
    middleware = gate(f"User-agent: {TOKEN}\nDisallow: /ai.txt\n")
    with pytest.raises(PolicyFileDisallowed) as raised:
        run(middleware, policy_request("/ai.txt"))
    assert raised.value.detail == "robots.txt disallows /ai.txt for ClearanceBot; not read"
    assert not raised.value.after_redirect
    assert middleware.stats.values["robots/policy_file_not_read/disallowed"] == 1


def test_ai_agent_groups_do_not_stop_us_reading_a_policy_file() -> None:
    middleware = gate(f"User-agent: {TOKEN}\nAllow: /\n\nUser-agent: GPTBot\nDisallow: /\n")
    run(middleware, policy_request("/.well-known/tdmrep.json", "tdmrep"))


def test_a_redirect_hop_into_a_disallowed_path_is_not_followed() -> None:
    middleware = gate(f"User-agent: {TOKEN}\nDisallow: /hidden/\n")
    request = policy_request("/hidden/ai.txt", redirect_urls=[f"{ORIGIN}/ai.txt"])
    with pytest.raises(PolicyFileDisallowed) as raised:
        run(middleware, request)
    assert raised.value.after_redirect
    assert "(redirected from /ai.txt)" in raised.value.detail


def test_unreachable_robots_txt_reserves_instead_of_reading() -> None:
    middleware = gate(None)
    with pytest.raises(IgnoreRequest) as raised:
        run(middleware, policy_request("/ai.txt"))
    assert not isinstance(raised.value, PolicyFileDisallowed)  # a failure, not "absent"
    assert "robots.txt unreachable" in str(raised.value) and "HTTP 503" in str(raised.value)


def test_a_timed_out_decision_reserves_instead_of_reading() -> None:
    middleware = gate("User-agent: *\nDisallow: /*a*a*a*a*a$\n")
    with pytest.raises(IgnoreRequest) as raised:
        run(middleware, policy_request("/" + "a" * 200 + "b"))
    assert not isinstance(raised.value, PolicyFileDisallowed)
    assert "exceeded" in str(raised.value)


def test_robots_txt_itself_is_not_checked_against_itself() -> None:
    run(gate(None), policy_request("/robots.txt", "robots"))


@pytest.mark.parametrize("after_redirect, requests", [(False, 0), (True, 1)])
def test_origin_policies_store_a_disallowed_file_as_absent(after_redirect, requests) -> None:
    async def download_async(request: Request) -> None:
        raise PolicyFileDisallowed("robots.txt disallows /ai.txt for ClearanceBot; not read",
                                   after_redirect=after_redirect)

    fake = crawler(download_async)
    files: OriginPolicies[tuple[None, str]] = OriginPolicies(
        fake, "ai_txt", "/ai.txt", parse=lambda r: (None, r.url), absent=lambda why: (None, why),
        max_bytes=1024,
    )
    state = asyncio.run(files.get(Request(f"{ORIGIN}/site/a.jpg")))
    assert state.failure is None
    assert state.policy == (None, "robots.txt disallows /ai.txt for ClearanceBot; not read")
    assert fake.stats.values["ai_txt/robots_disallowed"] == 1
    assert fake.stats.values["ai_txt/request_count"] == requests
    assert fake.stats.values["ai_txt/unreachable"] == 0
