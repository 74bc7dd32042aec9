"""JSON Schema of the config files, generated from the pydantic models (`config`).

``clearance config schema`` prints it so that editors (YAML language servers, through a
``# yaml-language-server: $schema=...`` line) and CI can check configs before `validate`.
The schema states the shape (keys, types, patterns, enums); checks that need more than one
file or the network (a scope covering its start URLs, SPDX ids, opt-out lists) stay with
`clearance validate`. YAML dates (``2026-03-01``) are strings in the schema (``format: date``).
"""

from __future__ import annotations

from typing import Any, Literal

from pipeline.registry.config import Settings, Source

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_DIR = "schema"  # under the config dir, written by `clearance init`
FILES = {"clearance": "clearance.schema.json", "source": "source.schema.json"}
Kind = Literal["clearance", "source", "all"]


def _one(model: type[Settings] | type[Source], title: str, description: str) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    schema["title"] = title
    schema["description"] = description
    return schema


def settings_schema() -> dict[str, Any]:
    return {"$schema": DRAFT, **_one(Settings, "clearance.yaml",
                                     "Clearance settings (configs/clearance.yaml).")}


def source_schema() -> dict[str, Any]:
    return {"$schema": DRAFT, **_one(Source, "Clearance source",
                                     "One opted-in source (configs/sources/<id>.yaml; id equals "
                                     "the file name).")}


def config_schema(kind: Kind = "all") -> dict[str, Any]:
    """One file kind's schema, or (``all``) one document that accepts either kind."""
    if kind == "clearance":
        return settings_schema()
    if kind == "source":
        return source_schema()
    settings, source = settings_schema(), source_schema()
    defs: dict[str, Any] = {}
    for doc in (settings, source):
        defs.update(doc.pop("$defs", {}))
        doc.pop("$schema")
    defs["Settings"], defs["Source"] = settings, source
    return {
        "$schema": DRAFT,
        "title": "Clearance config file",
        "description": "clearance.yaml or a source file (configs/sources/<id>.yaml).",
        "anyOf": [{"$ref": "#/$defs/Settings"}, {"$ref": "#/$defs/Source"}],
        "$defs": dict(sorted(defs.items())),
    }
