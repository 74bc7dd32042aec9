"""IETF aipref Content-Usage: header and robots.txt rule (crawler.signals.aipref)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from crawler.signals import ALLOW, DENY, NONE
from crawler.signals.aipref import (
    CHECK,
    MAX_FIELD_BYTES,
    ContentUsageError,
    content_usage_from_header,
    content_usage_from_headers,
    content_usage_from_robots,
    parse_preferences,
    parse_robots_content_usage,
)
from crawler.signals.pathmatch import PathPattern, glob_match, normalise
from crawler.signals.robotsfile import RobotsFile
from pipeline.runs.reasons import ALL, CONTENT_USAGE_DISALLOWED

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def robots_fixture(name: str) -> str:
    path = FIXTURES / "robots" / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (../shared/fixtures not checked out)")
    return path.read_text(encoding="utf-8", errors="replace")


# --------------------------------------------------------------------------- header


@pytest.mark.parametrize(
    "value",
    [
        "train-ai=n",
        "train-ai=n, search=y",
        'search=y, train-ai=n;reason="x"',
        "train-ai=y, train-ai=n",
    ],
)
def test_train_ai_n_refuses(value: str) -> None:
    result = content_usage_from_header(value)
    assert result.check == CHECK
    assert result.decision == DENY
    assert result.reason == CONTENT_USAGE_DISALLOWED
    assert result.reason in ALL
    assert result.found == value
    assert not result.error


def test_any_n_wins_over_a_later_y_in_the_same_field() -> None:
    # RFC 9651 keeps the last value of a repeated key; opt-outs win, so any n refuses.
    assert content_usage_from_header("train-ai=n, train-ai=y").decision == DENY


def test_several_field_lines_are_one_dictionary_and_any_n_wins() -> None:
    result = content_usage_from_headers({b"Content-Usage": [b"train-ai=y", b"train-ai=n"]})
    assert result.decision == DENY
    assert result.found == "train-ai=y, train-ai=n"


def test_train_ai_y_allows() -> None:
    result = content_usage_from_header("train-ai=y")
    assert result.decision == ALLOW
    assert result.reason is None


@pytest.mark.parametrize(
    "value",
    [
        "search=n",  # another category says nothing about training
        "ai-use=n",
        'train-ai="n"',  # a String, not a Token: unknown, not an error (vocab 6.5)
        "train-ai=no",  # a Token other than y/n
        "train-ai",  # Boolean true
        "train-ai=1",
        "future-label=n, x-vendor=(a b)",  # unknown labels are ignored
        "train-genai=y",  # permits generative training only: not all of our use
    ],
)
def test_values_that_state_nothing_for_us_are_none(value: str) -> None:
    result = content_usage_from_header(value)
    assert result.decision == NONE
    assert not result.error


def test_parameters_are_ignored() -> None:
    assert content_usage_from_header("train-ai=n;allow=y").decision == DENY
    assert content_usage_from_header('train-ai=y;because="reasons"').decision == ALLOW


def test_absent_or_empty_header_declares_nothing() -> None:
    assert content_usage_from_header(None).decision == NONE
    assert content_usage_from_header([]).decision == NONE
    assert content_usage_from_headers({"Content-Type": "text/html"}).decision == NONE
    assert content_usage_from_header("").decision == NONE


@pytest.mark.parametrize(
    "value",
    [
        "Train-AI=n",  # keys are lower-case: the Dictionary does not parse
        "train-ai=y,",  # trailing comma
        "train-ai=?",
        "train-ai=y search=n",
        ",,,",
        "train-ai=\u00e9",
    ],
)
def test_malformed_dictionary_is_unknown_and_unknown_is_not_permission(value: str) -> None:
    result = content_usage_from_header(value)
    assert result.decision == DENY
    assert result.error
    assert result.reason == CONTENT_USAGE_DISALLOWED
    assert "not an RFC 9651 dictionary" in (result.detail or "")
    assert result.found


def test_legacy_hierarchy_from_earlier_drafts() -> None:
    # drafts -01..-04: bots > train-ai > train-genai; an explicit child wins over its parent.
    assert content_usage_from_header("bots=n").decision == DENY
    assert content_usage_from_header("bots=y").decision == ALLOW
    assert content_usage_from_header("bots=n, train-ai=y").decision == ALLOW
    assert content_usage_from_header("bots=y, train-ai=n").decision == DENY
    genai = content_usage_from_header("train-ai=y, train-genai=n")
    assert genai.decision == DENY
    assert "train-genai=n" in (genai.detail or "")


def test_parse_preferences_keeps_repeats_in_order() -> None:
    members = parse_preferences(b"train-ai=y, search=n, train-ai=n")
    assert [(k, str(m.value)) for k, m in members] == [
        ("train-ai", "y"),
        ("search", "n"),
        ("train-ai", "n"),
    ]
    with pytest.raises(ContentUsageError):
        parse_preferences("train-ai=")


def test_two_megabyte_header_is_refused_quickly() -> None:
    value = "train-ai=y, " * (2 * 1024 * 1024 // 12)
    started = time.perf_counter()
    result = content_usage_from_header(value)
    assert time.perf_counter() - started < 1.0
    assert result.decision == DENY and result.error
    assert str(MAX_FIELD_BYTES) in (result.detail or "")
    assert len(result.found or "") < 1000  # evidence is clipped, not the whole 2 MB


def test_largest_accepted_header_parses_quickly() -> None:
    value = "x-a=y, " * ((MAX_FIELD_BYTES - 20) // 7) + "train-ai=n"
    assert len(value) <= MAX_FIELD_BYTES
    started = time.perf_counter()
    assert content_usage_from_header(value).decision == DENY
    assert time.perf_counter() - started < 1.0


# --------------------------------------------------------------------------- robots.txt

ATTACH_EXAMPLE = """\
User-Agent: *
Allow: /
Disallow: /never/
Content-Usage: / train-ai=n
Content-Usage: /ai-ok/ train-ai=y

