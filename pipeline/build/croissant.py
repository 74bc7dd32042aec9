"""The Croissant 1.1 document of a manifest version: ``vN/croissant.json``, written by every build.

The version folder becomes a self-describing dataset: the file set points at ``data/`` by
relative path (mlcroissant resolves it against the JSON-LD's own folder), a record set names
every manifest column with its type, and each part file is a FileObject with its sha256.
Provenance is PROV-O (``prov:wasDerivedFrom`` the sources, ``prov:wasGeneratedBy`` the crawl
runs and the build, ``prov:wasAttributedTo``), the RAI properties are those a manifest can fill,
and consent, age verification, opt-outs and screening go under our own extension namespace
(``clr:``, see docs/croissant.md), as Croissant-RAI has no consent property.

Counts only, never a removed or withheld item: the document names sources, runs and published
part files, and carries the removals since the previous version per reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import __version__
from pipeline.build.versions import DATA_DIR, sha256_file
from pipeline.registry.spdx import LicenceError, parse_expression
from pipeline.runs import reasons
from pipeline.runs.schema import ITEMS_SCHEMA
from pipeline.runs.writer import RUN_JSON, RUNS_DIR

CROISSANT_JSON = "croissant.json"
CROISSANT_1_1 = "http://mlcommons.org/croissant/1.1"
RAI_1_0 = "http://mlcommons.org/croissant/RAI/1.0"
# Our extension vocabulary (docs/croissant.md); a URN: it names terms, it is not fetched.
CLR = "urn:clearance:vocab:1:"
FILE_SET = "manifest-parts"
RECORD_SET = "rows"
PARQUET = "application/x-parquet"

# The standard Croissant 1.1 context (as mlcroissant writes it) plus RAI, PROV and ours:
# inline, so that no JSON-LD processor has to fetch a context from the web.
CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "arrayShape": "cr:arrayShape",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "prov": "http://www.w3.org/ns/prov#",
    "clr": CLR,
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}

_DESCRIPTIONS = {
    "row_id": "sha256 hex of the content: the row's key",
    "url": "the image's final URL, after redirects",
    "page_url": "the page the image was found on",
    "source_id": "the opted-in source the row came from",
    "consent_id": "the consent record the row was crawled under",
    "consent_sha256": "sha256 of that consent record as it stood",
    "age_verification_id": "the source's age-verification record",
    "fetched_at": "when the image was fetched (UTC)",
    "sha256": "sha256 hex of the image bytes",
    "md5": "md5 hex of the image bytes",
    "pdq": "PDQ perceptual hash (hex)",
    "licence": "SPDX licence of the item",
    "licence_source": "where the licence was found",
    "signals": "every opt-out check run on the item: what it found and the decision",
    "blocklists": "the hash lists (id, version) the item was screened against",
    "run_id": "the crawl run that fetched it",
}


def _data_type(arrow: pa.DataType) -> str:
    if pa.types.is_boolean(arrow):
        return "sc:Boolean"
    if pa.types.is_int32(arrow):
        return "cr:Int32"
    if pa.types.is_integer(arrow):
        return "cr:Int64"
    if pa.types.is_floating(arrow):
        return "cr:Float64"
    if pa.types.is_timestamp(arrow):
        return "sc:DateTime"
    if pa.types.is_date(arrow):
        return "sc:Date"
    return "sc:Text"


def _field(field: pa.Field, parent: str, column: str, json_path: str | None) -> dict[str, Any]:
    """One Croissant field for an Arrow field; a list of structs becomes an array field whose
    sub-fields read each struct member (jsonPath over the column's elements)."""
    fid = f"{parent}/{field.name}"
    source: dict[str, Any] = {"fileSet": {"@id": FILE_SET}, "extract": {"column": column}}
    if json_path is not None:
        source["transform"] = {"jsonPath": json_path}
    out: dict[str, Any] = {"@type": "cr:Field", "@id": fid, "name": field.name}
    if field.name in _DESCRIPTIONS and json_path is None:
        out["description"] = _DESCRIPTIONS[field.name]
    arrow = field.type
    if pa.types.is_list(arrow) or pa.types.is_large_list(arrow):
        out["isArray"] = True
        out["arrayShape"] = "-1"
        arrow = arrow.value_type
    if pa.types.is_struct(arrow):
        out["dataType"] = "sc:Text" if json_path is None else _data_type(arrow)
        out["subField"] = [
            _field(arrow.field(i), fid, column, arrow.field(i).name)
            for i in range(arrow.num_fields)
        ]
        del out["dataType"]
        return out
    out["dataType"] = _data_type(arrow)
    out["source"] = source
    return out


def _parts(version_dir: Path) -> list[Path]:
    return sorted((version_dir / DATA_DIR).glob("part-*.parquet"))


def _schema(parts: list[Path]) -> pa.Schema:
    return pq.read_schema(parts[0]).remove_metadata() if parts else ITEMS_SCHEMA


def _iso(value: Any) -> str | None:
    return None if value is None else str(value.isoformat()).replace("+00:00", "Z")


def published_facts(version_dir: Path) -> dict[str, Any]:
    """What the published rows say without reading them whole: the ``fetched_at`` range (from
    the Parquet statistics) and the hash lists the rows were screened against."""
    lo: Any = None
    hi: Any = None
    lists: set[tuple[str, str]] = set()
    for part in _parts(version_dir):
        meta = pq.read_metadata(part)
        names = meta.schema.to_arrow_schema().names
        leaves = [meta.schema.column(i).path for i in range(meta.num_columns)]
        if "fetched_at" in leaves:  # a leaf column index, not a field index
            col = leaves.index("fetched_at")
            for g in range(meta.num_row_groups):
                stats = meta.row_group(g).column(col).statistics
                if stats is None or not stats.has_min_max:
                    continue
                lo = stats.min if lo is None else min(lo, stats.min)
                hi = stats.max if hi is None else max(hi, stats.max)
        if "blocklists" not in names:
            continue
        # batch by batch: the column of a million-row part is large; its distinct pairs few
        for batch in pq.ParquetFile(part).iter_batches(batch_size=65_536,
                                                       columns=["blocklists"]):
            flat = pc.list_flatten(batch.column(0))
            if len(flat):
                pairs = pa.table({"id": pc.struct_field(flat, "id"),
                                  "version": pc.struct_field(flat, "version")})
                for entry in pairs.group_by(["id", "version"]).aggregate([]).to_pylist():
                    lists.add((entry["id"], entry["version"]))
    return {
        "fetched_from": _iso(lo),
        "fetched_to": _iso(hi),
        "blocklists": [{"id": i, "version": v} for i, v in sorted(lists)],
    }


def run_records(data_dir: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The input runs' own records (run.json): times, counts; a run gone since is named only."""
    out = []
    for record in manifest.get("inputs", []):
        path = Path(data_dir) / RUNS_DIR / record["run_id"] / RUN_JSON
        meta: dict[str, Any] = {}
        if path.is_file():
            meta = json.loads(path.read_text(encoding="utf-8"))
        counts = meta.get("counts") or {}
        out.append({
            "run_id": record["run_id"],
            "started_at": meta.get("started_at"),
            "finished_at": meta.get("finished_at"),
            "items": record.get("items"),
            "withheld": int(counts.get("withheld", 0) or 0),
            "by_reason": counts.get("by_reason") or {},
            "signals_off": meta.get("signals_off") or [],
            "versions": meta.get("versions") or {},
        })
    return out


def spdx_urls(licences: list[str]) -> list[str]:
    """The SPDX list URLs of every licence id in these expressions (LicenseRef-* have none)."""
    ids: set[str] = set()
    for expression in licences:
        try:
            symbols = parse_expression(expression).symbols
        except LicenceError:
            continue
        for symbol in symbols:
            ids.add(str(getattr(getattr(symbol, "license_symbol", symbol), "key", symbol)))
    return [f"https://spdx.org/licenses/{i}.html" for i in sorted(ids)
            if not i.startswith("LicenseRef-")]


def reason_counts(mapping: dict[str, int]) -> list[dict[str, Any]]:
    """A count per reason as RDF can say it: a list of (reason, count) nodes."""
    return [{"@type": "clr:ReasonCount", "clr:reason": reason, "clr:count": int(n)}
            for reason, n in sorted(mapping.items())]


def _when(value: str | None) -> str | None:
    return None if not value else value.replace("+00:00", "Z")


def croissant_document(version_dir: Path, manifest: dict[str, Any], data_dir: Path,
                       since: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON-LD document (a dict). ``manifest`` is manifest.json's content (at build time:
    with ``version`` and ``created_at`` set); ``since``: changes since an earlier version (counts
    per reason), added under ``clr:changesSince``."""
    version_dir = Path(version_dir)
    name, version = manifest["name"], int(manifest["version"])
    counts, policy = manifest["counts"], manifest["policy"]
    parts = _parts(version_dir)
    schema = _schema(parts)
    facts = published_facts(version_dir)
    runs = run_records(data_dir, manifest)
    sources: dict[str, Any] = manifest.get("sources") or {}
    kept_by_source: dict[str, int] = counts.get("kept_by_source") or {}
    licences = sorted(counts.get("kept_by_licence") or {})
    opt_outs: dict[str, int] = {}
    for run in runs:
        for reason, n in run["by_reason"].items():
            if reason in reasons.OPT_OUTS:
                opt_outs[reason] = opt_outs.get(reason, 0) + int(n)
    withheld = sum(r["withheld"] for r in runs)
    signals_off = sorted({s for r in runs for s in r["signals_off"]})
    build_id = f"build/{name}/v{version}"
    distribution: list[dict[str, Any]] = [
        {
            "@type": "cr:FileObject",
            "@id": part.relative_to(version_dir).as_posix(),
            "name": part.name,
            "description": "A part file of the published rows.",
            "contentUrl": part.relative_to(version_dir).as_posix(),
            "contentSize": f"{part.stat().st_size} B",
            "encodingFormat": PARQUET,
            "sha256": sha256_file(part),
        }
        for part in parts
    ]
    distribution.append({
        "@type": "cr:FileSet",
        "@id": FILE_SET,
        "name": FILE_SET,
        "description": f"Every part file under {DATA_DIR}/ (the published rows, nothing else).",
        "encodingFormat": PARQUET,
        "includes": f"{DATA_DIR}/part-*.parquet",
    })
    fields = [_field(f, RECORD_SET, f.name, None) for f in schema]
    span = [t for t in (facts["fetched_from"], facts["fetched_to"]) if t]
    doc: dict[str, Any] = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": [CROISSANT_1_1, RAI_1_0],
        "name": name,
        "description": (
            f"Manifest {name} v{version} built by Clearance: {counts['kept']} image rows from "
            f"{len(kept_by_source)} opted-in source(s), each row with its consent, "
            "age-verification, licence, opt-out and screening evidence. The rows are links "
            "with content hashes; fetch the images and verify every byte against sha256."
        ),
        "version": f"{version}.0.0",
        "datePublished": _when(manifest.get("created_at")),
        "license": spdx_urls(licences),
        "citeAs": f"{name} v{version} (Clearance manifest)",
        "isLiveDataset": False,
        "keywords": ["provenance", "consent", "opt-in", "image-text", "manifest"],
        "distribution": distribution,
        "recordSet": [{
            "@type": "cr:RecordSet",
            "@id": RECORD_SET,
            "name": RECORD_SET,
            "description": "One row per published image, with its provenance.",
            "key": {"@id": f"{RECORD_SET}/row_id"},
            "field": fields,
        }],
        "prov:wasDerivedFrom": [
            {
                "@type": "prov:Entity",
                "@id": f"source/{source_id}",
                "name": (info or {}).get("name") or source_id,
                "identifier": source_id,
                "clr:rowsKept": int(kept_by_source.get(source_id, 0)),
            }
            for source_id, info in sorted(sources.items())
        ],
        "prov:wasGeneratedBy": [
            *[
                {
                    "@type": "prov:Activity",
                    "@id": f"run/{run['run_id']}",
                    "name": f"crawl run {run['run_id']}",
                    "prov:startedAtTime": _when(run["started_at"]),
                    "prov:endedAtTime": _when(run["finished_at"]),
                    "clr:items": run["items"],
                }
                for run in runs
            ],
            {
                "@type": "prov:Activity",
                "@id": build_id,
                "name": f"build of {name} v{version}",
                "prov:endedAtTime": _when(manifest.get("created_at")),
                "prov:used": [{"@id": f"run/{run['run_id']}"} for run in runs],
                "clr:configSha256": manifest.get("config_sha256"),
                "clr:filters": [f.get("name") for f in manifest.get("filters", [])],
            },
        ],
        "prov:wasAttributedTo": [
            {"@type": "prov:SoftwareAgent", "@id": "agent/clearance",
             "name": f"Clearance {__version__}"},
            *[
                {
                    "@type": "prov:Organization",
                    "@id": f"agent/{source_id}",
                    "name": ((info or {}).get("consent") or {}).get("granted_by") or source_id,
                    "clr:grantedConsentFor": {"@id": f"source/{source_id}"},
                }
                for source_id, info in sorted(sources.items())
                if (info or {}).get("consent")
            ],
        ],
        "rai:dataCollection": (
            "Crawled by Clearance only from sources that opted in with a written consent "
            "record covering this use and whose contributors are age-verified. Every request, "
            "redirect and policy file had to fall inside the consent's URL scope; robots.txt "
            "and every honoured opt-out signal (AI-agent blocks, X-Robots-Tag, meta robots, "
            "TDMRep, Content-Usage, ai.txt, IPTC Data Mining, C2PA training-mining) were "
            "checked, and an item any of them refused was not kept."
        ),
        "rai:dataCollectionType": ["Web Scraping"],
        "rai:dataCollectionTimeframe": span,
        "rai:dataCollectionRawData": (
            "Images published by the opted-in sources' websites, with their page context "
            "(captions, licence markup, embedded XMP/IPTC/C2PA metadata). The manifest "
            "carries links and content hashes, not the image bytes."
        ),
        "rai:personalSensitiveInformation": (
            "Rows may name the creator of a work (credit). Sources certify that the "
            "people depicted are adults (age-verification records per source); metadata "
            "disclosing a model under 18 excludes the item. Consent and age-verification "
            "records are referenced by id and hash, their evidence documents are not "
            "published. Blocklist (hash-list) hits are never recorded beyond a count."
        ),
        "rai:dataPreprocessingProtocol": [
            "Each candidate row passed, in order: " + ", ".join(
                str(f.get("name")) for f in manifest.get("filters", [])) + ".",
            "Current consent and age verification re-applied at build time; takedowns and "
            "contributor opt-outs honoured; licence allow list "
            + ", ".join(policy.get("licences_effective") or policy.get("licences_allow", []))
            + "; duplicates by sha256 (the row with the smallest source_id, url is kept).",
        ],
        "rai:dataManipulationProtocol": (
            "No content was altered. Rows are the crawl's records as fetched; only the "
            "selection above was applied."
        ),
        "rai:dataReleaseMaintenancePlan": (
            "Each build publishes a new immutable version. A revoked or expired consent, a "
            "takedown or a contributor opt-out removes the rows from the next version; the "
            "removals are published as counts per reason only, never as a list."
        ),
        "rai:dataLimitations": (
            "Covers only the sources that opted in, so it is small and not representative of "
            "the web. Links may stop resolving or serve other bytes later: verify sha256."
        ),
        "rai:dataUseCases": [policy["intended_use"]],
        "clr:policy": {
            "@type": "clr:Policy",
            "clr:intendedUse": policy["intended_use"],
            "clr:licencesAllowed": list(policy.get("licences_effective")
                                        or policy.get("licences_allow", [])),
            "clr:policyDate": policy.get("today"),
        },
        "clr:consent": [_consent(source_id, info) for source_id, info in sorted(sources.items())],
        "clr:optOuts": {
            "@type": "clr:OptOutFacts",
            "clr:signalsOff": signals_off,
            "clr:refusedByReason": reason_counts(opt_outs),
        },
        "clr:screening": {
            "@type": "clr:ScreeningFacts",
            "clr:hashLists": [{"identifier": b["id"], "clr:listSha256": b["version"]}
                              for b in facts["blocklists"]],
            "clr:withheldCount": withheld,
        },
        "clr:counts": {
            "@type": "clr:Counts",
            "clr:candidates": counts["candidates"],
            "clr:kept": counts["kept"],
            "clr:excludedByReason": reason_counts(counts.get("excluded_by_reason") or {}),
            "clr:removedSincePrevious": reason_counts(
                manifest.get("removed_since_previous") or {}),
            "clr:previousVersion": manifest.get("previous_version"),
        },
    }
    if since is not None:
        doc["clr:changesSince"] = {
            "@type": "clr:Changes",
            "clr:sinceVersion": since["since"],
            "clr:added": since["added"],
            "clr:removedByReason": reason_counts(since["removed_by_reason"]),
        }
    return doc


def _consent(source_id: str, info: dict[str, Any] | None) -> dict[str, Any]:
    info = info or {}
    consent, av = info.get("consent"), info.get("age_verification")
    out: dict[str, Any] = {"@type": "clr:ConsentRecord", "@id": f"consent/{source_id}",
                           "clr:source": {"@id": f"source/{source_id}"}}
    if consent:
        out.update({
            "identifier": consent["id"],
            "clr:status": consent["status"],
            "clr:grantedBy": consent["granted_by"],
            "clr:grantedAt": consent["granted_at"],
            "clr:expiresAt": consent["expires_at"],
            "clr:uses": consent["uses"],
            "clr:evidenceSha256": (consent.get("evidence") or {}).get("sha256"),
            "clr:recordSha256": info.get("consent_sha256"),
        })
    if av:
        out["clr:ageVerification"] = {
            "@type": "clr:AgeVerificationRecord",
            "identifier": av["id"],
            "clr:method": av["method"],
            "clr:verifiedBy": av["verified_by"],
            "clr:verifiedAt": av["verified_at"],
            "clr:expiresAt": av["expires_at"],
        }
    verdict = info.get("eligibility") or {}
    out["clr:eligibleAtBuild"] = bool(verdict.get("eligible"))
    return out


def render_croissant(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def write_croissant(version_dir: Path, manifest: dict[str, Any], data_dir: Path) -> Path:
    """Write ``croissant.json`` into the version folder (beside ``data/``, never in it)."""
    path = Path(version_dir) / CROISSANT_JSON
    path.write_text(render_croissant(croissant_document(version_dir, manifest, data_dir)),
                    encoding="utf-8")
    return path
