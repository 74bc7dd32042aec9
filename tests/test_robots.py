"""crawler/signals/robots.py: our token's group chosen exactly, "deny if either parser
denies", AI-agent opt-outs, Content-Usage rules, bounded decisions, and the real robots.txt files in
../shared/fixtures/robots (SOURCES.md section 3)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from crawler.signals.agents import load_ai_agents
from crawler.signals.robots import (
    DecisionTimeout,
    RobotsPolicy,
    Rule,
    deadline,
    glob_match,
    longest_match,
    parse_groups,
)
from pipeline.runs import reasons

TOKEN = "ClearanceBot"
HOST = "https://h.example"
AI = frozenset({"gptbot", "ccbot", "google-extended"})


def policy(text: str, token: str = TOKEN, ai_agents: frozenset[str] = AI) -> RobotsPolicy:
    return RobotsPolicy(text, token, ai_agents, f"{HOST}/robots.txt")


def allowed(p: RobotsPolicy, path: str) -> bool:
    return p.check(HOST + path).allowed


# --------------------------------------------------------------------------- parse_groups


def test_parse_groups_groups_consecutive_agents_and_keeps_line_numbers() -> None:
    text = (
        "# comment\n"
        "Sitemap: https://h.example/sitemap.xml\n"
        "User-agent: A\n"
        "user-agent: B  # trailing comment\n"
        "Disallow: /a\n"
        "Allow: /a/b\n"
        "Crawl-delay: 2\n"
        "\n"
        "USER-AGENT: C\n"
        "Disallow:\n"
        "Noindex: /x\n"
    )
    groups, toplevel = parse_groups(text)
    assert [g.agents for g in groups] == [["A", "B"], ["C"]]
    assert groups[0].rules == [
        Rule(False, "/a", 5, "Disallow: /a"),
        Rule(True, "/a/b", 6, "Allow: /a/b"),
    ]
    assert groups[0].crawl_delay == 2.0
    # An empty Disallow is no rule at all.
    assert groups[1].rules == []
    assert groups[1].extras == [("noindex", "/x", 11)]
    assert toplevel == [("sitemap", "https://h.example/sitemap.xml", 2)]


def test_parse_groups_rule_lines_do_not_split_a_group_but_agent_lines_after_rules_do() -> None:
    groups, _ = parse_groups("User-agent: A\nDisallow: /a\nUser-agent: B\nDisallow: /b\n")
    assert [g.agents for g in groups] == [["A"], ["B"]]
    assert [r.pattern for r in groups[1].rules] == ["/b"]


def test_parse_groups_ignores_rules_before_any_group() -> None:
    groups, toplevel = parse_groups("Disallow: /\nUser-agent: *\nAllow: /\n")
    assert [g.agents for g in groups] == [["*"]]
    assert [r.pattern for r in groups[0].rules] == ["/"]
    assert toplevel == []


# --------------------------------------------------------------------------- glob_match


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/", "/anything", True),
        ("/a", "/a", True),
        ("/a", "/abc/d", True),  # prefix
        ("/a/", "/a", False),
        ("/a$", "/a", True),
        ("/a$", "/a/", False),
        ("/*.jpg$", "/x/y.jpg", True),
        ("/*.jpg$", "/x/y.jpg?s=1", False),
        ("/*.jpg$", "/x/y.jpgz", False),
        ("/*.jpg", "/x/y.jpg?s=1", True),
        ("*.jsx$", "/a/b.jsx", True),
        ("/private*/secret", "/private-1/secret/x", True),
        ("/private*/secret", "/private/open", False),
        ("/*?sort=", "/list?sort=asc", True),
        ("/*?sort=", "/list?page=1&sort=asc", False),
        ("/*a*a*a*a*a$", "/" + "a" * 5, True),
        ("/*a*a*a*a*a$", "/" + "a" * 198 + "b", False),
        ("/a**b", "/a-b", True),
        ("", "/x", True),
    ],
)
def test_glob_match(pattern: str, path: str, matches: bool) -> None:
    assert glob_match(pattern, path) is matches


def test_glob_match_is_linear_on_a_hostile_pattern() -> None:
    started = time.perf_counter()
    for n in range(150, 250):
        assert not glob_match("/*a*a*a*a*a*a*a$", "/" + "a" * n + "b")
    assert time.perf_counter() - started < 1.0


def test_longest_match_longest_wins_and_allow_wins_a_tie() -> None:
    d_short = Rule(False, "/a", 1, "Disallow: /a")
    a_long = Rule(True, "/a/b", 2, "Allow: /a/b")
    d_tie = Rule(False, "/a/c", 3, "Disallow: /a/c")
    a_tie = Rule(True, "/a/c", 4, "Allow: /a/c")
    rules = [d_short, a_long, d_tie, a_tie]
    assert longest_match(rules, "/a/b/x") is a_long
    assert longest_match(rules, "/a/x") is d_short
    assert longest_match(rules, "/a/c") is a_tie
    assert longest_match(rules, "/z") is None
    assert longest_match([], "/a") is None


# --------------------------------------------------------------------------- group choice


def test_a_group_for_a_longer_or_shorter_name_does_not_apply() -> None:
    """RFC 9309 matches the product token exactly; both parsers would apply these groups."""
    text = ("User-agent: Clearance\nDisallow: /\n\n"
            "User-agent: ClearanceBotPlus\nDisallow: /\n\n"
            "User-agent: *\nDisallow: /private/\n")
    p = policy(text)
    assert p.group_label == "*"
    assert allowed(p, "/public/page")
    assert not allowed(p, "/private/page")


def test_only_a_near_miss_group_means_no_rules() -> None:
    p = policy("User-agent: Clearance\nDisallow: /\n")
    assert p.rules == []
    assert allowed(p, "/anything")


@pytest.mark.parametrize("agent", ["clearancebot", "CLEARANCEBOT", "ClearanceBot",
                                   "ClearanceBot/1.0", "clearancebot/2.1 (+https://x.example)"])
def test_our_group_applies_case_insensitively_and_with_a_version(agent: str) -> None:
    p = policy(f"User-agent: *\nAllow: /\n\nUser-agent: {agent}\nDisallow: /\n")
    assert p.group_label == TOKEN
    decision = p.check(HOST + "/x")
    assert not decision.allowed
    assert decision.reason == reasons.ROBOTS_DISALLOWED
    assert decision.found == "line 5: Disallow: /"


def test_our_group_replaces_the_star_group_entirely() -> None:
    p = policy("User-agent: *\nDisallow: /\n\nUser-agent: ClearanceBot\nDisallow: /tmp/\n")
    assert allowed(p, "/page")
    assert not allowed(p, "/tmp/x")


def test_empty_disallow_in_our_group_allows_all_even_when_star_denies_all() -> None:
    p = policy("User-agent: *\nDisallow: /\n\nUser-agent: ClearanceBot\nDisallow:\n")
    assert p.group_label == TOKEN
    decision = p.check(HOST + "/anything")
    assert decision.allowed
    assert decision.reason is None


def test_groups_naming_the_token_merge() -> None:
    text = ("User-agent: ClearanceBot\nDisallow: /a/\nCrawl-delay: 1\n\n"
            "User-agent: *\nDisallow: /c/\n\n"
            "User-agent: Other\nUser-agent: clearancebot\nDisallow: /b/\nCrawl-delay: 4\n")
    p = policy(text)
    assert len(p.our_groups) == 2
    assert not allowed(p, "/a/1")
    assert not allowed(p, "/b/1")
    assert allowed(p, "/c/1")  # the * group does not apply
    assert p.crawl_delay == 4.0  # the stricter delay of the merged groups


def test_star_fallback_when_nothing_names_us() -> None:
    p = policy("User-agent: Googlebot\nDisallow: /\n\nUser-agent: *\nDisallow: /search\n")
    assert p.group_label == "*"
    assert allowed(p, "/page")
    decision = p.check(HOST + "/search?q=x")
    assert (decision.allowed, decision.reason) == (False, reasons.ROBOTS_DISALLOWED)
    assert decision.found == "line 5: Disallow: /search"
    assert "User-agent: *" in (decision.detail or "")


def test_no_robots_rules_allows_all() -> None:
    for text in ("", "# nothing here\n", "Sitemap: https://h.example/s.xml\n"):
        p = policy(text)
        assert allowed(p, "/")
        assert p.crawl_delay is None


def test_allow_all_policy() -> None:
    p = RobotsPolicy.allow_all("robots.txt answered 404", TOKEN)
    decision = p.check(HOST + "/any/thing")
    assert decision.allowed
    assert p.source_url == "robots.txt answered 404"


# --------------------------------------------------------------------------- precedence


def test_longer_allow_overrides_shorter_disallow_when_both_parsers_agree() -> None:
    p = policy("User-agent: *\nAllow: /a/b\nDisallow: /a\n")
    assert allowed(p, "/a/b/c")
    assert not allowed(p, "/a/c")
    assert allowed(p, "/z")


def test_deny_when_only_the_longest_match_parser_denies() -> None:
    """First-match (robotexclusionrulesparser) sees `Allow: /` first; Protego the longer rule."""
    p = policy("User-agent: *\nAllow: /\nDisallow: /private/\n")
    decision = p.check(HOST + "/private/x")
    assert (decision.allowed, decision.reason) == (False, reasons.ROBOTS_DISALLOWED)
    assert decision.found == "line 3: Disallow: /private/"
    assert "refused by protego" in (decision.detail or "")
    assert "rerp" not in (decision.detail or "")
    assert allowed(p, "/public")


def test_deny_when_only_the_first_match_parser_denies() -> None:
    """RFC 9309 lets the longer Allow win; the first-match parser stops at `Disallow: /a`."""
    p = policy("User-agent: *\nDisallow: /a\nAllow: /a/b\n")
    decision = p.check(HOST + "/a/b/c")
    assert (decision.allowed, decision.reason) == (False, reasons.ROBOTS_DISALLOWED)
    # The rule shown is the disallow that refused, not the allow that RFC 9309 would pick.
    assert decision.found == "line 2: Disallow: /a"
    assert "refused by rerp" in (decision.detail or "")


def test_dollar_anchor() -> None:
    p = policy("User-agent: *\nDisallow: /*.jpg$\n")
    assert not allowed(p, "/img/x.jpg")
    assert allowed(p, "/img/x.jpg?size=2")
    assert allowed(p, "/img/x.jpgz")
    assert allowed(p, "/img/x.png")


def test_star_wildcard() -> None:
    p = policy("User-agent: *\nDisallow: /private*/secret\nDisallow: *.jsx$\n")
    assert not allowed(p, "/private-1/secret/x")
    assert not allowed(p, "/privatestuff/secret")
    assert allowed(p, "/private/open")
    assert not allowed(p, "/a/b.jsx")
    assert allowed(p, "/a/b.js")


def test_query_strings_are_matched() -> None:
    p = policy("User-agent: *\nDisallow: /*?sort=\nDisallow: /search?\n")
    assert not allowed(p, "/list?sort=asc")
    assert allowed(p, "/list")
    assert allowed(p, "/list?page=2")
    assert not allowed(p, "/search?q=cats")
    assert allowed(p, "/search")


def test_percent_encoding_forms_are_refused_alike() -> None:
    p = policy("User-agent: *\nDisallow: /%7Euser/\n")
    assert not allowed(p, "/%7Euser/x")
    assert not allowed(p, "/~user/x")
    assert allowed(p, "/user/x")


def test_decisions_are_cached_per_path() -> None:
    p = policy("User-agent: *\nDisallow: /a\n")
    first = p.check(HOST + "/a/1")
    assert p.check(HOST + "/a/1") is first
    # The query is part of the key.
    assert p.check(HOST + "/a/1?x").allowed is False


# --------------------------------------------------------------------------- crawl-delay


def test_crawl_delay() -> None:
    assert policy("User-agent: *\nCrawl-delay: 2.5\n").crawl_delay == 2.5
    assert policy("User-agent: ClearanceBot\nCrawl-delay: 1\n\n"
                  "User-agent: *\nCrawl-delay: 9\n").crawl_delay == 1.0
    assert policy("User-agent: Other\nCrawl-delay: 9\n").crawl_delay is None
    assert policy("User-agent: *\nCrawl-delay: soon\n").crawl_delay is None
    assert policy("User-agent: *\nCrawl-delay: -3\n").crawl_delay == 0.0


# --------------------------------------------------------------------------- AI-agent groups


def test_ai_agent_block_holds_even_where_our_group_allows() -> None:
    p = policy("User-agent: GPTBot\nDisallow: /\n\nUser-agent: ClearanceBot\nAllow: /\n")
    decision = p.check(HOST + "/gallery/cat.jpg")
    assert (decision.allowed, decision.reason) == (False, reasons.ROBOTS_AI_OPTOUT)
    assert decision.found == "line 2: Disallow: /"
    assert "gptbot" in (decision.detail or "")


def test_ai_opt_out_can_be_switched_off_per_check() -> None:
    p = policy("User-agent: GPTBot\nDisallow: /\n\nUser-agent: ClearanceBot\nAllow: /\n")
    assert not p.check(HOST + "/x").allowed
    assert p.check(HOST + "/x", ai_optout=False).allowed


def test_ai_agent_block_is_per_path() -> None:
    p = policy("User-agent: CCBot\nAllow: /open/\nDisallow: /\n")
    assert allowed(p, "/open/a.jpg")
    decision = p.check(HOST + "/closed/a.jpg")
    assert decision.reason == reasons.ROBOTS_AI_OPTOUT
    assert decision.found == "line 3: Disallow: /"


def test_ai_agent_names_match_case_insensitively_and_with_versions() -> None:
    for agent in ("gptbot", "GPTBOT", "GPTBot/1.1"):
        p = policy(f"User-agent: {agent}\nDisallow: /\n")
        assert p.check(HOST + "/x").reason == reasons.ROBOTS_AI_OPTOUT


def test_a_star_group_is_never_an_ai_group() -> None:
    p = policy("User-agent: *\nDisallow: /private/\n\nUser-agent: ClearanceBot\nAllow: /\n",
               ai_agents=load_ai_agents())
    assert p.ai_groups == []
    assert allowed(p, "/private/x")


def test_a_group_naming_us_and_an_ai_agent_is_both() -> None:
    p = policy("User-agent: ClearanceBot\nUser-agent: GPTBot\nDisallow: /priv\n")
    assert p.check(HOST + "/priv").reason == reasons.ROBOTS_DISALLOWED
    assert allowed(p, "/pub")


def test_agents_outside_the_list_are_not_ai_groups() -> None:
    p = policy("User-agent: Googlebot\nDisallow: /\n\nUser-agent: bingbot\nDisallow: /\n")
    assert p.ai_groups == []
    assert allowed(p, "/x")


def test_ai_disallow_beaten_by_a_longer_ai_allow_is_no_opt_out() -> None:
    p = policy("User-agent: GPTBot\nDisallow: /gallery/\nAllow: /gallery/public/\n")
    assert allowed(p, "/gallery/public/a.jpg")
    assert not allowed(p, "/gallery/private/a.jpg")


def test_bundled_ai_agent_list_has_the_well_known_trainers() -> None:
    agents = load_ai_agents()
    assert {"gptbot", "ccbot", "google-extended", "claudebot"} <= agents
    assert "*" not in agents
    assert all(a == a.lower() for a in agents)


# --------------------------------------------------------------------------- Content-Usage


def test_content_usage_rules_for_our_group_and_top_level() -> None:
    text = ("Content-Usage: train-ai=y\n\n"
            "User-agent: *\nContent-Usage: /all/ train-ai=n\nAllow: /\n\n"
            "User-agent: ClearanceBot\nContent-Usage: /images/ train-ai=n\nAllow: /\n")
    assert policy(text).content_usage == [
        ("/images/", "train-ai=n", "Content-Usage: /images/ train-ai=n"),
        (None, "train-ai=y", "Content-Usage: train-ai=y"),
    ]


def test_content_usage_falls_back_to_star_and_ignores_near_miss_groups() -> None:
    text = ("User-agent: *\nContent-Usage: /all/ train-ai=n\n\n"
            "User-agent: Clearance\nContent-Usage: /images/ train-ai=y\n")
    assert policy(text).content_usage == [
        ("/all/", "train-ai=n", "Content-Usage: /all/ train-ai=n"),
    ]


def test_content_usage_from_a_versioned_group_line() -> None:
    text = "User-agent: *\nAllow: /\n\nUser-agent: ClearanceBot/1.0\nContent-Usage: train-ai=n\n"
    assert policy(text).content_usage == [(None, "train-ai=n", "Content-Usage: train-ai=n")]


# --------------------------------------------------------------------------- bounded time


def test_hostile_pattern_is_decided_in_bounded_time_and_refused() -> None:
    """robotexclusionrulesparser's regex takes ~17 s here; the deadline refuses instead."""
    p = policy("User-agent: *\nDisallow: /*a*a*a*a*a$\n")
    path = "/" + "a" * 198 + "b"
    assert len(path) == 200
    started = time.perf_counter()
    decision = p.check(HOST + path)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.5
    assert (decision.allowed, decision.reason) == (False, reasons.ROBOTS_DISALLOWED)
    assert "exceeded" in (decision.detail or "")
    # A path the pattern does match is decided (and refused) on its merits.
    assert not allowed(p, "/" + "a" * 199)


