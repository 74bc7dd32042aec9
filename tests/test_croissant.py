"""vN/croissant.json, written by every build: Croissant 1.1 that mlcroissant validates and reads
(every row), from the version folder as written and from a copy of it elsewhere; offline.

mlcroissant runs in a subprocess inside an empty network namespace (``unshare -n``) where the
machine allows it, so a JSON-LD context fetched from the web would fail the test; in-process
loading runs with every non-loopback connection refused.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers_reports import make_world

from pipeline.build.builder import sha256_file
from pipeline.build.croissant import CLR, CROISSANT_1_1
from pipeline.reports.formats import render_report

MLCROISSANT = Path(sys.executable).with_name("mlcroissant")
RAI = ("rai:dataCollection", "rai:dataCollectionType", "rai:dataCollectionTimeframe",
       "rai:dataCollectionRawData", "rai:personalSensitiveInformation",
       "rai:dataPreprocessingProtocol", "rai:dataManipulationProtocol",
       "rai:dataReleaseMaintenancePlan", "rai:dataLimitations", "rai:dataUseCases")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("croissant"))


def _offline(argv: list[str]) -> list[str]:
    """argv inside an empty network namespace, when this machine lets us make one."""
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False) \
        if shutil.which("unshare") else None
    return ["unshare", "-n", *argv] if probe is not None and probe.returncode == 0 else argv


@pytest.fixture
def no_network(monkeypatch):
    """Refuse every connection that is not to loopback (or a Unix socket)."""
    real = socket.socket.connect

    def connect(self, address):  # type: ignore[no-untyped-def]
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            if not (host.startswith("127.") or host == "::1"):
                raise AssertionError(f"network connection attempted to {address}")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


def test_every_build_writes_croissant_beside_data(world):
    for version in (1, 2):
        folder = world.data / "manifests" / "set" / f"v{version}"
        assert (folder / "croissant.json").is_file()
        assert sorted(p.name for p in (folder / "data").iterdir()) == ["part-00000.parquet"]
        manifest = json.loads((folder / "manifest.json").read_text())
        # taken before the checksums, so the checksums cover it
        assert "croissant.json" in manifest["files"]


def test_the_document_says_what_the_manifest_says(world):
    folder = world.data / "manifests" / "set" / "v2"
    doc = json.loads((folder / "croissant.json").read_text())
    assert doc["@context"]["clr"] == CLR and isinstance(doc["@context"], dict)
    assert CROISSANT_1_1 in doc["conformsTo"]
    assert doc["license"] == ["https://spdx.org/licenses/CC-BY-4.0.html"]
    objects = [d for d in doc["distribution"] if d["@type"] == "cr:FileObject"]
    assert [o["contentUrl"] for o in objects] == ["data/part-00000.parquet"]
    assert objects[0]["sha256"] == sha256_file(folder / "data" / "part-00000.parquet")
    fileset = next(d for d in doc["distribution"] if d["@type"] == "cr:FileSet")
    assert fileset["includes"] == "data/part-*.parquet"
    fields = {f["name"]: f for f in doc["recordSet"][0]["field"]}
    schema = pq.read_schema(folder / "data" / "part-00000.parquet")
    assert list(fields) == schema.names  # every manifest field, in order
    assert fields["fetched_at"]["dataType"] == "sc:DateTime"
    assert fields["bytes"]["dataType"] == "cr:Int64"
    assert fields["width"]["dataType"] == "cr:Int32"
    assert fields["signals"]["isArray"] is True
    assert [s["name"] for s in fields["signals"]["subField"]] == [
        "check", "ran", "found", "decision", "detail"]
    assert fields["signals"]["subField"][1]["dataType"] == "sc:Boolean"
    derived = {d["identifier"]: d for d in doc["prov:wasDerivedFrom"]}
    assert set(derived) == {"aurora", "birch", "cedar"}
    assert derived["cedar"]["clr:rowsKept"] == 0
    runs = [a for a in doc["prov:wasGeneratedBy"] if a["@id"].startswith("run/")]
    assert [a["prov:startedAtTime"] for a in runs] == ["2026-01-02T03:04:05Z"]
    build = next(a for a in doc["prov:wasGeneratedBy"] if a["@id"].startswith("build/"))
    assert build["prov:endedAtTime"] == "2026-01-20T12:00:00Z"
    assert any(a["@type"] == "prov:SoftwareAgent" for a in doc["prov:wasAttributedTo"])
    for key in RAI:
        assert doc[key], key
    assert doc["rai:dataCollectionTimeframe"] == ["2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"]
    consent = {c["clr:source"]["@id"]: c for c in doc["clr:consent"]}
    assert consent["source/cedar"]["clr:status"] == "revoked"
    assert consent["source/aurora"]["clr:ageVerification"]["identifier"] == "AV-aurora"
    refused = {c["clr:reason"]: c["clr:count"] for c in doc["clr:optOuts"]["clr:refusedByReason"]}
    assert refused == {"robots_disallowed": 1, "tdm_reserved": 1, "x_robots_noai": 1}
    assert doc["clr:screening"]["clr:withheldCount"] == 2
    removed = {c["clr:reason"]: c["clr:count"]
               for c in doc["clr:counts"]["clr:removedSincePrevious"]}
    assert removed == {"not_in_inputs": 1, "revoked": 1, "takedown": 1}


def test_report_format_croissant_is_the_written_document(world):
    folder = world.data / "manifests" / "set" / "v2"
    built = json.loads((folder / "croissant.json").read_text())
    rendered = json.loads(render_report(world.data, "set@v2", "croissant"))
    # the helper pinned the build's wall-clock times in the file; the rest is identical
    for doc in (built, rendered):
        doc.pop("datePublished")
        for activity in doc["prov:wasGeneratedBy"]:
            activity.pop("prov:endedAtTime", None)
    assert rendered == built


@pytest.mark.parametrize("version", [1, 2])
def test_mlcroissant_validates_offline(world, version):
    path = world.data / "manifests" / "set" / f"v{version}" / "croissant.json"
    proc = subprocess.run(_offline([str(MLCROISSANT), "validate", "--jsonld", str(path)]),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "error" not in proc.stderr.lower().replace("0 error", ""), proc.stderr[-3000:]


def _records(jsonld: Path) -> list[dict]:
    import mlcroissant as mlc

    dataset = mlc.Dataset(jsonld=str(jsonld))
    return list(dataset.records(record_set="rows"))


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def test_mlcroissant_yields_every_row(world, no_network):
    folder = world.data / "manifests" / "set" / "v1"
    rows = pq.read_table(folder / "data").to_pylist()
    records = _records(folder / "croissant.json")
    assert len(records) == len(rows) == 5
    by_id = {_text(r["rows/row_id"]): r for r in records}
    assert set(by_id) == {r["row_id"] for r in rows}
    for row in rows:
        record = by_id[row["row_id"]]
        assert _text(record["rows/url"]) == row["url"]
        assert _text(record["rows/licence"]) == row["licence"]
        assert int(record["rows/bytes"]) == row["bytes"]
        assert record["rows/fetched_at"].to_pydatetime() == row["fetched_at"]
        signals = record["rows/signals"]
        assert [_text(s["rows/signals/check"]) for s in signals] == [
            s["check"] for s in row["signals"]]


def test_a_copied_version_folder_describes_itself(world, tmp_path, no_network):
    copy = tmp_path / "elsewhere" / "v1"
    shutil.copytree(world.data / "manifests" / "set" / "v1", copy)
    assert len(_records(copy / "croissant.json")) == 5
    proc = subprocess.run(
        _offline([sys.executable, "-c", (
            "import sys, mlcroissant as mlc; "
            "print(sum(1 for _ in mlc.Dataset(jsonld=sys.argv[1]).records('rows')))"),
            str(copy / "croissant.json")]),
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "5"


def test_an_empty_version_is_valid_croissant_with_no_records(tmp_path, no_network):
    from helpers_config import source_doc, write_config

    from pipeline.build.builder import build_manifest

    config = write_config(tmp_path / "configs", [source_doc("aurora")])
    result = build_manifest(config, tmp_path / "data", "empty")
    path = result.path / "croissant.json"
    proc = subprocess.run(_offline([str(MLCROISSANT), "validate", "--jsonld", str(path)]),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _records(path) == []
