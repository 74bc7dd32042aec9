"""Clearance pipeline: configs, row models, run writers, manifest build and reports.

`pipeline` never imports `crawler` (except :mod:`pipeline.cli`, which wires both), so that
building, curating and reporting work from runs alone on a machine that never crawled.
"""

from __future__ import annotations

__version__ = "0.1.0"
SCHEMA_VERSION = "1.0"
