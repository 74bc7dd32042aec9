"""`clearance config schema`: the JSON Schema of clearance.yaml and of a source file, checked with
the `jsonschema` package against `clearance init`'s files and the demo's (YAML dates read as
strings, as an editor's YAML language server sees them), and against broken files."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

import pipeline.cli.configs  # noqa: F401 - registers init, config
from crawler.demo.config import write_demo_configs
from pipeline.cli import cli
from pipeline.registry.schema import FILES, SCHEMA_DIR, config_schema


class _DatesAsStrings(yaml.SafeLoader):
    """YAML without the timestamp resolver: ``2026-03-01`` stays a string."""


_DatesAsStrings.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load(path: Path):
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_DatesAsStrings)  # noqa: S506


def validator(kind: str) -> jsonschema.Draft202012Validator:
    schema = config_schema(kind)  # type: ignore[arg-type]
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema,
                                           format_checker=jsonschema.FormatChecker())


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def config_files(root: Path) -> list[tuple[str, Path]]:
    return [("clearance", root / "clearance.yaml"),
            *[("source", p) for p in sorted((root / "sources").glob("*.yaml"))]]


def test_init_writes_the_schemas_and_names_them(tmp_path):
    assert invoke("init", str(tmp_path)).exit_code == 0
    root = tmp_path / "configs"
    for kind, path in config_files(root):
        first = path.read_text().splitlines()[0]
        target = (path.parent / first.split("$schema=", 1)[1]).resolve()
        assert first.startswith("# yaml-language-server: $schema=")
        assert target == (root / SCHEMA_DIR / FILES[kind]).resolve()
        assert json.loads(target.read_text()) == config_schema(kind)  # type: ignore[arg-type]


def test_the_schema_accepts_init_and_demo_configs(tmp_path):
    assert invoke("init", str(tmp_path / "init")).exit_code == 0
    write_demo_configs(tmp_path / "demo", "http://127.0.0.1:8000/")
    both = validator("all")
    for root in (tmp_path / "init" / "configs", tmp_path / "demo"):
        files = config_files(root)
        assert len(files) >= 2
        for kind, path in files:
            doc = load(path)
            errors = [e.message for e in validator(kind).iter_errors(doc)]
            assert errors == [], (path, errors)
            assert both.is_valid(doc), path


def test_the_schema_rejects_what_validate_rejects(tmp_path):
    assert invoke("init", str(tmp_path)).exit_code == 0
    source = load(tmp_path / "configs" / "sources" / "example-source.yaml")
    check = validator("source")
    no_consent = {k: v for k, v in source.items() if k != "consent"}
    errors = list(check.iter_errors(no_consent))
    assert [e.message for e in errors] == ["'consent' is a required property"]
    assert not validator("all").is_valid(no_consent)
    for broken in (
        {**source, "colour": "blue"},  # unknown key
        {**source, "consent": {**source["consent"], "status": "maybe"}},
        {**source, "consent": {**source["consent"], "granted_at": "1 March"}},  # not a date
        {**source, "id": "Not An Id"},
    ):
        assert not check.is_valid(broken), broken
    settings = load(tmp_path / "configs" / "clearance.yaml")
    assert not validator("clearance").is_valid({**settings, "robots_token": "Clearance Bot/1"})


@pytest.mark.parametrize("kind", ["all", "clearance", "source"])
def test_config_schema_command(tmp_path, kind):
    result = invoke("config", "schema", "--kind", kind)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == config_schema(kind)  # type: ignore[arg-type]
    out = tmp_path / "s.json"
    assert invoke("config", "schema", "--kind", kind, "--out", str(out)).exit_code == 0
    assert json.loads(out.read_text()) == config_schema(kind)  # type: ignore[arg-type]
