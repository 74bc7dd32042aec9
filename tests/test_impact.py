"""`clearance impact`: which committed versions held what a takedown or a query names."""

from __future__ import annotations

import json

from tests.test_takedowns import run, world  # noqa: F401 - the fixture

__all__ = ["world"]


def versions(result) -> list[tuple[str, int, int]]:
    return [(v["name"], v["version"], v["rows"]) for v in json.loads(result.output)]


def test_versions_before_and_after_a_takedown(world):  # noqa: F811
    _, _, items = world
    run(world, "build", "set")
    ident = run(world, "takedown", "add", "--source", "boreal", "--reason", "x").output.strip()
    run(world, "build", "set")
    run(world, "takedown", "remove", ident, "--reason", "withdrawn")
    run(world, "build", "set")
    found = run(world, "impact", "--takedown", ident, "--json")
    assert versions(found) == [("set", 1, 2), ("set", 3, 2)]
    doc = json.loads(found.output)[0]
    assert doc["built_at"] and doc["path"].endswith("v1")
    assert versions(run(world, "impact", "--url", items[0]["url"].upper().replace(
        "/GALLERY/1.JPG", "/gallery/1.jpg"), "--json")) == [("set", 1, 1), ("set", 2, 1),
                                                            ("set", 3, 1)]
    assert versions(run(world, "impact", "--sha256", items[6]["sha256"], "--json")) == [
        ("set", 1, 1), ("set", 3, 1)]
    assert versions(run(world, "impact", "--url-prefix", "https://boreal.example/", "--json")
                    ) == [("set", 1, 2), ("set", 3, 2)]
    people = run(world, "impact", "--takedown", ident).output
    assert "/v1" in people and "/v3" in people and "/v2" not in people


def test_nothing_matches_and_bad_input(world):  # noqa: F811
    run(world, "build", "set")
    assert json.loads(run(world, "impact", "--creator", "nobody", "--json").output) == []
    assert "--sha256" in run(world, "impact", "--sha256", "xyz", ok=2).output
    assert "--takedown" in run(world, "impact", "--takedown", "T-000042", ok=2).output
    assert "--url, --source" in run(world, "impact", "--url", "https://a.example/",
                                    "--source", "aurora", ok=2).output
    assert "exactly one" in run(world, "impact", ok=2).output