def test_deadline_interrupts_and_restores() -> None:
    before = signal.getsignal(signal.SIGALRM)
    started = time.perf_counter()
    with pytest.raises(DecisionTimeout), deadline(0.05):
        while time.perf_counter() - started < 5:
            pass
    assert time.perf_counter() - started < 1
    assert signal.getsignal(signal.SIGALRM) == before
    # Work that finishes in time is untouched, and no alarm fires afterwards.
    with deadline(0.05):
        total = sum(range(1000))
    time.sleep(0.1)
    assert total == 499500


def test_deadline_outside_the_main_thread_is_a_no_op() -> None:
    outcome: list[str] = []

    def worker() -> None:
        try:
            with deadline(0.01):
                time.sleep(0.05)
            outcome.append("finished")
        except DecisionTimeout:  # pragma: no cover - would be the failure
            outcome.append("interrupted")

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(5)
    assert outcome == ["finished"]


# --------------------------------------------------------------------------- real files


PUBLISHERS = ["bbc.com", "cnn.com", "lemonde.fr", "nature.com", "nytimes.com", "reddit.com",
              "shutterstock.com", "stock.adobe.com", "theguardian.com", "washingtonpost.com"]


def real_policy(fixtures: Path, host: str) -> RobotsPolicy:
    text = (fixtures / "robots" / f"{host}.txt").read_text(encoding="utf-8")
    return RobotsPolicy(text, TOKEN, load_ai_agents(), f"https://www.{host}/robots.txt")


