"""The report formats of ``clearance report`` and the one function that renders any of them.

A new format is a module in this package with a ``render_<format>(...)`` function, added to
:data:`FORMATS` and to :func:`render_report` here. ``md``, ``json`` and ``html`` render one
model (:func:`pipeline.reports.provenance.build_report`); ``croissant`` is the document every
build writes as ``vN/croissant.json`` (:mod:`pipeline.build.croissant`); ``eu-summary`` and
``eu-summary-json`` are the EU AI Act public summary (:mod:`pipeline.reports.eusummary`).
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.build.croissant import croissant_document, render_croissant
from pipeline.build.versions import read_manifest, resolve_manifest
from pipeline.registry.config import Settings
from pipeline.reports.attribution import render_attribution
from pipeline.reports.eusummary import build_summary, render_summary_markdown
from pipeline.reports.html import render_html
from pipeline.reports.markdown import render_markdown
from pipeline.reports.provenance import build_report, changes_since

FORMATS = ("md", "json", "html", "croissant", "eu-summary", "eu-summary-json", "attribution")
PLANNED_FORMATS: tuple[str, ...] = ()


class ReportFormatError(ValueError):
    """A report format that does not exist, or not yet."""


def check_format(fmt: str) -> str:
    available = ", ".join(FORMATS)
    if fmt in FORMATS:
        return fmt
    if fmt in PLANNED_FORMATS:
        raise ReportFormatError(f"format {fmt} is not available yet; available: {available}")
    raise ReportFormatError(f"unknown format {fmt!r}; available: {available}")


def parse_since(value: str | None) -> int | None:
    """``vM`` (or ``M``) -> M."""
    if value is None:
        return None
    text = value[1:] if value[:1] in ("v", "V") else value
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"--since {value!r}: expected a version such as v1")
    return int(text)


def render_report(data_dir: Path, ref: str, fmt: str, since: int | None = None,
                  settings: Settings | None = None) -> str:
    """Render the report of manifest ``ref`` (``NAME`` or ``NAME@vN``) in ``fmt``.

    ``since``: count what changed since that version (default: the previous one), in every
    format. ``settings``: the current ``clearance.yaml``, read for what only it knows (the
    crawler's User-Agent, the hash lists' kinds) by the EU summary; without it those are
    marked as unknown."""
    check_format(fmt)
    data_dir = Path(data_dir)
    if fmt == "attribution":
        text = render_attribution(data_dir, ref)
        if since is None:
            return text
        version_dir = resolve_manifest(data_dir, ref)
        changes = changes_since(data_dir, version_dir, read_manifest(version_dir), since)
        assert changes is not None
        line = (f"Changes since v{changes['since']}: {changes['added']} added, "
                f"{changes['removed']} removed ("
                + (", ".join(f"{r}: {n}" for r, n in changes["removed_by_reason"].items())
                   or "none") + ")")
        head, _, rest = text.partition("\n\n")
        return f"{head}\n\n{line}\n\n{rest}"
    if fmt == "croissant":
        version_dir = resolve_manifest(data_dir, ref)
        manifest = read_manifest(version_dir)
        changes = None if since is None else changes_since(data_dir, version_dir, manifest,
                                                           since)
        return render_croissant(croissant_document(version_dir, manifest, data_dir, changes))
    if fmt in ("eu-summary", "eu-summary-json"):
        summary = build_summary(data_dir, ref, settings, since)
        if fmt == "eu-summary-json":
            return json.dumps(summary, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
        return render_summary_markdown(summary)
    report = build_report(data_dir, ref, since)
    if fmt == "json":
        return json.dumps(report, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    if fmt == "html":
        return render_html(report)
    return render_markdown(report)
