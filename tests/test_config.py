"""pipeline/config.py: `load_config` and the `file: key: problem` contract, in the library and
through the CLI (`validate` and every other command refuse a malformed config before any request).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers_config import settings_doc, source_doc, write_config, write_source
from mockserver import MockServer

from pipeline.registry.config import Config, ConfigError, ConfigProblem, load_config

SOURCE_FILE = "configs/sources/aurora-art.yaml"
SETTINGS_FILE = "configs/clearance.yaml"


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    """A valid config dir named ``configs`` holding one eligible source, ``aurora-art``."""
    root = tmp_path / "configs"
    write_config(root, [source_doc("aurora-art")])
    return root


def edit_source(root: Path, change: Callable[[dict[str, Any]], None], name: str = "aurora-art"
                ) -> None:
    """Rewrite ``sources/<name>.yaml`` after ``change`` mutated its document."""
    path = root / "sources" / f"{name}.yaml"
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def edit_settings(root: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = root / "clearance.yaml"
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def problems(root: Path) -> list[ConfigProblem]:
    """The problems ``load_config`` raises; fails the test if it loads."""
    with pytest.raises(ConfigError) as info:
        load_config(root)
    error = info.value
    assert error.problems, "ConfigError without problems"
    # str() is exactly one `file: key: problem` line per problem.
    assert str(error).splitlines() == [f"{p.file}: {p.key}: {p.problem}" for p in error.problems]
    return error.problems


def only_problem(root: Path) -> ConfigProblem:
    found = problems(root)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


# --------------------------------------------------------------------------- the valid case


def test_valid_config_loads_with_typed_values(configs: Path) -> None:
    config = load_config(configs)
    assert isinstance(config, Config)
    assert list(config.sources) == ["aurora-art"]
    source = config.sources["aurora-art"]
    assert source.consent.uses == ["ai-training", "research"]
    assert source.licence.default == "CC-BY-4.0"
    assert config.settings.robots_token == "ClearanceBot"
    assert set(config.file_sha256) == {"clearance.yaml", "sources/aurora-art.yaml"}
    assert re.fullmatch(r"[0-9a-f]{64}", config.sha256)
    # Relative paths resolve against the config dir; absolute ones stay.
    assert config.resolve("blocklists/x.txt") == configs / "blocklists" / "x.txt"
    assert config.resolve("/abs/x.txt") == Path("/abs/x.txt")


def test_config_problem_str_is_file_key_problem() -> None:
    problem = ConfigProblem("configs/sources/a.yaml", "consent.id", "required key is missing")
    assert str(problem) == "configs/sources/a.yaml: consent.id: required key is missing"
    error = ConfigError([problem, ConfigProblem("configs/clearance.yaml", "x", "unknown key")])
    assert str(error).splitlines() == [
        "configs/sources/a.yaml: consent.id: required key is missing",
        "configs/clearance.yaml: x: unknown key",
    ]


# --------------------------------------------------------------------------- one test per error


def test_missing_consent_block(configs: Path) -> None:
    edit_source(configs, lambda d: d.pop("consent"))
    problem = only_problem(configs)
    assert (problem.file, problem.key) == (SOURCE_FILE, "consent")
    assert "missing" in problem.problem
    assert str(problem).startswith(f"{SOURCE_FILE}: consent: ")


def test_impossible_date_unquoted_in_yaml(configs: Path) -> None:
    """`2026-13-01` written bare (a YAML timestamp) is reported with its key, not a crash."""
    path = configs / "sources" / "aurora-art.yaml"
    text = path.read_text()
    text, count = re.subn(r"(?m)^(  expires_at:).*$", r"\1 2026-13-01", text, count=1)
    assert count == 1
    path.write_text(text)
    problem = only_problem(configs)
    assert (problem.file, problem.key) == (SOURCE_FILE, "consent.expires_at")
    assert "2026-13-01" in problem.problem
    assert "month" in problem.problem


def test_impossible_date_quoted(configs: Path) -> None:
    edit_source(configs, lambda d: d["consent"].update(granted_at="2026-02-30"))
    problem = only_problem(configs)
    assert (problem.file, problem.key) == (SOURCE_FILE, "consent.granted_at")
    assert "2026-02-30" in problem.problem


def test_consent_expiring_before_it_is_granted(configs: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["consent"]["granted_at"] = "2026-03-01"
        doc["consent"]["expires_at"] = "2026-02-01"

    edit_source(configs, change)
    problem = only_problem(configs)
    assert (problem.file, problem.key) == (SOURCE_FILE, "consent.expires_at")
    assert "after granted_at" in problem.problem


def test_consent_expiring_the_day_it_is_granted(configs: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["consent"]["granted_at"] = doc["consent"]["expires_at"] = "2026-03-01"

    edit_source(configs, change)
    assert only_problem(configs).key == "consent.expires_at"


def test_age_verification_expiring_before_it_was_made(configs: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["age_verification"]["verified_at"] = "2026-03-01"
        doc["age_verification"]["expires_at"] = "2025-03-01"

    edit_source(configs, change)
    problem = only_problem(configs)
    assert (problem.file, problem.key) == (SOURCE_FILE, "age_verification.expires_at")
    assert "after verified_at" in problem.problem


def test_unknown_licence_in_allow_list(configs: Path) -> None:
    edit_settings(configs, lambda d: d["licences"].update(allow=["CC-BY-4.0", "CC-BY-9.9"]))
    problem = only_problem(configs)
    assert (problem.file, problem.key) == (SETTINGS_FILE, "licences.allow")
    assert "CC-BY-9.9" in problem.problem


def test_unknown_licence_as_source_default(configs: Path) -> None:
    edit_source(configs, lambda d: d["licence"].update(default="Totally-Free-1.0"))
    problem = only_problem(configs)
    assert (problem.file, problem.key) == (SOURCE_FILE, "licence.default")
    assert "Totally-Free-1.0" in problem.problem


def test_licence_ids_are_normalised(configs: Path) -> None:
    edit_settings(configs, lambda d: d["licences"].update(allow=["cc-by-4.0", "cc0-1.0"]))
    edit_source(configs, lambda d: d["licence"].update(default="cc-by-sa-4.0"))
    config = load_config(configs)
    assert config.settings.licences.allow == ["CC-BY-4.0", "CC0-1.0"]
    assert config.sources["aurora-art"].licence.default == "CC-BY-SA-4.0"


def test_id_must_equal_file_name(configs: Path) -> None:
    edit_source(configs, lambda d: d.update(id="borealis"))
    problem = only_problem(configs)
    assert (problem.file, problem.key) == (SOURCE_FILE, "id")
    assert "aurora-art" in problem.problem and "borealis" in problem.problem


def test_scope_must_cover_start_urls(configs: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["start_urls"] = ["https://aurora-art.example/gallery-private/"]

    edit_source(configs, change)
    problem = only_problem(configs)
    assert (problem.file, problem.key) == (SOURCE_FILE, "scope")
    assert "https://aurora-art.example/gallery-private/" in problem.problem


def test_start_url_with_credentials_is_refused(configs: Path) -> None:
    edit_source(configs, lambda d: d.update(start_urls=["https://u:p@aurora-art.example/gallery/"]))
    problem = problems(configs)[0]
    assert (problem.file, problem.key) == (SOURCE_FILE, "start_urls")
    assert "credentials" in problem.problem


def test_unknown_top_level_key_in_source(configs: Path) -> None:
    edit_source(configs, lambda d: d.update(colour="red"))
    problem = only_problem(configs)
    assert (problem.file, problem.key, problem.problem) == (SOURCE_FILE, "colour", "unknown key")


def test_unknown_nested_key_in_source(configs: Path) -> None:
    edit_source(configs, lambda d: d["consent"].update(expiry="2027-01-01"))
    problem = only_problem(configs)
    assert (problem.file, problem.key, problem.problem) == (
        SOURCE_FILE, "consent.expiry", "unknown key"
    )


def test_unknown_keys_in_settings(configs: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["robots_tokens"] = ["x"]
        doc["limits"]["max_pixel"] = 5

    edit_settings(configs, change)
    found = {(p.file, p.key, p.problem) for p in problems(configs)}
    assert found == {
        (SETTINGS_FILE, "robots_tokens", "unknown key"),
        (SETTINGS_FILE, "limits.max_pixel", "unknown key"),
    }


def test_unknown_signal_switch(configs: Path) -> None:
    edit_settings(configs, lambda d: d.update(signals={"robots_ai": False}))
    problem = only_problem(configs)
    assert (problem.file, problem.key, problem.problem) == (
        SETTINGS_FILE, "signals.robots_ai", "unknown key"
    )


@pytest.mark.parametrize("schedule", ["61 * * * *", "every monday", "* * *"])
def test_invalid_cron_schedule(configs: Path, schedule: str) -> None:
    edit_source(configs, lambda d: d["crawl"].update(schedule=schedule))
    problem = only_problem(configs)
    assert (problem.file, problem.key) == (SOURCE_FILE, "crawl.schedule")
    assert "cron" in problem.problem and schedule in problem.problem


def test_valid_cron_schedule(configs: Path) -> None:
    edit_source(configs, lambda d: d["crawl"].update(schedule="0 3 * * 1"))
    assert load_config(configs).sources["aurora-art"].crawl.schedule == "0 3 * * 1"


def test_missing_blocklist_file(configs: Path) -> None:
    edit_settings(configs, lambda d: d.update(
        blocklists=[{"id": "partner-sha256", "kind": "sha256", "path": "blocklists/partner.txt"}]
    ))
    problem = only_problem(configs)
    assert (problem.file, problem.key) == (SETTINGS_FILE, "blocklists.0.path")
    assert "blocklists/partner.txt" in problem.problem and "not found" in problem.problem


def test_blocklist_path_resolves_against_config_dir(configs: Path) -> None:
    (configs / "blocklists").mkdir()
    (configs / "blocklists" / "partner.txt").write_text("# empty\n")
    edit_settings(configs, lambda d: d.update(
        blocklists=[{"id": "partner-sha256", "kind": "sha256", "path": "blocklists/partner.txt"}]
    ))
    config = load_config(configs)
    assert config.resolve(config.settings.blocklists[0].path).is_file()


def test_bad_blocklist_kind(configs: Path) -> None:
    (configs / "partner.txt").write_text("")
    edit_settings(configs, lambda d: d.update(
        blocklists=[{"id": "partner", "kind": "crc32", "path": "partner.txt"}]
    ))
    problem = only_problem(configs)
    assert (problem.file, problem.key) == (SETTINGS_FILE, "blocklists.0.kind")
    assert "crc32" in problem.problem and "pdq" in problem.problem


def test_threshold_on_a_non_pdq_blocklist(configs: Path) -> None:
    (configs / "partner.txt").write_text("")
    edit_settings(configs, lambda d: d.update(
        blocklists=[{"id": "partner", "kind": "sha256", "path": "partner.txt", "threshold": 31}]
    ))
    problem = only_problem(configs)
    assert (problem.file, problem.key) == (SETTINGS_FILE, "blocklists.0.threshold")
    assert "pdq" in problem.problem


def test_threshold_on_a_pdq_blocklist_is_fine(configs: Path) -> None:
    (configs / "partner-pdq.txt").write_text("")
    edit_settings(configs, lambda d: d.update(
        blocklists=[
            {"id": "partner-pdq", "kind": "pdq", "path": "partner-pdq.txt", "threshold": 31}
        ]
    ))
    assert load_config(configs).settings.blocklists[0].threshold == 31


def test_url_list_kinds_and_screening_switch(configs: Path) -> None:
    (configs / "links.txt").write_text("")
    edit_settings(configs, lambda d: d.update(
        blocklists=[{"id": f"links-{k}", "kind": f"url-{k}", "path": "links.txt"}
                    for k in ("sha256", "sha1", "md5")],
        screening={"pdq_dihedral": True},
    ))
    settings = load_config(configs).settings
    assert [b.kind for b in settings.blocklists] == ["url-sha256", "url-sha1", "url-md5"]
    assert settings.screening.pdq_dihedral is True
    edit_settings(configs, lambda d: d.pop("screening"))
    assert load_config(configs).settings.screening.pdq_dihedral is False


def test_unknown_screening_key(configs: Path) -> None:
    edit_settings(configs, lambda d: d.update(screening={"pdq_rotations": True}))
    problem = only_problem(configs)
    assert (problem.file, problem.key, problem.problem) == (
        SETTINGS_FILE, "screening.pdq_rotations", "unknown key")


def test_cli_validate_refuses_a_malformed_list_line(configs: Path, tmp_path: Path) -> None:
    (configs / "blocklists").mkdir()
    good = hashlib.sha256(b"x").hexdigest()
    path = configs / "blocklists" / "partner.txt"
    path.write_text(f"# partner\n{good}\n\n{good[:-2]}  # truncated\n{good} {good}\n")
    path.chmod(0o600)
    edit_settings(configs, lambda d: d.update(
        blocklists=[{"id": "partner", "kind": "sha256", "path": "blocklists/partner.txt"}]
    ))
    load_config(configs)  # the schema is fine: the lines are checked when the lists load
    proc = cli("--config", str(configs), "--data", str(tmp_path / "data"), "validate")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "blocklists/partner.txt: line 4: expected 64 hex characters for kind 'sha256', got 62",
        "blocklists/partner.txt: line 5: expected one hash per line, got 2 columns",
    ]


def test_cli_validate_json_lists_blocklists_and_warnings(configs: Path, tmp_path: Path) -> None:
    (configs / "blocklists").mkdir()
    path = configs / "blocklists" / "pdq.txt"
    text = "# ThreatExchange export\n" + hashlib.sha256(b"p").hexdigest() + ",100\n"
    path.write_text(text)
    path.chmod(0o604)
    edit_settings(configs, lambda d: d.update(
        blocklists=[{"id": "partner-pdq", "kind": "pdq", "path": "blocklists/pdq.txt"}]
    ))
    proc = cli("--config", str(configs), "--data", str(tmp_path / "data"), "validate", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["blocklists"] == [{
        "id": "partner-pdq", "kind": "pdq", "path": "blocklists/pdq.txt", "entries": 1,
        "threshold": 31, "version": hashlib.sha256(text.encode()).hexdigest(),
    }]
    assert out["warnings"] == [
        "blocklists/pdq.txt: readable by group/others (mode 0604); chmod 600 it"]


def test_cli_validate_warns_on_a_group_readable_list(configs: Path, tmp_path: Path) -> None:
    (configs / "blocklists").mkdir()
    path = configs / "blocklists" / "partner.txt"
    path.write_text(hashlib.md5(b"x").hexdigest() + "\n")
    path.chmod(0o640)
    edit_settings(configs, lambda d: d.update(
        blocklists=[{"id": "partner", "kind": "md5", "path": "blocklists/partner.txt"}]
    ))
    proc = cli("--config", str(configs), "--data", str(tmp_path / "data"), "validate")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == (
        "warning: blocklists/partner.txt: readable by group/others (mode 0640); chmod 600 it\n"
    )
    assert "list partner: 1 md5" in proc.stdout
    path.chmod(0o600)
    proc = cli("--config", str(configs), "--data", str(tmp_path / "data"), "validate")
    assert proc.returncode == 0 and proc.stderr == ""


def test_duplicate_yaml_key(configs: Path) -> None:
    path = configs / "sources" / "aurora-art.yaml"
    lines = path.read_text().splitlines()
    lines.insert(2, "name: Second Name")  # `name` is line 2 already
    path.write_text("\n".join(lines) + "\n")
    problem = only_problem(configs)
    assert problem.file == SOURCE_FILE
    assert problem.key == "line 3"
    assert "duplicate key 'name'" in problem.problem


def test_duplicate_nested_yaml_key(configs: Path) -> None:
    path = configs / "clearance.yaml"
    text = path.read_text().replace(
        "  max_age_days: 730\n", "  max_age_days: 730\n  max_age_days: 1\n"
    )
    path.write_text(text)
    problem = only_problem(configs)
    assert problem.file == SETTINGS_FILE
    assert "duplicate key 'max_age_days'" in problem.problem
    expected_line = text.splitlines().index("  max_age_days: 1") + 1
    assert problem.key == f"line {expected_line}"


def test_invalid_yaml_names_the_line(configs: Path) -> None:
    (configs / "sources" / "aurora-art.yaml").write_text(
        "id: aurora-art\nname: Aurora\nstart_urls: x: y\nscope: x\n"
    )
    problem = only_problem(configs)
    assert problem.file == SOURCE_FILE
    assert problem.key == "line 3"
    assert problem.problem.startswith("not valid YAML")


def test_top_level_that_is_not_a_mapping(configs: Path) -> None:
    (configs / "sources" / "aurora-art.yaml").write_text("- id: aurora-art\n- name: Aurora\n")
    problem = only_problem(configs)
    assert (problem.file, problem.key) == (SOURCE_FILE, "(file)")
    assert "mapping" in problem.problem


def test_empty_source_file_lists_required_keys(configs: Path) -> None:
    (configs / "sources" / "aurora-art.yaml").write_text("# nothing yet\n")
    found = problems(configs)
    assert {p.file for p in found} == {SOURCE_FILE}
    assert {"id", "name", "start_urls", "scope", "consent"} <= {p.key for p in found}


def test_missing_clearance_yaml(configs: Path) -> None:
    (configs / "clearance.yaml").unlink()
    problem = only_problem(configs)
    assert (problem.file, problem.key) == (SETTINGS_FILE, "(file)")
    assert "missing" in problem.problem and "clearance init" in problem.problem


def test_missing_config_dir(tmp_path: Path) -> None:
    problem = only_problem(tmp_path / "nowhere")
    assert problem.file.endswith("nowhere")
    assert "not found" in problem.problem


def test_non_yaml_files_in_sources_are_ignored(configs: Path) -> None:
    (configs / "sources" / "README.txt").write_text("not: [yaml")
    (configs / "sources" / ".hidden.yaml").write_text("not: [yaml")
    assert list(load_config(configs).sources) == ["aurora-art"]


def test_several_errors_in_several_files_reported_at_once(configs: Path) -> None:
    write_source(configs, source_doc("borealis"))
    edit_source(configs, lambda d: d.pop("consent"))
    edit_source(configs, lambda d: d["crawl"].update(schedule="not cron"), name="borealis")
    edit_source(configs, lambda d: d.update(colour="blue"), name="borealis")
    edit_settings(configs, lambda d: d["licences"].update(allow=["NOT-A-LICENCE"]))
    found = {(p.file, p.key) for p in problems(configs)}
    assert found == {
        (SETTINGS_FILE, "licences.allow"),
        (SOURCE_FILE, "consent"),
        ("configs/sources/borealis.yaml", "crawl.schedule"),
        ("configs/sources/borealis.yaml", "colour"),
    }


# --------------------------------------------------------------------------- consent hash


def test_consent_sha256_follows_the_consent_block_only(configs: Path) -> None:
    before = load_config(configs).sources["aurora-art"]
    assert re.fullmatch(r"[0-9a-f]{64}", before.consent_sha256)

    # Outside the consent block: same hash.
    edit_source(configs, lambda d: d.update(name="Renamed Collective"))
    edit_source(configs, lambda d: d["crawl"].update(max_depth=1))
    edit_source(configs, lambda d: d["age_verification"].update(verified_by="Other Verifier"))
    unchanged = load_config(configs).sources["aurora-art"]
    assert unchanged.name == "Renamed Collective"
    assert unchanged.consent_sha256 == before.consent_sha256

    # Reordering keys or re-quoting values does not change the record either.
    path = configs / "sources" / "aurora-art.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["consent"] = dict(reversed(list(doc["consent"].items())))
    path.write_text(yaml.safe_dump(doc, sort_keys=True))
    assert load_config(configs).sources["aurora-art"].consent_sha256 == before.consent_sha256

    # Any change inside the consent block: a new hash.
    seen = {before.consent_sha256}
    for change in (
        lambda d: d["consent"].update(status="suspended"),
        lambda d: d["consent"].update(uses=["ai-training"]),
        lambda d: d["consent"].update(expires_at="2099-01-01"),
        lambda d: d["consent"]["evidence"].update(sha256="cd" * 32),
    ):
        edit_source(configs, change)
        digest = load_config(configs).sources["aurora-art"].consent_sha256
        assert digest not in seen
        seen.add(digest)


# --------------------------------------------------------------------------- through the CLI


def test_cli_validate_ok(configs: Path, tmp_path: Path) -> None:
    proc = cli("--config", str(configs), "--data", str(tmp_path / "data"), "validate")
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout
    assert proc.stderr == ""


def test_cli_validate_prints_problem_lines_and_exits_2(configs: Path, tmp_path: Path) -> None:
    edit_source(configs, lambda d: d.pop("consent"))
    edit_settings(configs, lambda d: d.update(colour="red"))
    expected = [str(p) for p in problems(configs)]
    assert len(expected) == 2
    proc = cli("--config", str(configs), "--data", str(tmp_path / "data"), "validate")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == expected
    assert f"{SOURCE_FILE}: consent: " in proc.stderr
    assert f"{SETTINGS_FILE}: colour: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_validate_bad_date_exits_2_without_traceback(configs: Path, tmp_path: Path) -> None:
    path = configs / "sources" / "aurora-art.yaml"
    path.write_text(re.sub(r"(?m)^(  granted_at:).*$", r"\1 2026-13-01", path.read_text()))
    proc = cli("--config", str(configs), "--data", str(tmp_path / "data"), "validate")
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"{SOURCE_FILE}: consent.granted_at: ")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "command",
    [("crawl",), ("crawl", "aurora-art"), ("build", "x"), ("schedule", "list"),
     ("source", "list")],
    ids=lambda c: " ".join(c),
)
def test_every_command_refuses_a_malformed_config_before_any_request(
    tmp_path: Path, mockserver: MockServer, command: tuple[str, ...]
) -> None:
    """A well-formed source points at a live local server; another file is malformed."""
    base = mockserver.route("/gallery/", body="<html><body><a href='a'>a</a></body></html>")
    configs = tmp_path / "configs"
    site = source_doc("aurora-art", schedule="* * * * *")
    site.update(start_urls=[base], scope=[base], allow_private_network=True)
    write_config(configs, [site])
    write_source(configs, {**source_doc("borealis"), "colour": "red"})
    proc = cli("--config", str(configs), "--data", str(tmp_path / "data"), *command)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == ["configs/sources/borealis.yaml: colour: unknown key"]
    assert mockserver.paths() == []
    assert not (tmp_path / "data" / "runs").exists()


def test_cli_init_writes_a_starter_that_validates(tmp_path: Path) -> None:
    project = tmp_path / "project"
    proc = cli("init", str(project))
    assert proc.returncode == 0, proc.stderr
    assert (project / "configs" / "clearance.yaml").is_file()
    starter_sources = sorted(p.name for p in (project / "configs" / "sources").iterdir())
    assert starter_sources
    # The starter explains itself.
    assert "#" in (project / "configs" / "clearance.yaml").read_text()

    proc = cli("--config", str(project / "configs"), "--data", str(tmp_path / "data"), "validate")
    assert proc.returncode == 0, proc.stderr
    config = load_config(project / "configs")
    assert [f"{s}.yaml" for s in config.sources] == starter_sources
    # Its evidence hash is the hash of the evidence file it wrote.
    for source in config.sources.values():
        evidence = config.resolve(source.consent.evidence.uri)
        if evidence.is_file():
            assert hashlib.sha256(evidence.read_bytes()).hexdigest() == (
                source.consent.evidence.sha256
            )


def test_cli_init_refuses_to_overwrite(tmp_path: Path) -> None:
    project = tmp_path / "project"
    assert cli("init", str(project)).returncode == 0
    settings = project / "configs" / "clearance.yaml"
    settings.write_text("# edited by hand\n" + settings.read_text())
    edited = settings.read_text()
    proc = cli("init", str(project))
    assert proc.returncode == 2
    assert "overwrite" in proc.stderr
    assert settings.read_text() == edited


def _suspend_in_state(data_dir: Path, source_id: str) -> None:
    from pipeline.registry.state import State

    data_dir.mkdir(parents=True, exist_ok=True)
    assert State(data_dir / "state.sqlite").suspend(source_id, "blocklist hit (test)")


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (source_doc("aurora-art", consent_expires_in=-1), "expired"),
        (source_doc("aurora-art", status="revoked"), "revoked"),
        (source_doc("aurora-art", status="suspended"), "suspended"),
        (source_doc("aurora-art", age_verified=False), "no age verification"),
        (source_doc("aurora-art", uses=("research",)), "does not cover"),
    ],
    ids=["expired", "revoked", "suspended", "no-av", "uses"],
)
def test_cli_validate_warns_on_ineligible_sources(
    tmp_path: Path, doc: dict[str, Any], reason: str
) -> None:
    configs = tmp_path / "configs"
    write_config(configs, [doc, source_doc("borealis")])
    proc = cli("--config", str(configs), "--data", str(tmp_path / "data"), "validate")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{SOURCE_FILE}: ")
    assert "warning" in lines[0] and reason in lines[0]
    assert "1 eligible" in proc.stdout


def test_cli_validate_warns_on_a_source_suspended_in_state(configs: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    _suspend_in_state(data, "aurora-art")
    proc = cli("--config", str(configs), "--data", str(data), "validate")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith(f"{SOURCE_FILE}: ")
    assert "suspended" in proc.stderr and "consent_inactive" in proc.stderr


def test_settings_doc_helper_is_valid(tmp_path: Path) -> None:
    """The shared helper's documents stay in step with the schema (other tests rely on them)."""
    config = write_config(tmp_path / "configs", [source_doc("a")], settings_doc())
    assert config.settings.intended_use == "ai-training"


