"""Impact: which committed manifest versions published rows a takedown (or a query) names.

Read from the versions themselves, so a version built before a takedown still matches it and
one built after does not: from each version's lookup index (:mod:`pipeline.build.impactindex`,
made from its ``data/`` on first use and by every build), or, with ``scan=True``, by running the
build's own matcher (:class:`pipeline.build.takedowns.TakedownMatcher`) over every part file
(only the columns the match needs; the reference the index is tested against).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipeline.build.impactindex import count_matches
from pipeline.build.takedowns import TakedownMatcher
from pipeline.build.versions import DATA_DIR, MANIFESTS_DIR, read_manifest
from pipeline.registry.takedowns import Takedown


def impact(data_dir: Path, takedown: Takedown, *, scan: bool = False) -> list[dict[str, Any]]:
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
        manifest = read_manifest(version_dir)
        if scan:
            rows = 0
            for part in sorted((version_dir / DATA_DIR).glob("part-*.parquet")):
                rows += int(matcher.mask(pq.read_table(part, columns=matcher.columns)).sum())
        else:
            rows = count_matches(version_dir, manifest, takedown)
        if not rows:
            continue
        found.append({
            "name": version_dir.parent.name,
            "version": int(version_dir.name[1:]),
            "rows": rows,
            "built_at": manifest.get("created_at"),
            "path": str(version_dir),
        })
    return found
