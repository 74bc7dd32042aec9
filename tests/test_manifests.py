"""pipeline.build.versions: names, NAME@vN references and version lookup."""

from __future__ import annotations

import pytest

from pipeline.build.versions import check_name, latest_version, read_manifest, resolve_manifest


def test_names():
    for good in ("demo", "Demo-1", "a.b_c", "0x"):
        assert check_name(good) == good
    for bad in ("", "-x", ".x", "a/b", "a b", "a@v1", "é"):
        with pytest.raises(ValueError, match="invalid manifest name"):
            check_name(bad)


def test_only_committed_version_dirs_count(tmp_path):
    root = tmp_path / "manifests" / "demo"
    for name in ("v1", "v3", ".tmp-v4-123", "v10.old", "vx"):
        (root / name).mkdir(parents=True)
    (root / "v7").write_text("a file, not a version")
    assert latest_version(tmp_path, "demo") == 3
    assert resolve_manifest(tmp_path, "demo") == root / "v3"
    assert resolve_manifest(tmp_path, "demo@v1") == root / "v1"
    with pytest.raises(FileNotFoundError, match="demo@v4 not found"):
        resolve_manifest(tmp_path, "demo@v4")
    assert latest_version(tmp_path, "other") is None


def test_read_manifest_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json is missing"):
        read_manifest(tmp_path)
