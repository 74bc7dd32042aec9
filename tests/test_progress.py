"""crawler/progress.py: the console and table every line for people goes through.

A path or URL is written whole (DESIGN.md): never broken at the terminal width or at the 80
columns rich assumes for a pipe, never cut with an ellipsis, never read as markup.
"""

from __future__ import annotations

import re

import pytest
from rich.text import Text

from crawler.progress import UnbrokenTable, people_console

LONG = "/srv/" + "a-long-folder-name/" * 8 + "[bold]odd[/]-name/manifest.json"
URL = "https://images.example.org/" + "deep/" * 12 + "photo.jpg"


@pytest.fixture(autouse=True)
def narrow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")


def test_a_long_path_prints_whole_and_literal(capsys: pytest.CaptureFixture[str]) -> None:
    console = people_console(stderr=False)
    console.print(Text.assemble(("4. build", "bold"), " ", LONG))
    console.print(f"  manifest {LONG}")
    out = capsys.readouterr().out
    assert out.splitlines() == [f"4. build {LONG}", f"  manifest {LONG}"]


def test_table_cells_keep_paths_and_words_whole(capsys: pytest.CaptureFixture[str]) -> None:
    table = UnbrokenTable(title="Excluded: 2", title_justify="left")
    table.add_column("reason")
    table.add_column("example", no_wrap=True)
    table.add_column("detail")
    table.add_row("robots_disallowed", LONG, f"line 4: Disallow: /deep/; {URL} refused it")
    table.add_row("out_of_scope", URL, "not inside the scope of any eligible source")
    people_console(stderr=False).print(table)
    out = capsys.readouterr().out
    tokens = {token for line in out.splitlines() for token in line.split()}
    assert {URL, LONG} <= tokens, out
    assert "…" not in out
    # The prose column still wraps, between words.
    assert re.search(r"│ refused it +│$", out, re.M), out