@pytest.mark.parametrize("host", PUBLISHERS)
def test_real_file_falls_back_to_star(shared_fixtures: Path, host: str) -> None:
    p = real_policy(shared_fixtures, host)
    assert not any(a.lower().startswith("clearance") for g in p.groups for a in g.agents)
    assert p.group_label == "*"
    star_rules = [r for g in p.groups if "*" in [a.strip() for a in g.agents] for r in g.rules]
    assert p.rules == star_rules
    assert p.rules


@pytest.mark.parametrize("host", PUBLISHERS)
def test_real_file_star_disallows_are_refused_with_their_rule(
    shared_fixtures: Path, host: str
) -> None:
    p = real_policy(shared_fixtures, host)
    checked = 0
    for rule in p.rules:
        if rule.allow or any(c in rule.pattern for c in "*$?") or not rule.pattern.startswith("/"):
            continue
        path = rule.pattern + ("x" if rule.pattern.endswith("/") else "")
        deciding = longest_match(p.rules, path)
        assert deciding is not None
        if deciding.allow:
            continue  # a longer Allow carves this path out
        decision = p.check(f"https://www.{host}{path}")
        assert not decision.allowed, (host, path)
        assert decision.reason == reasons.ROBOTS_DISALLOWED, (host, path, decision)
        assert decision.found == f"line {deciding.line}: {deciding.raw}"
        checked += 1
    assert checked > 0


