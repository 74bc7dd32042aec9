"""The AI-agent list as data (crawler.signals.agents, crawler/data/ai_agents.txt, tools/)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from crawler.signals.agents import load_ai_agents, parse_agents

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"
DATA = REPO / "crawler" / "data" / "ai_agents.txt"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "update_ai_agents", REPO / "tools" / "update_ai_agents.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("update_ai_agents", module)
    spec.loader.exec_module(module)
    return module


def _robots_json() -> Path:
    path = FIXTURES / "robots" / "ai.robots.txt_robots.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent (../shared/fixtures not checked out)")
    return path


def test_bundled_list_names_the_well_known_training_agents() -> None:
    agents = load_ai_agents()
    for token in ("gptbot", "ccbot", "google-extended", "claudebot", "applebot-extended"):
        assert token in agents
    assert all(token == token.lower() for token in agents)
    assert "*" not in agents and "clearancebot" not in agents


def test_data_file_attributes_ai_robots_txt_and_its_licence() -> None:
    text = DATA.read_text(encoding="utf-8")
    assert "https://github.com/ai-robots-txt/ai.robots.txt" in text
    assert "# Copyright (c) 2024 ai.robots.txt" in text
    assert "# MIT License" in text


def test_parse_agents_ignores_comments_and_blank_lines_and_keeps_inner_spaces() -> None:
    text = "# header\n\nGPTBot   # trains models\n  Brightbot 1.0  # spaces inside\nCCBot\n"
    assert parse_agents(text) == frozenset({"gptbot", "brightbot 1.0", "ccbot"})


def test_tool_regenerates_the_bundled_file_from_the_fixture(tmp_path: Path) -> None:
    source = _robots_json()
    out = tmp_path / "ai_agents.txt"
    tool = _tool()
    label = next(
        line.removeprefix("# Source: ")
        for line in DATA.read_text(encoding="utf-8").splitlines()
        if line.startswith("# Source: ")
    )
    assert tool.main([str(source), "--out", str(out), "--label", label]) == 0
    assert out.read_text(encoding="utf-8") == DATA.read_text(encoding="utf-8")
    upstream = json.loads(source.read_bytes())
    assert parse_agents(out.read_text(encoding="utf-8")) == {t.lower() for t in upstream}


def test_tool_refuses_a_file_that_is_not_robots_json(tmp_path: Path) -> None:
    bad = tmp_path / "robots.json"
    bad.write_text("[1, 2, 3]", encoding="utf-8")
    assert _tool().main([str(bad), "--out", str(tmp_path / "out.txt")]) == 1
    assert not (tmp_path / "out.txt").exists()
