"""The EU AI Act public summary of training content, the parts a dataset builder can fill.

Follows the European Commission's "Template for the Public Summary of Training Content for
general-purpose AI models" (July 2025, Article 53(1)(d) AI Act): section 1 (general
information: modalities and their size ranges, latest acquisition date), section 2.3 (data
crawled and scraped from online sources: crawler, purpose, behaviour, collection period, the
top domain names by content size), section 3.1 (opt-outs honoured, by protocol) and 3.2
(measures against illegal content: the hash lists used, by kind and version, and a count of
what was withheld). What only the model provider knows (who they are, the model, other data
sources) is a marked placeholder. Counts only: no withheld or removed item is named.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from pipeline.build.croissant import published_facts
from pipeline.build.versions import DATA_DIR, resolve_manifest
from pipeline.registry.config import Settings
from pipeline.reports.provenance import build_report
from pipeline.runs import reasons
from pipeline.runs.writer import RUN_JSON, RUNS_DIR

TEMPLATE = ("Template for the Public Summary of Training Content for general-purpose AI models "
            "(European Commission, July 2025)")
PLACEHOLDER = "[TO BE FILLED BY THE PROVIDER]"
UNKNOWN = "[not recorded: run the report with the configs it was built with]"
TOP_SHARE = 0.10  # the template asks for the top 10% of domain names by content size

# (protocol, clearance.yaml `signals` switch or None when always honoured, reason code)
PROTOCOLS: tuple[tuple[str, str | None, str], ...] = (
    ("robots.txt (RFC 9309), rules for our own product token", None, reasons.ROBOTS_DISALLOWED),
    ("robots.txt rules blocking AI-training agents (GPTBot, CCBot, Google-Extended, ...)",
     "ai_agents", reasons.ROBOTS_AI_OPTOUT),
    ("IETF aipref Content-Usage (HTTP header and robots.txt rule)", "content_usage",
     reasons.CONTENT_USAGE_DISALLOWED),
    ("TDMRep (W3C TDM Reservation Protocol: tdmrep.json, headers, HTML meta)", "tdmrep",
     reasons.TDM_RESERVED),
    ("X-Robots-Tag noai / noimageai", "x_robots_tag", reasons.X_ROBOTS_NOAI),
    ("HTML meta robots noai / noimageai", "meta_robots", reasons.META_NOAI),
    ("ai.txt (Spawning)", "ai_txt", reasons.AI_TXT_DISALLOWED),
    ("IPTC / PLUS Data Mining in embedded XMP", "xmp", reasons.IPTC_DATA_MINING_PROHIBITED),
    ("C2PA / CAWG training-and-data-mining assertions", "c2pa",
     reasons.C2PA_TRAINING_NOT_ALLOWED),
)

IMAGE_RANGES = ((1_000_000, "Less than 1 million images"),
                (1_000_000_000, "1 million to 1 billion images"),
                (math.inf, "More than 1 billion images"))


def _image_range(n: int) -> str:
    return next(label for limit, label in IMAGE_RANGES if n < limit)


_HOST = r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?(?P<host>\[[^\]]*\]|[^:/?#]*)"


def _published(version_dir: Path) -> dict[str, Any]:
    """Per host: published bytes and rows; images; caption characters (Arrow batches, so a
    manifest of millions of rows is never held in Python objects)."""
    dataset = ds.dataset(version_dir / DATA_DIR, format="parquet")
    names = set(dataset.schema.names)
    columns = [c for c in ("url", "bytes", "content_type", "caption") if c in names]
    hosts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    images = captions = caption_chars = 0
    for batch in dataset.to_batches(columns=columns):
        if not batch.num_rows:
            continue
        host = pc.utf8_lower(pc.struct_field(pc.extract_regex(batch["url"], _HOST), "host"))
        table = pa.table({"host": pc.fill_null(host, "(none)"),
                          "bytes": pc.fill_null(batch["bytes"], 0)})
        for row in table.group_by("host").aggregate([("bytes", "sum"),
                                                     ("bytes", "count")]).to_pylist():
            hosts[row["host"] or "(none)"][0] += int(row["bytes_sum"] or 0)
            hosts[row["host"] or "(none)"][1] += int(row["bytes_count"])
        if "content_type" in batch.schema.names:
            kinds = pc.fill_null(batch["content_type"], "image/")
            images += int(pc.sum(pc.starts_with(kinds, "image/")).as_py() or 0)
        else:
            images += batch.num_rows
        if "caption" in batch.schema.names:
            lengths = pc.utf8_length(batch["caption"])
            captions += int(pc.sum(pc.greater(lengths, 0)).as_py() or 0)
            caption_chars += int(pc.sum(lengths).as_py() or 0)
    return {"hosts": hosts, "images": images, "captions": captions,
            "caption_chars": caption_chars}


def build_summary(data_dir: Path, ref: str, settings: Settings | None,
                  since: int | None = None) -> dict[str, Any]:
    """The summary as a JSON-ready dict (``eu-summary-json``; ``eu-summary`` renders it)."""
    version_dir = resolve_manifest(Path(data_dir), ref)
    report = build_report(Path(data_dir), ref, since)
    facts = published_facts(version_dir)
    pub = _published(version_dir)
    m, o = report["manifest"], report["overview"]
    refused = report["crawl_rejections"]["by_reason"]
    signals_off: set[str] = set()
    for run in _runs(Path(data_dir), m["inputs"]):
        signals_off.update(run)
    ranked = sorted(pub["hosts"].items(), key=lambda kv: (-kv[1][0], kv[0]))
    top_n = max(1, math.ceil(len(ranked) * TOP_SHARE)) if ranked else 0
    kinds = {b.id: b.kind for b in settings.blocklists} if settings else {}
    last = (o["fetched_to"] or "")[:10] or None
    first = (o["fetched_from"] or "")[:10] or None
    protocols = [
        {
            "protocol": name,
            "honoured": switch is None or switch not in signals_off,
            "items_refused": int(refused.get(reason, 0)),
        }
        for name, switch, reason in PROTOCOLS
    ]
    return {
        "template": TEMPLATE,
        "dataset": {"name": m["name"], "version": m["version"], "path": m["path"],
                    "built_at": m["created_at"]},
        "note": (f"Filled from the dataset's manifest and its crawl runs. Fields marked "
                 f"{PLACEHOLDER} are for the provider of the model trained on it."),
        "section_1_general_information": {
            "1_1_provider": {"name": PLACEHOLDER, "contact": PLACEHOLDER,
                             "authorised_representative": PLACEHOLDER},
            "1_2_model": {"versioned_model_names": PLACEHOLDER,
                          "model_dependencies": PLACEHOLDER,
                          "date_of_placement_on_the_market": PLACEHOLDER},
            "1_3_modalities": [
                {"modality": "Image", "included": pub["images"] > 0,
                 "items": pub["images"], "size_range": _image_range(pub["images"])},
                {"modality": "Text", "included": pub["captions"] > 0,
                 "items": pub["captions"],
                 "size_range": ("Less than 1 billion tokens" if pub["caption_chars"] < 10**9
                                else PLACEHOLDER),
                 "description": "captions and credit lines of the images"},
                {"modality": "Audio", "included": False},
                {"modality": "Video", "included": False},
            ],
            "types_of_content": ("Images published by websites that opted in to AI training, "
                                 "with their captions, licence and creator metadata."),
            "latest_date_of_data_acquisition": last,
            "other_sources_of_training_data": PLACEHOLDER,
        },
        "section_2_3_crawled_data": {
            "crawlers_used": True,
            "crawler_name": settings.robots_token if settings else UNKNOWN,
            "user_agent": settings.user_agent if settings else UNKNOWN,
            "purpose": (f"Collect content for {m['policy']['intended_use']} from sources whose "
                        "written consent covers that use."),
            "behaviour": [
                "Requests only URLs inside the URL scope of a source whose consent is active, "
                "unexpired and covers the intended use, and whose age verification is valid.",
                "Honours robots.txt (RFC 9309) and every opt-out protocol listed in 3.1; a "
                "signal that cannot be read never counts as permission.",
                "Does not log in, bypass paywalls or solve CAPTCHAs; refuses private network "
                "addresses unless a source allows them.",
            ],
            "opt_out_protocols_honoured": [p["protocol"] for p in protocols if p["honoured"]],
            "collection_period": {"from": first, "to": last},
            "content_and_sources": (f"{o['rows']} images from {len(o['sources'])} opted-in "
                                    f"source(s): {', '.join(o['sources']) or 'none'}."),
            "top_domain_names": {
                "rule": "top 10% of the domain names by size of content (at least one)",
                "domains_crawled": len(ranked),
                "domains": [{"domain": host, "bytes": b, "items": n}
                            for host, (b, n) in ranked[:top_n]],
            },
        },
        "sections_2_other_sources": {
            "2_1_publicly_available_datasets": PLACEHOLDER,
            "2_2_private_datasets_from_third_parties": PLACEHOLDER,
            "2_4_user_data": PLACEHOLDER,
            "2_5_synthetic_data": PLACEHOLDER,
            "2_6_other_sources": PLACEHOLDER,
        },
        "section_3_1_opt_outs": {
            "code_of_practice_signatory": PLACEHOLDER,
            "protocols": protocols,
            "measures": ("Opt-outs win over consent: an item any honoured signal refuses is "
                         "not fetched or not kept, and the conflict is reported to the curator. "
                         "Contributor opt-outs and takedowns are applied at every build."),
        },
        "section_3_2_illegal_content": {
            "hash_lists": [{"id": b["id"], "kind": kinds.get(b["id"], UNKNOWN),
                            "version_sha256": b["version"]} for b in facts["blocklists"]],
            "withheld": o["withheld"],
            "measures": ("Every fetched image is screened against the hash lists below "
                         "(cryptographic and PDQ perceptual hashes) before anything about it "
                         "is kept; a hit is never stored, becomes a restricted incident "
                         "record and suspends the source until a person reviews it. Only "
                         "sources whose contributors are age-verified are crawled, and "
                         "metadata disclosing a minor excludes the item."),
        },
        "section_3_3_other_information": {"changes": report["changes"]},
    }


def _runs(data_dir: Path, run_ids: list[str]) -> list[list[str]]:
    """The opt-out checks each input run had switched off."""
    out = []
    for run_id in run_ids:
        path = data_dir / RUNS_DIR / run_id / RUN_JSON
        if path.is_file():
            out.append(list(json.loads(path.read_text(encoding="utf-8")).get("signals_off")
                            or []))
    return out


def _cell(value: Any) -> str:
    return ("" if value is None else str(value)).replace("|", "\\|").replace("\n", " ")


def render_summary_markdown(s: dict[str, Any]) -> str:
    d = s["dataset"]
    g = s["section_1_general_information"]
    c = s["section_2_3_crawled_data"]
    o = s["sections_2_other_sources"]
    opt = s["section_3_1_opt_outs"]
    ill = s["section_3_2_illegal_content"]
    lines = [
        f"# Public summary of training content: {d['name']} v{d['version']}",
        "",
        f"Following the {s['template']}. {s['note']}",
        "",
        "## 1. General information",
        "",
        "### 1.1 Provider identification",
        "",
        f"- Provider name and contact details: {g['1_1_provider']['name']}",
        f"- Authorised representative: {g['1_1_provider']['authorised_representative']}",
        "",
        "### 1.2 Model identification",
        "",
        f"- Versioned model name(s): {g['1_2_model']['versioned_model_names']}",
        f"- Model dependencies: {g['1_2_model']['model_dependencies']}",
        f"- Date of placement on the market: {g['1_2_model']['date_of_placement_on_the_market']}",
        "",
        "### 1.3 Modalities, overall training data size and other characteristics",
        "",
        "| modality | included | items in this dataset | size range |",
        "|---|---|---|---|",
    ]
    for mod in g["1_3_modalities"]:
        lines.append(f"| {mod['modality']} | {'yes' if mod['included'] else 'no'} | "
                     f"{_cell(mod.get('items', ''))} | {_cell(mod.get('size_range', ''))} |")
    lines += [
        "",
        f"- Types of content: {g['types_of_content']}",
        f"- Latest date of data acquisition: {g['latest_date_of_data_acquisition'] or 'none'}",
        f"- Other training data of the model: {g['other_sources_of_training_data']}",
        "",
        "## 2. List of data sources",
        "",
        f"- 2.1 Publicly available datasets: {o['2_1_publicly_available_datasets']}",
        f"- 2.2 Private datasets obtained from third parties: "
        f"{o['2_2_private_datasets_from_third_parties']}",
        "",
        "### 2.3 Data crawled and scraped from online sources",
        "",
        f"- Crawlers used: {'yes' if c['crawlers_used'] else 'no'}",
        f"- Crawler name: {c['crawler_name']}",
        f"- User-Agent: `{c['user_agent']}`",
        f"- Purpose: {c['purpose']}",
        "- Behaviour:",
        *[f"  - {b}" for b in c["behaviour"]],
        "- Opt-out protocols honoured:",
        *[f"  - {p}" for p in c["opt_out_protocols_honoured"]],
        f"- Period of data collection: {c['collection_period']['from'] or 'none'} to "
        f"{c['collection_period']['to'] or 'none'}",
        f"- Content and sources crawled: {c['content_and_sources']}",
        "",
        f"Most relevant domain names ({c['top_domain_names']['rule']}; "
        f"{c['top_domain_names']['domains_crawled']} domain(s) in all):",
        "",
        "| domain | bytes | items |",
        "|---|---|---|",
        *[f"| {_cell(x['domain'])} | {x['bytes']} | {x['items']} |"
          for x in c["top_domain_names"]["domains"]],
        "",
        f"- 2.4 User data: {o['2_4_user_data']}",
        f"- 2.5 Synthetic data: {o['2_5_synthetic_data']}",
        f"- 2.6 Other sources of data: {o['2_6_other_sources']}",
        "",
        "## 3. Data processing aspects",
        "",
        "### 3.1 Respect of reservation of rights from the text and data mining exception",
        "",
        f"- Signatory of the GPAI Code of Practice: {opt['code_of_practice_signatory']}",
        f"- Measures: {opt['measures']}",
        "",
        "| protocol | honoured | items refused |",
        "|---|---|---|",
        *[f"| {_cell(p['protocol'])} | {'yes' if p['honoured'] else 'no'} | "
          f"{p['items_refused']} |" for p in opt["protocols"]],
        "",
        "### 3.2 Removal of illegal content",
        "",
        f"- Measures: {ill['measures']}",
        f"- Items withheld (count only): {ill['withheld']}",
        "",
        "| hash list | kind | version (sha256 of the list file) |",
        "|---|---|---|",
        *[f"| {_cell(h['id'])} | {_cell(h['kind'])} | `{h['version_sha256']}` |"
          for h in ill["hash_lists"]],
        "",
        "### 3.3 Other information",
        "",
    ]
    changes = s["section_3_3_other_information"]["changes"]
    if changes is None:
        lines.append("First version of the dataset: no earlier version to compare with.")
    else:
        removed = ", ".join(f"{r}: {n}" for r, n in changes["removed_by_reason"].items())
        lines.append(f"Changes since v{changes['since']}: {changes['added']} item(s) added, "
                     f"{changes['removed']} removed ({removed or 'none'}); counts only.")
    return "\n".join(lines) + "\n"