@pytest.mark.parametrize(
    ("host", "blocked"),
    [
        ("nytimes.com", {"gptbot", "ccbot", "google-extended", "claudebot"}),
        ("bbc.com", {"gptbot", "ccbot"}),
        ("theguardian.com", {"ccbot", "claudebot"}),  # GPTBot is not blocked there
    ],
)
def test_real_file_ai_blocks_are_an_opt_out(
    shared_fixtures: Path, host: str, blocked: set[str]
) -> None:
    p = real_policy(shared_fixtures, host)
    blocking = {name for group, names in p.ai_groups
                if (rule := longest_match(group.rules, "/")) is not None and not rule.allow
                for name in names}
    assert blocked <= blocking
    path = "/2026/01/15/world/an-article.html"
    # The `*` group lets ClearanceBot in, the AI-agent groups keep the path out.
    assert p.check(f"https://www.{host}{path}", ai_optout=False).allowed
    decision = p.check(f"https://www.{host}{path}")
    assert (decision.allowed, decision.reason) == (False, reasons.ROBOTS_AI_OPTOUT)
    assert decision.found is not None and decision.found.endswith("disallow: /")


def test_real_reddit_file_refuses_everything(shared_fixtures: Path) -> None:
    p = real_policy(shared_fixtures, "reddit.com")
    assert p.ai_groups == []
    for path in ("/", "/r/pics/", "/r/pics/comments/abc/cat.jpg?x=1", "/robots.txt"):
        decision = p.check(f"https://www.reddit.com{path}")
        assert (decision.allowed, decision.reason) == (False, reasons.ROBOTS_DISALLOWED), path
        assert decision.found == "line 8: disallow: /"


