"""Clearance pipeline: everything but the crawl, one package per stage of the flow.

    registry -> (crawler) -> runs -> safety -> build -> lifecycle -> reports, and cli on top

Each package's docstring ends with the packages it may import (tests/test_architecture.py
enforces it). `pipeline` never imports `crawler` (except :mod:`pipeline.cli`, which wires
both), so that building, curating and reporting work from runs alone on a machine that never
crawled. This module itself holds only version constants, which any package may import.
"""

from __future__ import annotations

__version__ = "0.1.0"
SCHEMA_VERSION = "1.0"
