"""A manifest with two versions and fixed dates, for the report formats' tests and golden files.

v1: aurora (3 rows, one NC licence), birch (2 rows, one a duplicate), cedar (revoked at v2),
crawl rejections (opt-outs and others), a run with two blocklist hits withheld (their incident
records on disk). v2: cedar revoked, one aurora URL taken down, one birch row gone from the
inputs. Every date is fixed, and ``created_at`` is pinned, so the reports are byte-stable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import yaml
from helpers_config import settings_doc, source_doc, write_config
from helpers_runs import FETCHED_AT, make_item, make_rejection

from pipeline.build.builder import build_manifest
from pipeline.registry.config import Config, load_config
from pipeline.registry.takedowns import Takedown
from pipeline.runs.writer import RunWriter
from pipeline.safety.incidents import Incident, write_incident

TODAY = date(2026, 1, 10)
CREATED = ("2026-01-10T12:00:00+00:00", "2026-01-20T12:00:00+00:00")
A, B, C = ("https://aurora.example/gallery/", "https://birch.example/gallery/",
           "https://cedar.example/gallery/")
TAKEN_DOWN = A + "2.jpg"
WITHHELD_URL = A + "withheld-secret.jpg"
WITHHELD_SHA256 = "5e" * 32
BLOCKLIST_LINE = "7f" * 32


@dataclass
class World:
    configs: Path
    data: Path
    config: Config
    items: dict[str, dict]


def _run(data: Path, run_id: str, items: list[dict], rejections: list[dict],
         withheld: int = 0) -> None:
    writer = RunWriter(data, run_id)
    for item in items:
        writer.add_item({**item, "run_id": run_id})
    for rejection in rejections:
        writer.add_rejection(rejection)
    writer.withheld = withheld
    writer.commit({"started_at": FETCHED_AT.isoformat(), "finished_at": FETCHED_AT.isoformat(),
                   "sources": sorted(writer.items_by_source), "config_sha256": "0" * 64,
                   "versions": {}, "limits_hit": []})


def _pin_created_at(version_dir: Path, created: str) -> None:
    """Wall-clock values are the only unstable bytes: pin them (manifest.json, croissant.json)."""
    for name in ("manifest.json", "croissant.json"):
        path = version_dir / name
        doc = json.loads(path.read_text())
        if name == "manifest.json":
            doc["created_at"] = created
        else:
            doc["datePublished"] = created.replace("+00:00", "Z")
            for activity in doc["prov:wasGeneratedBy"]:
                if activity["@id"].startswith("build/"):
                    activity["prov:endedAtTime"] = created.replace("+00:00", "Z")
        path.write_text(json.dumps(doc, indent=2, sort_keys=name == "manifest.json") + "\n")


def make_world(tmp_path: Path) -> World:
    configs, data = tmp_path / "configs", tmp_path / "data"
    (configs / "blocklists").mkdir(parents=True)
    (configs / "blocklists" / "partner.txt").write_text(f"# partner list\n{BLOCKLIST_LINE}\n")
    settings = settings_doc()
    settings["blocklists"] = [{"id": "partner-sha256", "kind": "sha256",
                               "path": "blocklists/partner.txt"}]
    docs = [source_doc(s, today=TODAY) for s in ("aurora", "birch", "cedar")]
    config = write_config(configs, docs, settings)
    a, b, c = (config.sources[s] for s in ("aurora", "birch", "cedar"))
    lists = [{"id": "partner-sha256", "version": "ab" * 32}]
    items = {
        "a1": make_item(a, A + "1.jpg", creator="Ana Ruiz", blocklists=lists),
        "a2": make_item(a, TAKEN_DOWN, licence="CC0-1.0", blocklists=lists),
        "a3": make_item(a, A + "nc.jpg", licence="CC-BY-NC-4.0", blocklists=lists),
        "b1": make_item(b, B + "1.jpg", content=b"same", licence_source="xmp", blocklists=lists,
                        bytes=5000),
        "b2": make_item(b, "https://cdn.birch.example/img/2.jpg", content=b"same",
                        blocklists=lists),
        "b3": make_item(b, B + "3.jpg", licence="CC-BY-SA-4.0", blocklists=lists),
        "c1": make_item(c, C + "1.jpg", blocklists=lists),
    }
    rejections = [
        make_rejection("aurora", A + "p.jpg", "tdm_reserved"),
        make_rejection("aurora", A + "q.jpg", "x_robots_noai"),
        make_rejection("aurora", A + "big.jpg", "too_large", stage="fetch"),
        make_rejection("birch", B + "private/", "robots_disallowed", stage="robots"),
        make_rejection("birch", B + "x.txt", "not_an_image", stage="image"),
    ]
    _run(data, "20260102T030405Z-aaaaaa", [items[k] for k in ("a1", "a2", "a3", "b1", "b2", "c1")],
         rejections, withheld=2)
    _run(data, "20260103T030405Z-bbbbbb", [items["b3"]], [])
    incident = Incident(incident_type="hash-list match", source_id="aurora", detected_by="crawl",
                        run_id="20260102T030405Z-aaaaaa", url=WITHHELD_URL,
                        sha256=WITHHELD_SHA256, list_id="partner-sha256",
                        list_kind="sha256", matched=WITHHELD_SHA256)
    write_incident(data, incident)
    v1 = build_manifest(config, data, "set", today=TODAY, takedowns=[])
    _pin_created_at(v1.path, CREATED[0])
    # v2: cedar revoked, a URL taken down, the run holding b3 no longer an input.
    cedar = {**docs[2], "consent": {**docs[2]["consent"], "status": "revoked"}}
    (configs / "sources" / "cedar.yaml").write_text(yaml.safe_dump(cedar, sort_keys=False))
    config = load_config(configs)
    takedown = Takedown(id="TD-1", kind="url", value=TAKEN_DOWN, distance=None,
                        reason="creator asked", requested_by="Ana Ruiz",
                        created_at=datetime(2026, 1, 15, tzinfo=UTC))
    v2 = build_manifest(config, data, "set", ["20260102T030405Z-aaaaaa"], today=TODAY,
                        takedowns=[takedown])
    _pin_created_at(v2.path, CREATED[1])
    return World(configs, data, config, items)