def test_real_shutterstock_blocks_only_some_ai_agents(shared_fixtures: Path) -> None:
    p = real_policy(shared_fixtures, "shutterstock.com")
    names = {name for _, group_names in p.ai_groups for name in group_names}
    assert {"gptbot", "ccbot"} <= names
    assert "google-extended" not in names


def test_ai_robots_txt_one_group_many_agents(shared_fixtures: Path) -> None:
    """ai.robots.txt's file is one group of many User-agent lines sharing `Disallow: /`."""
    text = (shared_fixtures / "robots" / "ai.robots.txt_robots.txt").read_text(encoding="utf-8")
    groups, _ = parse_groups(text)
    assert len(groups) == 1
    assert len(groups[0].agents) > 100
    assert [r.raw for r in groups[0].rules] == ["Disallow: /"]
    p = RobotsPolicy(text, TOKEN, load_ai_agents(), "https://x.example/robots.txt")
    assert p.rules == []  # nothing names ClearanceBot and there is no `*` group
    assert p.check("https://x.example/a.jpg", ai_optout=False).allowed
    decision = p.check("https://x.example/a.jpg")
    assert decision.reason == reasons.ROBOTS_AI_OPTOUT
    assert "gptbot" in (decision.detail or "")


def test_deadline_puts_back_an_outer_alarm() -> None:
    import signal as _signal

    from crawler.signals.robots import deadline

    previous = _signal.signal(_signal.SIGALRM, lambda *a: None)
    _signal.setitimer(_signal.ITIMER_REAL, 100.0)
    try:
        with deadline(0.05):
            pass
        remaining, _ = _signal.getitimer(_signal.ITIMER_REAL)
        assert 99.0 < remaining <= 100.0
    finally:
        _signal.setitimer(_signal.ITIMER_REAL, 0)
        _signal.signal(_signal.SIGALRM, previous)


