"""The report formats of ``clearance report`` and the one function that renders any of them.

A new format is a module in this package with a ``render_<format>(...)`` function, added to
:data:`FORMATS` and to :func:`render_report` here.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.reports.attribution import render_attribution
from pipeline.reports.markdown import render_markdown
from pipeline.reports.provenance import build_report

FORMATS = ("md", "json", "attribution")
PLANNED_FORMATS = ("html", "croissant", "eu-summary")



class ReportFormatError(ValueError):
    """A report format that does not exist, or not yet."""


def check_format(fmt: str) -> str:
    available = ", ".join(FORMATS)
    if fmt in FORMATS:
        return fmt
    if fmt in PLANNED_FORMATS:
        raise ReportFormatError(f"format {fmt} is not available yet; available: {available}")
    raise ReportFormatError(f"unknown format {fmt!r}; available: {available}")


def render_report(data_dir: Path, ref: str, fmt: str) -> str:
    """Render the report of manifest ``ref`` (``NAME`` or ``NAME@vN``) in ``fmt``."""
    check_format(fmt)
    if fmt == "attribution":
        return render_attribution(Path(data_dir), ref)
    report = build_report(Path(data_dir), ref)
    if fmt == "json":
        return json.dumps(report, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    return render_markdown(report)
