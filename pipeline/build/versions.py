"""Where manifest versions live: ``data/manifests/<name>/v<N>/``, names and ``NAME@vN`` refs.

Only directories named ``v<N>`` are versions; a build assembles a version in a hidden
``.tmp-*`` directory and renames it, so nothing here ever sees a partial version.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

MANIFESTS_DIR = "manifests"
DATA_DIR = "data"
AUDIT_DIR = "audit"
EXCLUSIONS_FILE = "exclusions.parquet"
MANIFEST_JSON = "manifest.json"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_REF_RE = re.compile(r"^(?P<name>[^@]+)(?:@v(?P<version>[0-9]+))?$")
_VERSION_RE = re.compile(r"^v([0-9]+)$")


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise ValueError(
            f"invalid manifest name {name!r}: use letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def manifest_root(data_dir: Path, name: str) -> Path:
    return Path(data_dir) / MANIFESTS_DIR / check_name(name)


def latest_version(data_dir: Path, name: str) -> int | None:
    """Highest committed version of a manifest, or None when it has none."""
    root = manifest_root(data_dir, name)
    if not root.is_dir():
        return None
    versions = [
        int(m.group(1)) for e in root.iterdir() if e.is_dir() and (m := _VERSION_RE.match(e.name))
    ]
    return max(versions, default=None)


def resolve_manifest(data_dir: Path, ref: str) -> Path:
    """``NAME`` (latest version) or ``NAME@vN`` -> the version directory."""
    match = _REF_RE.match(ref)
    if not match:
        raise ValueError(f"invalid manifest reference {ref!r}: expected NAME or NAME@vN")
    name = check_name(match["name"])
    latest = latest_version(data_dir, name)
    if latest is None:
        raise FileNotFoundError(
            f"no manifest named {name!r} under {Path(data_dir) / MANIFESTS_DIR}"
        )
    version = latest if match["version"] is None else int(match["version"])
    path = manifest_root(data_dir, name) / f"v{version}"
    if not path.is_dir():
        raise FileNotFoundError(f"manifest {name}@v{version} not found (latest is v{latest})")
    return path


def read_manifest(version_dir: Path) -> dict[str, Any]:
    path = Path(version_dir) / MANIFEST_JSON
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: manifest.json is missing") from None
    return doc


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read a MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