def test_parse_groups_sitemap_between_agent_lines_neither_splits_nor_joins_a_group() -> None:
    """One grouping for every robots-grammar parser: a Sitemap line belongs to no group."""
    text = "User-agent: A\nSitemap: https://h.example/s.xml\nUser-agent: B\nDisallow: /x\n"
    groups, toplevel = parse_groups(text)
    assert [g.agents for g in groups] == [["A", "B"]]
    assert toplevel == [("sitemap", "https://h.example/s.xml", 2)]
    from crawler.signals.robotsfile import RobotsFile

    robots = RobotsFile.parse(text)
    assert [g.agents for g in robots.groups] == [("A", "B")]


def test_rules_past_512_kib_are_read_like_the_rest_of_a_1_mib_file() -> None:
    """robots.txt is accepted up to 1 MiB, so every parser reads all of it (no silent tail)."""
    padding = "# " + "x" * 1000 + "\n"
    text = padding * 600 + f"User-agent: {TOKEN}\nDisallow: /late/\nContent-Usage: train-ai=n\n"
    assert 512 * 1024 < len(text) < 1024 * 1024
    p = RobotsPolicy(text, TOKEN, frozenset(), "https://x.example/robots.txt")
    assert not p.check("https://x.example/late/a.jpg").allowed
    assert p.content_usage and p.content_usage[0][1] == "train-ai=n"


