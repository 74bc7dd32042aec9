"""The import rule: the house reads as the flow, and a package imports only what is below it.

Each `pipeline/<stage>/__init__.py` docstring ends with ``May import: ...``; this test reads
those lines and fails on any import that breaks them, on `pipeline` importing `crawler`
outside `pipeline/cli`, and on the row models importing anything of the project. An AST walk
over every module (imports inside functions and under TYPE_CHECKING count too).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipeline"
STAGES = sorted(p.name for p in PIPELINE.iterdir() if (p / "__init__.py").is_file())


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in a file, wherever it sits."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: relative import; use absolute imports")
    return out


def allowed(stage: str) -> set[str] | None:
    """The stages named on the package docstring's ``May import:`` line (None: everything)."""
    doc = ast.get_docstring(ast.parse((PIPELINE / stage / "__init__.py").read_text())) or ""
    match = re.search(r"^May import: (.+?)\.?$", doc, re.M)
    assert match, f"pipeline/{stage}/__init__.py: docstring has no 'May import:' line"
    text = match.group(1)
    if text.startswith("everything"):
        return None
    if text.startswith("nothing"):
        return set()
    names = {n.strip() for n in text.split(",")}
    unknown = names - set(STAGES)
    assert not unknown, f"pipeline/{stage}: 'May import:' names unknown packages {unknown}"
    return names


def modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_stage_says_what_it_is_for_and_what_it_may_import() -> None:
    assert {"registry", "runs", "safety", "build", "lifecycle", "reports", "cli"} <= set(STAGES)
    for stage in STAGES:
        doc = ast.get_docstring(ast.parse((PIPELINE / stage / "__init__.py").read_text()))
        assert doc and len(doc.splitlines()) >= 3, f"pipeline/{stage}: no docstring"
        allowed(stage)


def test_pipeline_never_imports_crawler_except_the_cli() -> None:
    bad = []
    for path in modules(PIPELINE):
        rel = path.relative_to(ROOT)
        if rel.parts[1] == "cli":
            continue
        bad += [f"{rel}:{line}: {mod}" for line, mod in imported_modules(path)
                if mod == "crawler" or mod.startswith("crawler.")]
    assert not bad, "pipeline imports crawler outside pipeline/cli:\n" + "\n".join(bad)


@pytest.mark.parametrize("stage", [s for s in STAGES if s != "cli"])
def test_stage_imports_only_what_its_docstring_allows(stage: str) -> None:
    permitted = allowed(stage)
    assert permitted is not None
    bad = []
    for path in modules(PIPELINE / stage):
        for line, mod in imported_modules(path):
            parts = mod.split(".")
            if parts[0] != "pipeline" or len(parts) < 3 or parts[1] not in STAGES:
                continue  # third-party, or pipeline's own version constants
            if parts[1] != stage and parts[1] not in permitted:
                bad.append(f"{path.relative_to(ROOT)}:{line}: imports {mod}")
    assert not bad, (f"pipeline/{stage} may import only {sorted(permitted) or 'nothing'}:\n"
                     + "\n".join(bad))


def test_row_models_import_nothing_of_the_project() -> None:
    path = PIPELINE / "runs" / "schema.py"
    own = [f"{line}: {mod}" for line, mod in imported_modules(path)
           if mod.split(".")[0] in ("pipeline", "crawler")]
    assert not own, f"{path.relative_to(ROOT)} must stay importable alone: {own}"


def test_the_rule_catches_a_breach(tmp_path: Path) -> None:
    """The checker itself: an import hidden in a function is still seen."""
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from crawler.runner import run_crawl\n")
    assert imported_modules(path) == [(2, "crawler.runner.run_crawl")]