User-Agent: ExampleBot
Allow: /
Content-Usage: / train-ai=y
"""


def test_attach_draft_example_for_other_crawlers() -> None:
    rules = parse_robots_content_usage(ATTACH_EXAMPLE, "ClearanceBot")
    assert rules == [
        ("/", "train-ai=n", "Content-Usage: / train-ai=n"),
        ("/ai-ok/", "train-ai=y", "Content-Usage: /ai-ok/ train-ai=y"),
    ]
    test = content_usage_from_robots(rules, "/test")
    assert test.decision == DENY and test.reason == CONTENT_USAGE_DISALLOWED
    assert test.found == "Content-Usage: / train-ai=n"
    ok = content_usage_from_robots(rules, "/ai-ok/test")
    assert ok.decision == ALLOW
    assert ok.found == "Content-Usage: /ai-ok/ train-ai=y"


def test_group_for_our_token_is_chosen_by_exact_case_insensitive_match() -> None:
    rules = parse_robots_content_usage(ATTACH_EXAMPLE, "examplebot")
    assert content_usage_from_robots(rules, "/test").decision == ALLOW
    # "Example" is a prefix of ExampleBot: RFC 9309 matches product tokens exactly.
    assert parse_robots_content_usage(ATTACH_EXAMPLE, "Example")[0][1] == "train-ai=n"


def test_rules_in_other_bots_groups_do_not_apply() -> None:
    text = "User-agent: GPTBot\nContent-Usage: / train-ai=n\n\nUser-agent: *\nAllow: /\n"
    rules = parse_robots_content_usage(text, "ClearanceBot")
    assert rules == []
    assert content_usage_from_robots(rules, "/a").decision == NONE


def test_longest_path_wins_and_equal_paths_combine_with_any_n() -> None:
    text = (
        "User-agent: *\n"
        "Content-Usage: /gallery/ train-ai=y\n"
        "Content-Usage: /gallery/private/ train-ai=n\n"
        "Content-Usage: /same/ train-ai=y\n"
        "Content-Usage: /same/ train-ai=n\n"
    )
    rules = parse_robots_content_usage(text, "ClearanceBot")
    assert content_usage_from_robots(rules, "/gallery/a.jpg").decision == ALLOW
    assert content_usage_from_robots(rules, "/gallery/private/a.jpg").decision == DENY
    same = content_usage_from_robots(rules, "/same/x")
    assert same.decision == DENY
    assert same.found == "Content-Usage: /same/ train-ai=y\nContent-Usage: /same/ train-ai=n"
    assert content_usage_from_robots(rules, "/elsewhere").decision == NONE


def test_wildcards_and_end_anchor_in_rule_paths() -> None:
    text = "User-agent: *\nContent-Usage: /*.jpg$ train-ai=n\nContent-Usage: / train-ai=y\n"
    rules = parse_robots_content_usage(text, "ClearanceBot")
    assert content_usage_from_robots(rules, "/img/a.jpg").decision == DENY
    assert content_usage_from_robots(rules, "/img/a.jpg.html").decision == ALLOW


def test_pathless_rule_applies_to_all_paths_and_ties_with_root() -> None:
    text = "User-agent: *\nContent-Usage: train-ai=n\nContent-Usage: / train-ai=y\n"
    rules = parse_robots_content_usage(text, "ClearanceBot")
    assert rules == [
        (None, "train-ai=n", "Content-Usage: train-ai=n"),
        ("/", "train-ai=y", "Content-Usage: / train-ai=y"),
    ]
    assert content_usage_from_robots(rules, "/anything").decision == DENY


def test_top_level_rules_before_any_group_apply_to_everyone() -> None:
    text = "Content-Usage: /private/ train-ai=n\n\nUser-agent: ClearanceBot\nAllow: /\n"
    rules = parse_robots_content_usage(text, "ClearanceBot")
    assert rules == [("/private/", "train-ai=n", "Content-Usage: /private/ train-ai=n")]
    assert content_usage_from_robots(rules, "/private/x").decision == DENY


def test_comments_tabs_and_case_of_the_label() -> None:
    text = "User-agent: *\ncontent-usage\t:\t/a\ttrain-ai=n   # no training please\n"
    rules = parse_robots_content_usage(text, "ClearanceBot")
    assert rules[0][:2] == ("/a", "train-ai=n")
    assert content_usage_from_robots(rules, "/a/b").decision == DENY


def test_malformed_matching_rule_fails_closed_but_a_clean_n_is_not_an_error() -> None:
    rules = parse_robots_content_usage("User-agent: *\nContent-Usage: /a Train-AI=n\n", "Bot")
    bad = content_usage_from_robots(rules, "/a/x")
    assert bad.decision == DENY and bad.error
    assert bad.found == "Content-Usage: /a Train-AI=n"
    both = [("/a", "Train-AI=n", "bad"), ("/a", "train-ai=n", "good")]
    clean = content_usage_from_robots(both, "/a/x")
    assert clean.decision == DENY and not clean.error


def test_two_tuple_rules_are_accepted() -> None:
    assert content_usage_from_robots([(None, "train-ai=n")], "/x").decision == DENY


def test_real_publisher_robots_files_parse_without_content_usage() -> None:
    for name in ("nytimes.com.txt", "theguardian.com.txt", "ai.robots.txt_robots.txt"):
        text = robots_fixture(name)
        rules = parse_robots_content_usage(text, "ClearanceBot")
        assert content_usage_from_robots(rules, "/2024/01/01/a.html").decision in (
            NONE,
            DENY,
            ALLOW,
        )


def test_ai_robots_txt_is_one_group_with_many_agents() -> None:
    robots = RobotsFile.parse(robots_fixture("ai.robots.txt_robots.txt"))
    assert len(robots.groups) == 1
    assert len(robots.groups[0].agents) > 100
    matched, lines = robots.select("gptbot")
    assert matched == "GPTBot"
    assert [line.raw for line in lines] == ["Disallow: /"]
    assert robots.select("ClearanceBot") == (None, ())


def test_robots_parse_is_bounded() -> None:
    text = "User-agent: *\n" + "Content-Usage: /a train-ai=y\n" * 200_000
    started = time.perf_counter()
    robots = RobotsFile.parse(text)
    assert time.perf_counter() - started < 2.0
    assert robots.truncated


# --------------------------------------------------------------------------- path matching


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/", "/anything", True),
        ("/fish", "/fish.html", True),
        ("/fish", "/Fish.asp", False),
        ("/fish*.php", "/fish/salmon.php", True),
        ("/fish*.php", "/Fish.PHP", False),
        ("/*.php$", "/filename.php", True),
        ("/*.php$", "/filename.php?parameters", False),
        ("/*.php$", "/filename.php5", False),
        ("/fish/", "/fish", False),
        ("/a$b", "/a$b/c", True),  # '$' mid-pattern is literal
        ("/%7Efoo", "/~foo/bar", True),
        ("/~foo", "/%7efoo/bar", True),
        ("/caf\u00e9", "/caf%C3%A9/x", True),
        ("/a%2Fb", "/a/b", False),  # reserved characters stay encoded
        ("/**x", "/yyx", True),
        ("*", "/", True),
    ],
)
def test_path_patterns(pattern: str, path: str, expected: bool) -> None:
    assert glob_match(pattern, path) is expected


def test_pattern_length_counts_normalised_octets() -> None:
    assert PathPattern.compile("/ai-ok/").length == 7
    assert PathPattern.compile("/%7E").length == 2
    assert normalise("/%2f%41") == "/%2FA"


def test_hostile_pattern_is_linear_time() -> None:
    # robotexclusionrulesparser took 17 s on this pattern with a 200-character URL.
    pattern = PathPattern.compile("/*a*a*a*a*a*a*a*a*a*a$")
    text = "/" + "a" * 100_000 + "b"
    started = time.perf_counter()
    assert not pattern.matches(text)
    assert pattern.matches(text[:-1])
    assert time.perf_counter() - started < 0.5