# --------------------------------------------------------------------------- byte order mark

BOM_ROBOTS = f"\ufeffUser-agent: {TOKEN}\nDisallow: /bom/\n"


@pytest.mark.parametrize("body", [BOM_ROBOTS, BOM_ROBOTS.encode("utf-8")], ids=["text", "bytes"])
def test_a_leading_bom_is_skipped_by_the_shared_grouping(body: str | bytes) -> None:
    """RFC 9309 parsers skip a leading UTF-8 BOM; otherwise line 1 is no user-agent line."""
    from crawler.signals.robotsfile import RobotsFile

    robots = RobotsFile.parse(body)
    assert [g.agents for g in robots.groups] == [(TOKEN,)]
    assert robots.toplevel == ()
    agent, lines = robots.select(TOKEN)
    assert agent == TOKEN and [line.raw for line in lines] == ["Disallow: /bom/"]
    assert robots.groups[0].lines[0].lineno == 2


def test_a_leading_bom_does_not_hide_our_group_from_either_parser() -> None:
    p = policy(BOM_ROBOTS)
    decision = p.check(HOST + "/bom/p")
    assert not decision.allowed and decision.reason == reasons.ROBOTS_DISALLOWED
    assert decision.found == "line 2: Disallow: /bom/"
    assert p.group_label == TOKEN
    assert allowed(p, "/ok.html")
    # Neither parser is handed the BOM: each sees only the synthesized rules of our group.
    assert not p._protego.can_fetch(HOST + "/bom/p", TOKEN.lower())
    assert not p._rerp_for(p._candidates("/bom/p")).is_allowed(TOKEN.lower(), HOST + "/bom/p")


def test_content_usage_grouping_after_a_leading_bom() -> None:
    """The first group keeps its user-agent line, so its rules are not read as top-level ones."""
    p = policy(f"\ufeffUser-agent: OtherBot\nContent-Usage: train-ai=n\n\n"
               f"User-agent: {TOKEN}\nContent-Usage: /bom/ train-ai=n\n")
    assert p.content_usage == [("/bom/", "train-ai=n", "Content-Usage: /bom/ train-ai=n")]


def test_a_timed_out_decision_says_so() -> None:
    hostile = policy("User-agent: *\nDisallow: /*a*a*a*a*a$\n")
    assert hostile.check(HOST + "/" + "a" * 200 + "b").timed_out
    plain = policy(f"User-agent: {TOKEN}\nDisallow: /x\n").check(HOST + "/x")
    assert not plain.allowed and not plain.timed_out
