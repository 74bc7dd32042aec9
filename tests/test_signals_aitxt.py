"""Spawning ai.txt: robots.txt grammar over file names and extensions (crawler.signals.aitxt)."""

from __future__ import annotations

import time

import pytest

from crawler.signals import ALLOW, DENY, NONE
from crawler.signals.aitxt import CHECK, AiTxt, AiTxtError, file_absent, file_unreadable
from pipeline.runs.reasons import AI_TXT_DISALLOWED, ALL

TOKEN = "ClearanceBot"

# The shape Spawning's generator writes (site.spawning.ai/spawning-ai-txt), abridged.
SPAWNING_MEDIA = """\
# Spawning AI
# Prevent datasets from using the following file types

User-Agent: *
Disallow: *.txt
Disallow: *.pdf
Disallow: *.html
Disallow: *.gif
Disallow: *.jpeg
Disallow: *.jpg
Disallow: *.png
Disallow: *.webp
Disallow: *.mp3
Disallow: *.mp4
"""

SPAWNING_ALL = SPAWNING_MEDIA + "Disallow: /\nDisallow: *\n"


def test_extension_rules_refuse_matching_files() -> None:
    ai = AiTxt.parse(SPAWNING_MEDIA)
    result = ai.check("https://example.org/gallery/sunset.jpg", TOKEN)
    assert result.check == CHECK
    assert result.decision == DENY
    assert result.reason == AI_TXT_DISALLOWED and result.reason in ALL
    assert result.found == "Disallow: *.jpg"
    assert "sunset.jpg" in (result.detail or "") or "/gallery/sunset.jpg" in (result.detail or "")


def test_other_extensions_and_directories_are_not_matched() -> None:
    ai = AiTxt.parse(SPAWNING_MEDIA)
    assert ai.check("/gallery/model.glb", TOKEN).decision == NONE
    assert ai.check("/gallery/", TOKEN).decision == NONE
    assert ai.check("/photo.jpg.zip", TOKEN).decision == NONE  # extension patterns are anchored


def test_extension_match_ignores_case_and_query() -> None:
    ai = AiTxt.parse(SPAWNING_MEDIA)
    assert ai.check("/IMG_0001.JPG?w=200", TOKEN).decision == DENY
    assert ai.check("/a%20b.png", TOKEN).decision == DENY


def test_content_type_supplies_the_extension() -> None:
    ai = AiTxt.parse(SPAWNING_MEDIA)
    assert ai.check("/render?id=3", TOKEN).decision == NONE
    assert ai.check("/render?id=3", TOKEN, content_type="image/jpeg; q=1").decision == DENY
    assert ai.check("/photo.php", TOKEN, content_type="image/webp").decision == DENY


def test_disallow_everything() -> None:
    ai = AiTxt.parse(SPAWNING_ALL)
    for url in ("/", "/models/scene.glb", "/a/b/c"):
        assert ai.check(url, TOKEN).decision == DENY


def test_longest_match_wins_and_disallow_wins_ties() -> None:
    text = (
        "User-agent: *\nDisallow: *\nAllow: *.jpg\nDisallow: /private/\n"
        "Allow: *.png\nDisallow: *.PNG\n"
    )
    ai = AiTxt.parse(text)
    allowed = ai.check("/photos/a.jpg", TOKEN)
    assert allowed.decision == ALLOW and allowed.found == "Allow: *.jpg"
    assert ai.check("/photos/a.gif", TOKEN).decision == DENY  # only "*" matches
    assert ai.check("/private/a.jpg", TOKEN).decision == DENY  # /private/ (9) beats *.jpg (5)
    tie = ai.check("/a.png", TOKEN)
    assert tie.decision == DENY and tie.found == "Disallow: *.PNG"


def test_path_rules_use_robots_semantics() -> None:
    ai = AiTxt.parse("User-agent: *\nDisallow: /art/*.tif$\nAllow: /\n")
    assert ai.check("/art/x/y.tif", TOKEN).decision == DENY
    assert ai.check("/art/x/y.tif?download=1", TOKEN).decision == ALLOW
    assert ai.check("/Art/y.tif", TOKEN).decision == ALLOW  # paths are case sensitive


def test_group_for_our_token_wins_over_star() -> None:
    text = "User-agent: *\nDisallow: *\n\nUser-agent: clearancebot\nAllow: *.jpg\n"
    ai = AiTxt.parse(text)
    assert ai.check("/a.jpg", TOKEN).decision == ALLOW
    assert ai.check("/a.png", TOKEN).decision == NONE  # our group says nothing about png
    assert ai.check("/a.jpg", "OtherBot").decision == DENY


def test_group_for_another_bot_only() -> None:
    ai = AiTxt.parse("User-agent: GPTBot\nDisallow: *\n")
    result = ai.check("/a.jpg", TOKEN)
    assert result.decision == NONE
    assert "no group for ClearanceBot" in (result.detail or "")


def test_empty_disallow_and_html_soft_404_state_nothing() -> None:
    assert AiTxt.parse("User-agent: *\nDisallow:\n").check("/a.jpg", TOKEN).decision == NONE
    html = AiTxt.parse(b"<!doctype html><html><body><h1>Welcome</h1></body></html>")
    result = html.check("/a.jpg", TOKEN)
    assert result.decision == NONE
    assert "not an ai.txt" in (result.detail or "")


def test_binary_body_is_an_error_and_reserves_the_host() -> None:
    with pytest.raises(AiTxtError):
        AiTxt.parse(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(AiTxtError):
        AiTxt.parse("User-agent: *\x00")
    result = file_unreadable("ai.txt is binary")
    assert result.decision == DENY and result.error and result.reason == AI_TXT_DISALLOWED
    assert file_absent().decision == NONE


def test_two_megabyte_garbage_and_hostile_patterns_complete_quickly() -> None:
    started = time.perf_counter()
    garbage = AiTxt.parse(b"x: y z\n" * 300_000)
    assert garbage.check("/a.jpg", TOKEN).decision == NONE
    hostile = AiTxt.parse("User-agent: *\n" + "Disallow: *a*a*a*a*a*a*a*a*a$\n" * 1000)
    assert hostile.check("/" + "a" * 5000 + "b", TOKEN).decision == NONE
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("body", [
    "\ufeffUser-Agent: ClearanceBot\nDisallow: *.jpg\n",
    "\ufeffUser-Agent: ClearanceBot\nDisallow: *.jpg\n".encode(),
], ids=["text", "bytes"])
def test_a_leading_bom_is_skipped(body: str | bytes) -> None:
    """A UTF-8 BOM before the first user-agent line does not hide the group."""
    parsed = AiTxt.parse(body)
    result = parsed.check("https://h.example/img/a.jpg", TOKEN)
    assert result.decision == DENY and result.reason == AI_TXT_DISALLOWED
    assert "group 'ClearanceBot' line 2" in (result.detail or "")
