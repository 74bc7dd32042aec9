"""The impact index answers exactly what a scan with the build's matcher answers."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.build.impact import impact
from pipeline.build.impactindex import INDEX_JSON, ensure_index, index_dir
from pipeline.build.takedowns import query

HOSTS = ["aurora.example", "AURORA.example", "aurora.example.", "cdn.aurora.example",
         "bücher.example", "xn--bcher-kva.example", "user:pw@aurora.example", "b.example"]
PATHS = ["/gallery/a.jpg", "/gallery/./b.jpg", "/gallery/%7Ec.jpg", "/private/d.jpg",
         "/gallery/A.jpg", "/gallery/a.jpg?x=1"]
CREATORS = ["Ana Ruiz", "  ana   RUIZ ", "Bo", None, "Zoë"]


def random_rows(rng: random.Random, n: int) -> dict[str, list]:
    def url() -> str:
        return f"{rng.choice(['https', 'http', 'HTTPS'])}://{rng.choice(HOSTS)}{rng.choice(PATHS)}"
    sha = [f"{rng.getrandbits(256):064x}" for _ in range(n)]
    return {
        "url": [url() for _ in range(n)],
        "page_url": [rng.choice([None, url()]) for _ in range(n)],
        "sha256": sha,
        "creator": [rng.choice(CREATORS) for _ in range(n)],
        "pdq": [rng.choice([None, "f" * 64, "0" * 7 + "e" + "f" * 56,
                            f"{rng.getrandbits(256):064x}"]) for _ in range(n)],
        "source_id": [rng.choice(["aurora", "boreal"]) for _ in range(n)],
    }


def write_version(data: Path, name: str, n: int, columns: dict[str, list], parts: int = 2) -> Path:
    folder = data / "manifests" / name / f"v{n}"
    (folder / "data").mkdir(parents=True)
    table = pa.table({k: pa.array(v, pa.string()) for k, v in columns.items()})
    size = -(-table.num_rows // parts)
    for i in range(parts):
        pq.write_table(table.slice(i * size, size), folder / "data" / f"part-{i:05d}.parquet")
    counts = {"kept_by_source": {s: columns["source_id"].count(s)
                                 for s in sorted(set(columns["source_id"]))}}
    (folder / "manifest.json").write_text(json.dumps(
        {"counts": counts, "created_at": datetime.now(UTC).isoformat()}))
    return folder


QUERIES = [
    ("url", "https://aurora.example/gallery/a.jpg"),
    ("url", "https://bücher.example/gallery/~c.jpg"),
    ("url-prefix", "https://aurora.example/gallery/"),
    ("url-prefix", "https://cdn.aurora.example"),
    ("url", "https://nowhere.example/gallery/a.jpg"),
    ("creator", "ana ruiz"),
    ("creator", "ZOË"),
    ("pdq", "f" * 64),
    ("source", "boreal"),
]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_index_equals_scan_for_every_kind(tmp_path, seed):
    rng = random.Random(seed)
    data = tmp_path / "data"
    columns = random_rows(rng, 400)
    write_version(data, "m", 1, columns)
    write_version(data, "m", 2, random_rows(rng, 50), parts=1)
    queries = [*QUERIES, ("sha256", columns["sha256"][7]), ("sha256", columns["sha256"][7].upper())]
    for kind, value in queries:
        q = query(kind, value, 31 if kind == "pdq" else None)
        scanned = [(v["version"], v["rows"]) for v in impact(data, q, scan=True)]
        indexed = [(v["version"], v["rows"]) for v in impact(data, q)]
        assert indexed == scanned, (kind, value)
    assert any(v for v in (impact(data, query(k, v_)) for k, v_ in QUERIES[:3]))  # not vacuous


def test_index_lives_beside_the_version_and_follows_its_manifest(tmp_path):
    data = tmp_path / "data"
    version = write_version(data, "m", 1, random_rows(random.Random(0), 20), parts=1)
    folder = ensure_index(version)
    assert folder == index_dir(version) and folder.parent.name == ".impact"
    assert sorted(p.name for p in version.iterdir()) == ["data", "manifest.json"]
    made = (folder / INDEX_JSON).stat().st_mtime_ns
    assert ensure_index(version) == folder and (folder / INDEX_JSON).stat().st_mtime_ns == made
    (version / "manifest.json").write_text(json.dumps({"counts": {}, "replaced": True}))
    ensure_index(version)
    doc = json.loads((folder / INDEX_JSON).read_text())
    assert doc["manifest_sha256"] != "" and (folder / INDEX_JSON).stat().st_mtime_ns != made

