"""Impact: which committed manifest versions published rows a takedown (or a query) names.

Read from the versions themselves (``data/part-*.parquet`` and ``manifest.json``), with the
build's own matcher (:class:`pipeline.build.takedowns.TakedownMatcher`), so a version built
before a takedown still matches it and one built after does not. Only the columns the match
needs are read from each part file (Parquet column projection).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipeline.build.takedowns import TakedownMatcher
from pipeline.build.versions import DATA_DIR, MANIFESTS_DIR, read_manifest
from pipeline.registry.takedowns import Takedown


def impact(data_dir: Path, takedown: Takedown) -> list[dict[str, Any]]:
    """Every version holding matching published rows: name, version, rows, built_at, path;
    sorted by name and version."""
    matcher = TakedownMatcher([takedown])
    root = Path(data_dir) / MANIFESTS_DIR
    found = []
    versions = sorted(
        (v for v in root.glob("*/v*") if v.is_dir() and v.name[1:].isdigit()),
        key=lambda v: (v.parent.name, int(v.name[1:])),
    )
    for version_dir in versions:
        rows = 0
        for part in sorted((version_dir / DATA_DIR).glob("part-*.parquet")):
            rows += int(matcher.mask(pq.read_table(part, columns=matcher.columns)).sum())
        if not rows:
            continue
        manifest = read_manifest(version_dir)
        found.append({
            "name": version_dir.parent.name,
            "version": int(version_dir.name[1:]),
            "rows": rows,
            "built_at": manifest.get("created_at"),
            "path": str(version_dir),
        })
    return found
