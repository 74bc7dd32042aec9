"""The ATTRIBUTION file a dataset ships with: one credit line per published row.

Read from a manifest version's ``data/`` folder only (the published rows), grouped by source and
then by creator, sorted by (``source_id``, ``creator``, ``url``), so identical manifests give
byte-identical files. Each line is a Creative Commons title-author-source-licence (TASL) credit:
the row's ``attribution`` when the crawl composed one, else composed here from ``caption``,
``creator``, ``url`` and ``licence``/``licence_url``; a part no row gives is left out, never
invented.
"""

from __future__ import annotations

import re
from itertools import groupby
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

from pipeline.build.versions import DATA_DIR, MANIFESTS_DIR, read_manifest, resolve_manifest
from pipeline.registry.spdx import LicenceError, normalise_expression

COLUMNS = ("source_id", "creator", "url", "attribution", "caption", "licence", "licence_url")
NO_CREATOR = "(creator not stated)"

_CC_ID = re.compile(
    r"^(?:LicenseRef-)?CC-(?P<code>(?:BY|SA|NC|ND)(?:-(?:NC|ND|SA))*)-(?P<version>\d\.\d)"
    r"(?:-(?P<port>[A-Z]+))?$"
)
_PUBLIC_DOMAIN = {
    "CC0-1.0": ("CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/"),
    "CC-PDM-1.0": ("Public Domain Mark 1.0", "https://creativecommons.org/publicdomain/mark/1.0/"),
}
# SPDX writes CC 1.0's by-nd-nc as BY-NC-ND; the deed URL keeps the 1.0 spelling.
_CC_URL_CODE = {("BY-NC-ND", "1.0"): "by-nd-nc", ("NC-ND", "1.0"): "nd-nc"}


def licence_label(spdx: str) -> tuple[str, str | None]:
    """Human name and canonical deed URL of a licence id: ``CC-BY-2.0-DE`` ->
    (``CC BY 2.0 DE``, its deed). Other SPDX ids link to their spdx.org page; expressions and
    other ``LicenseRef-`` ids are shown as they are, without a URL."""
    if spdx in _PUBLIC_DOMAIN:
        return _PUBLIC_DOMAIN[spdx]
    match = _CC_ID.match(spdx)
    if match:
        code, version, port = match["code"], match["version"], match["port"]
        label = f"CC {code} {version}" + (f" {port}" if port else "")
        url_code = _CC_URL_CODE.get((code, version), code.lower())
        url = f"https://creativecommons.org/licenses/{url_code}/{version}/"
        return label, url + (f"{port.lower()}/" if port else "")
    if re.fullmatch(r"[A-Za-z0-9.+-]+", spdx) and not spdx.startswith("LicenseRef-"):
        try:
            if normalise_expression(spdx) == spdx:
                return spdx, f"https://spdx.org/licenses/{spdx}.html"
        except LicenceError:
            pass
    return spdx, None


def credit_line(*, title: str | None, author: str | None, licence: str | None,
                licence_url: str | None, source_url: str | None) -> str:
    """``"Title" by Author is licensed under CC BY 4.0 (deed URL). Source: URL``."""
    subject = f'"{title}"' if title else "Image"
    if author:
        subject += f" by {author}"
    if not licence:
        line = f"{subject}; licence not stated."
    else:
        label, canonical = licence_label(licence)
        url = licence_url or canonical
        verb = "is marked with" if licence in _PUBLIC_DOMAIN else "is licensed under"
        line = f"{subject} {verb} {label}" + (f" ({url})" if url else "") + "."
    if source_url:
        line += f" Source: {source_url}"
    return line


def _one_line(value: Any) -> str | None:
    """Metadata may hold newlines or control characters: one credit is one line."""
    if value is None:
        return None
    text = re.sub(r"[\s\x00-\x1f\x7f]+", " ", str(value)).strip()
    return text or None


def _credit(row: dict[str, Any]) -> str:
    url = _one_line(row.get("url"))
    given = _one_line(row.get("attribution"))
    if given:
        # The crawl's line names where the work was found (its page); add the image only when
        # the line names no source at all.
        return given if not url or url in given or " Source: " in given else (
            f"{given} Source: {url}")
    return credit_line(
        title=_one_line(row.get("caption")), author=_one_line(row.get("creator")),
        licence=_one_line(row.get("licence")), licence_url=_one_line(row.get("licence_url")),
        source_url=url,
    )


def read_published(version_dir: Path) -> list[dict[str, Any]]:
    """The published rows' credit columns (a column an older schema lacks reads as null)."""
    dataset = ds.dataset(Path(version_dir) / DATA_DIR, format="parquet")
    present = [c for c in COLUMNS if c in dataset.schema.names]
    rows = dataset.to_table(columns=present).to_pylist()
    return [{c: row.get(c) for c in COLUMNS} for row in rows]


def _order(row: dict[str, Any]) -> tuple[str, bool, str, str]:
    creator = _one_line(row["creator"])
    return row["source_id"], creator is None, creator or "", row["url"]


def render_attribution(data_dir: Path, ref: str) -> str:
    """The ATTRIBUTION text of manifest ``ref`` (``NAME`` or ``NAME@vN``)."""
    version_dir = resolve_manifest(Path(data_dir), ref)
    manifest = read_manifest(version_dir)
    rows = sorted(read_published(version_dir), key=_order)
    sources: dict[str, Any] = manifest.get("sources") or {}
    name, version = manifest["name"], manifest["version"]
    by_source: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_source.setdefault(row["source_id"], []).append(row)
    lines = [
        "ATTRIBUTION",
        "",
        f"Dataset: {name} v{version} ({MANIFESTS_DIR}/{name}/v{version})",
        f"Items: {len(rows)} from {len(by_source)} source(s)",
        "",
        "Every image in this dataset is credited below in the form Creative Commons recommends",
        "(title, author, source, licence), grouped by source and then by creator.",
    ]
    for source_id, items in by_source.items():
        source_name = _one_line((sources.get(source_id) or {}).get("name"))
        heading = f"{source_name} ({source_id})" if source_name else source_id
        lines += ["", "=" * 72, f"Source: {heading}: {len(items)} item(s)", "=" * 72]
        for creator, group in groupby(items, key=lambda r: _one_line(r["creator"])):
            lines += ["", f"Creator: {creator or NO_CREATOR}"]
            lines += [f"- {_credit(row)}" for row in group]
    return "\n".join(lines) + "\n"
