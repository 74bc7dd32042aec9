"""Row models and their Arrow schemas: the columns of the public contract.

The Parquet schema is explicit and derived once from the pydantic row models (never inferred from
a batch). pydantic validates at the edges; inner loops move plain dicts / Arrow batches.
Columns stay in contract order; new columns are appended, never renamed.
"""

from __future__ import annotations

import types
import typing
from datetime import datetime
from typing import Annotated, Any, get_args, get_origin

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

# Columns whose stage is not built yet stay null (see README "Outputs").


class SignalCheck(BaseModel):
    """One opt-out check on one item: that it ran, what it found (raw) and the decision."""

    model_config = ConfigDict(extra="forbid")

    check: str  # e.g. "robots", "x_robots_tag", "c2pa"
    ran: bool  # False when switched off in clearance.yaml `signals:`
    found: str | None = None  # raw evidence: header string, rule line, JSON entry, assertion
    decision: str  # "allow" | "deny" | "none" (nothing declared) | "off"
    detail: str | None = None  # where it was found (URL of the policy file, etc.)


class BlocklistRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    version: str  # sha256 of the list file


class LicenceEvidence(BaseModel):
    """One piece of licence/rights evidence found for an item (README "Licence evidence")."""

    model_config = ConfigDict(extra="forbid")

    source: str  # licence_source vocabulary: xmp iptc c2pa jsonld microdata rdfa rel-license ...
    licence: str | None  # SPDX id/expression or LicenseRef-...; null: rights text, no licence
    url: str | None  # the licence URL as found
    raw: str | None  # the raw value
    scope: str  # embedded | image | page | default


class ItemRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    row_id: str
    url: str
    page_url: str | None
    source_id: str
    consent_id: str
    consent_sha256: str
    age_verification_id: str
    fetched_at: datetime
    http_status: Annotated[int, pa.int32()]
    content_type: str | None
    bytes: int
    sha256: str
    md5: str
    pdq: str | None
    width: Annotated[int, pa.int32()]
    height: Annotated[int, pa.int32()]
    licence: str
    licence_url: str | None
    licence_source: str
    creator: str | None
    attribution: str | None
    caption: str | None
    signals: list[SignalCheck]
    blocklists: list[BlocklistRef] | None
    run_id: str
    # Appended with blocklist screening: sha1 for sha1 lists; PDQ quality (0..100) beside `pdq`.
    sha1: str | None = None
    pdq_quality: Annotated[int, pa.int32()] | None = None
    # Appended with the licence/rights work (crawler.rights): every piece of evidence found, the
    # disagreement kept when allowed licences differ, raw PLUS disclosures, the credit line.
    licence_evidence: list[LicenceEvidence] | None = None  # null only in older runs
    licence_disagreement: str | None = None
    minor_age_disclosure: str | None = None  # raw plus:MinorModelAgeDisclosure
    model_release_status: str | None = None  # raw plus:ModelReleaseStatus
    credit: str | None = None  # credit line asked for (photoshop:Credit, IIM Credit, creditText)


class RejectionRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    page_url: str | None
    source_id: str | None
    stage: str
    reason: str
    detail: str | None
    at: datetime


class ExclusionRow(RejectionRow):
    """Build-stage exclusion (audit/exclusions.parquet): rejection columns plus `row_id`.

    ``url`` may be null here: a takedown's exclusion carries the takedown id and ``row_id``,
    never the URL, so the audit file is no map of what was taken down."""

    url: str | None  # type: ignore[assignment]
    row_id: str | None
    run_id: str | None


def _arrow_type(annotation: Any) -> tuple[pa.DataType, bool]:
    """Map a field annotation to (arrow type, nullable)."""
    nullable = False
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        nullable = len(args) != len(get_args(annotation))
        assert len(args) == 1, f"unsupported union {annotation}"
        inner, _ = _arrow_type(args[0])
        return inner, nullable
    if origin is Annotated:
        base, *meta = get_args(annotation)
        for m in meta:
            if isinstance(m, pa.DataType):
                return m, False
        return _arrow_type(base)
    if origin is list:
        (item,) = get_args(annotation)
        item_type, _ = _arrow_type(item)
        return pa.list_(item_type), False
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return pa.struct(arrow_fields(annotation)), False
    simple = {
        str: pa.string(),
        int: pa.int64(),
        float: pa.float64(),
        bool: pa.bool_(),
        datetime: pa.timestamp("us", tz="UTC"),
    }
    if annotation in simple:
        return simple[annotation], False
    raise TypeError(f"no Arrow type for {annotation!r}")


def arrow_fields(model: type[BaseModel]) -> list[pa.Field]:
    hints = typing.get_type_hints(model, include_extras=True)
    fields = []
    for name in model.model_fields:
        arrow_type, nullable = _arrow_type(hints[name])
        fields.append(pa.field(name, arrow_type, nullable=nullable))
    return fields


def arrow_schema(model: type[BaseModel]) -> pa.Schema:
    return pa.schema(arrow_fields(model))


ITEMS_SCHEMA = arrow_schema(ItemRow)
REJECTIONS_SCHEMA = arrow_schema(RejectionRow)
EXCLUSIONS_SCHEMA = arrow_schema(ExclusionRow)

ITEM_COLUMNS: tuple[str, ...] = tuple(ITEMS_SCHEMA.names)
REJECTION_COLUMNS: tuple[str, ...] = tuple(REJECTIONS_SCHEMA.names)

# Columns that are null because their stage is not built yet (documented in the README).
NOT_YET_FILLED: dict[str, str] = {
}