def test_control_the_same_well_formed_config_does_reach_the_server(
    tmp_path: Path, mockserver: MockServer
) -> None:
    """Without the malformed file the crawl requests the server, so the empty logs above count."""
    base = mockserver.route("/gallery/", body="<html><body>empty</body></html>")
    mockserver.route("/robots.txt", status=404, body="")
    configs = tmp_path / "configs"
    site = source_doc("aurora-art")
    site.update(start_urls=[base], scope=[base], allow_private_network=True)
    write_config(configs, [site])
    proc = cli("--config", str(configs), "--data", str(tmp_path / "data"), "crawl",
               "--no-progress", timeout=90)
    assert proc.returncode == 0, proc.stderr
    assert "/gallery/" in mockserver.paths()


# --------------------------------------------------------------------------- hostile files

BOMB = "".join(
    f"{name}: &{name} [" + ",".join([f"*{prev}" if prev else '"lol"'] * 9) + "]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)  # billion laughs: 9**9 strings once every alias is expanded


def _bounded_cli(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """`clearance ARGS` under a 1 GiB address-space limit; (result, seconds taken)."""
    import resource

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True,
                          text=True, timeout=60, check=False, preexec_fn=limit_memory)
    return proc, time.monotonic() - started


@pytest.mark.parametrize(
    ("name", "use"),
    [("sources/aurora-art.yaml", "name: *i\n"), ("clearance.yaml", "user_agent: *i\n")],
    ids=["source", "clearance.yaml"],
)
def test_cli_validate_refuses_an_alias_bomb_quickly(
    configs: Path, tmp_path: Path, name: str, use: str
) -> None:
    path = configs / name
    lines = [line for line in path.read_text().splitlines(keepends=True)
             if not line.startswith(use.split(":")[0] + ":")]
    path.write_text(BOMB + "".join(lines) + use)
    proc, seconds = _bounded_cli("--config", str(configs), "--data", str(tmp_path / "data"),
                                 "validate")
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert seconds < 5, seconds
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr
    # The line of the alias that goes past the bound, inside the bomb.
    assert re.match(rf"configs/{re.escape(name)}: line [1-9]: ", proc.stderr), proc.stderr[:2000]
    assert "alias" in proc.stderr and "1000" in proc.stderr, proc.stderr[:2000]
    assert max(len(x) for x in proc.stderr.splitlines()) < 400


@pytest.mark.parametrize("name", ["sources/aurora-art.yaml", "clearance.yaml"])
def test_cli_validate_refuses_an_oversized_file_before_parsing(
    configs: Path, tmp_path: Path, name: str
) -> None:
    path = configs / name
    comment = "# " + "padding " * 12 + "\n"
    path.write_text(path.read_text() + comment * ((2 << 20) // len(comment) + 1))
    assert path.stat().st_size > 2 << 20
    proc, seconds = _bounded_cli("--config", str(configs), "--data", str(tmp_path / "data"),
                                 "validate")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert seconds < 5, seconds
    assert proc.stderr.splitlines() == [
        f"configs/{name}: (file): {path.stat().st_size} bytes, over the 1 MiB "
        f"(1048576 bytes) limit for a config file"
    ]


def test_small_aliases_still_load(configs: Path) -> None:
    """What yaml.safe_dump writes for a list used twice (an anchor and one alias) is fine."""
    def share(doc: dict[str, Any]) -> None:
        doc["scope"] = doc["start_urls"]

    edit_source(configs, share)
    assert "&id001" in (configs / "sources" / "aurora-art.yaml").read_text()
    source = load_config(configs).sources["aurora-art"]
    assert source.scope == source.start_urls


def test_recursive_alias_is_refused(configs: Path) -> None:
    path = configs / "sources" / "aurora-art.yaml"
    path.write_text(path.read_text() + "extra: &loop [*loop]\n")
    problem = only_problem(configs)
    assert problem.file == SOURCE_FILE and problem.key.startswith("line ")
    assert "alias *loop" in problem.problem and "recursive" in problem.problem
