"""Re-screening stored rows against the current hash lists (``clearance screen``).

Lists are updated daily; rows admitted under yesterday's lists are matched again from their
stored columns (``sha256``, ``md5``, ``sha1``, ``pdq``, ``url``), with no re-download. A hit is
handled as in the crawl: one incident record, the source suspended, and the row withdrawn, with
its PDQ neighbours (rows within the threshold of a hit's PDQ). Rows are withdrawn by rewriting
the affected Parquet files atomically (hidden temporary file, fsync, rename):

- runs: ``items.parquet`` (and any ``rejections.parquet`` row naming a withdrawn URL);
  ``run.json`` counts (``items``, ``withheld``, ``rejections``, ``by_reason``) follow;
- manifests, every version: ``data/part-*.parquet`` (re-partitioned with the build's part
  size, deterministic bytes) and ``audit/exclusions.parquet`` rows naming a withdrawn URL or
  content hash; ``manifest.json`` counts, ``counts.withheld`` and file checksums follow.

Only counts are returned; URLs and hashes go to ``data/incidents/`` and nowhere else.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.build.builder import PART_ROWS, checksums, exclusive_lock, tally, write_parquet
from pipeline.build.versions import (
    AUDIT_DIR,
    DATA_DIR,
    EXCLUSIONS_FILE,
    MANIFEST_JSON,
    manifest_root,
    read_manifest,
)
from pipeline.registry.config import Config
from pipeline.registry.state import State
from pipeline.runs.schema import EXCLUSIONS_SCHEMA, ITEMS_SCHEMA, REJECTIONS_SCHEMA
from pipeline.runs.writer import RUN_JSON, completed_runs, fsync_dir, write_json_atomic
from pipeline.safety.hashlists import Screener
from pipeline.safety.incidents import (
    BLOCKLIST_MATCH,
    NEIGHBOUR,
    URL_LIST_MATCH,
    Incident,
    write_incident,
)
from pipeline.safety.matching import Hit, PackedPdqs, pdq_distance, reliable

SUSPEND_REASON = "blocklist hit found by clearance screen (incident {incident})"


@dataclass
class _Target:
    """One run's items, or one manifest version's published rows."""

    label: str  # "run:<id>" | "manifest:<name>@v<N>"
    path: Path  # the run dir or the version dir
    table: pa.Table
    withdraw: set[int] = field(default_factory=set)

    def claim(self, index: int) -> dict[str, Any] | None:
        """Mark row ``index`` for withdrawal; its row, or None when already claimed."""
        if index in self.withdraw:
            return None
        self.withdraw.add(index)
        # one row, not the whole table: a hit among a million rows must not cost a million dicts
        row: dict[str, Any] = self.table.slice(index, 1).to_pylist()[0]
        return row


@dataclass
class _Found:
    """A distinct (url, sha256) withdrawn, with where it was seen."""

    incident: Incident
    found_in: list[str]
    centre: tuple[str, int] | None = None  # (pdq, threshold) for neighbour expansion


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return None if value is None else str(value)


def _incident(config: Config, row: dict[str, Any], kind: str, hit: Hit,
              threshold: int | None) -> Incident:
    source = config.sources.get(row["source_id"])
    return Incident(
        incident_type=kind, source_id=row["source_id"], detected_by="screen",
        run_id=row.get("run_id"), consent_id=row.get("consent_id"),
        source_name=None if source is None else source.name,
        page_url=row.get("page_url"), url=row["url"], accessed_at=_iso(row.get("fetched_at")),
        http_status=row.get("http_status"), content_type=row.get("content_type"),
        bytes=row.get("bytes"), sha256=row.get("sha256"), md5=row.get("md5"),
        sha1=row.get("sha1"), pdq=row.get("pdq"), pdq_quality=row.get("pdq_quality"),
        list_id=hit.list_id, list_version=hit.list_version, list_kind=hit.kind,
        matched=hit.matched, matched_quality=hit.entry_quality, distance=hit.distance,
        threshold=threshold, user_agent=config.settings.user_agent,
    )


def _hit(config: Config, row: dict[str, Any], hit: Hit, threshold: int) -> _Found:
    """A row matched by a list: its incident, and its PDQ as a centre of neighbours."""
    kind = URL_LIST_MATCH if hit.kind.startswith("url-") else BLOCKLIST_MATCH
    incident = _incident(config, row, kind, hit, threshold if hit.kind == "pdq" else None)
    reliable_pdq = reliable(row["pdq"], row.get("pdq_quality"))
    return _Found(incident, [], (row["pdq"], threshold) if reliable_pdq else None)


def _neighbour(config: Config, row: dict[str, Any], centre: str, threshold: int,
               hit_found: _Found) -> _Found:
    """A row within ``threshold`` of a hit's PDQ: its own incident, pointing at the hit's."""
    centre_incident = hit_found.incident
    hit = Hit(centre_incident.list_id or "", centre_incident.list_version or "",
              centre_incident.list_kind or "", centre, pdq_distance(centre, row["pdq"]))
    incident = _incident(config, row, NEIGHBOUR, hit, threshold)
    incident.neighbour_of = centre_incident.incident_id
    return _Found(incident, [])


def _match_rows(screener: Screener, table: pa.Table) -> list[Hit | None]:
    cols = {name: table[name].to_pylist()
            for name in ("sha256", "md5", "sha1", "pdq", "url", "page_url")}
    # Batched: every row's exact hashes, then every distinct PDQ, in a few array passes; the
    # same first hit per row as Screener.match_hashes row by row.
    exact_hits = screener.match_exact_all({k: cols[k] for k in ("sha256", "md5", "sha1")})
    pdq_hits = screener.match_pdq_all(cols["pdq"])
    urls = screener.has_url_lists
    out: list[Hit | None] = []
    for i in range(table.num_rows):
        hit = exact_hits[i] or pdq_hits[i]
        if hit is None and urls:
            hit = screener.match_url(cols["url"][i]) or (
                screener.match_url(cols["page_url"][i]) if cols["page_url"][i] else None)
        out.append(hit)
    return out


def _read_parts(version: Path) -> pa.Table:
    parts = sorted((version / DATA_DIR).glob("part-*.parquet"))
    tables = [pq.read_table(p, schema=ITEMS_SCHEMA) for p in parts]
    if not tables:
        return ITEMS_SCHEMA.empty_table()
    return pa.concat_tables(tables).replace_schema_metadata(None)


def _versions(data_dir: Path, name: str) -> list[Path]:
    root = manifest_root(data_dir, name)
    if not root.is_dir():
        raise FileNotFoundError(f"no manifest named {name!r} under {root.parent}")
    found = [e for e in root.iterdir() if e.is_dir() and e.name[:1] == "v" and e.name[1:].isdigit()]
    return sorted(found, key=lambda e: int(e.name[1:]))


def rescreen(
    config: Config,
    data_dir: Path,
    screener: Screener,
    *,
    run_ids: list[str] | None = None,
    manifests: list[str] | tuple[str, ...] = (),
    state: State | None = None,
) -> dict[str, Any]:
    """Re-screen runs (default: all, unless only manifests are named) and every version of
    the named manifests; return counts only."""
    data_dir = Path(data_dir)
    state = state or State.in_data_dir(data_dir)
    targets: list[_Target] = []
    if run_ids or not manifests:
        for run in completed_runs(data_dir, run_ids):
            table = pq.read_table(run.items_path, schema=ITEMS_SCHEMA).replace_schema_metadata(
                None)
            targets.append(_Target(f"run:{run.run_id}", run.path, table))
    for name in manifests:
        for version in _versions(data_dir, name):
            targets.append(_Target(f"manifest:{name}@{version.name}", version,
                                   _read_parts(version)))

    # Pass 1: direct hits.
    found: dict[tuple[str, str], _Found] = {}
    hits = 0
    for target in targets:
        for index, hit in enumerate(_match_rows(screener, target.table)):
            row = None if hit is None else target.claim(index)
            if hit is None or row is None:
                continue
            hits += 1
            key = (row["url"], row["sha256"])
            if key not in found:
                found[key] = _hit(config, row, hit, screener.threshold_for(hit))
            found[key].found_in.append(target.label)

    # Pass 1b: URL lists over the rows that name URLs without content (run rejections,
    # build exclusions): a listed URL or page there is an incident too, and the row goes.
    listed_urls: set[str] = set()
    if screener.has_url_lists:
        for target in targets:
            for row in _audit_rows(target):
                for field_name in ("url", "page_url"):
                    value = row.get(field_name)
                    if not value or value in listed_urls:
                        continue
                    hit = screener.match_url(value)
                    if hit is None:
                        continue
                    listed_urls.add(value)
                    key = (value, "")
                    if key not in found:
                        incident = Incident(
                            incident_type=URL_LIST_MATCH, source_id=row.get("source_id"),
                            detected_by="screen", page_url=row.get("page_url"), url=value,
                            list_id=hit.list_id, list_version=hit.list_version,
                            list_kind=hit.kind, matched=hit.matched,
                            user_agent=config.settings.user_agent,
                            run_id=target.label[4:] if target.label.startswith("run:")
                            else None)
                        source = config.sources.get(row.get("source_id") or "")
                        if source is not None:
                            incident.source_name = source.name
                            incident.consent_id = source.consent.id
                        found[key] = _Found(incident, [])
                    found[key].found_in.append(target.label)

    # Pass 2: neighbours of every hit's PDQ, in every target.
    centres = [(f.centre[0], f.centre[1], f) for f in found.values() if f.centre]
    neighbours: dict[tuple[str, str], _Found] = {}
    count_neighbours = 0
    for target in targets:
        if not centres or target.table.num_rows == 0:
            continue
        packed = PackedPdqs([p if reliable(p, q) else None for p, q in zip(
            target.table["pdq"].to_pylist(), target.table["pdq_quality"].to_pylist(),
            strict=True)])  # packed once for every centre
        for centre, threshold, hit_found in centres:
            for index in packed.within(centre, threshold):
                row = target.claim(index)
                if row is None:
                    continue
                count_neighbours += 1
                key = (row["url"], row["sha256"])
                if key in found:
                    continue  # a direct hit elsewhere: its incident covers this row
                if key not in neighbours:
                    neighbours[key] = _neighbour(config, row, centre, threshold, hit_found)
                neighbours[key].found_in.append(target.label)

    # Records first (nothing is withdrawn without its incident), then suspensions.
    suspended: list[str] = []
    reporting = config.settings.incidents
    for item in [*found.values(), *neighbours.values()]:
        item.incident.found_in = sorted(set(item.found_in))
        item.incident.reporting_organisation = reporting.reporting_organisation
        item.incident.reporting_contact = reporting.contact
        write_incident(data_dir, item.incident)
    for item in [*found.values(), *neighbours.values()]:  # a neighbour is as near as a hit
        source_id = item.incident.source_id
        if source_id and state.suspend(source_id, SUSPEND_REASON.format(
                incident=item.incident.incident_id)):
            suspended.append(source_id)

    # Pass 3: rewrite what changed.
    withdrawn_urls = {k[0] for k in [*found, *neighbours]}
    withdrawn_hashes = {k[1] for k in [*found, *neighbours] if k[1]}
    # No validators of a withdrawn URL stay behind either (incremental crawls re-use rows).
    state.forget_validators(withdrawn_urls)
    counts = Counter[str]()
    for target in targets:
        if target.label.startswith("run:"):
            counts.update(_rewrite_run(target, withdrawn_urls, state))
        else:
            counts.update(_rewrite_version(target, withdrawn_urls, withdrawn_hashes))
    return {
        "lists": screener.refs(),
        "runs": [t.label[4:] for t in targets if t.label.startswith("run:")],
        "manifests": [t.label[9:] for t in targets if t.label.startswith("manifest:")],
        "rows_screened": sum(t.table.num_rows for t in targets),
        "hits": hits,
        "neighbours": count_neighbours,
        "rows_withdrawn": sum(len(t.withdraw) for t in targets),
        "rejections_removed": counts["rejections_removed"],
        "exclusions_removed": counts["exclusions_removed"],
        "files_rewritten": counts["files_rewritten"],
        "incidents": len(found) + len(neighbours),
        "suspended": sorted(suspended),
    }


def _audit_rows(target: _Target) -> list[dict[str, Any]]:
    """The rejection (run) or exclusion (manifest version) rows of a target: url columns."""
    if target.label.startswith("run:"):
        path = target.path / "rejections.parquet"
    else:
        path = target.path / AUDIT_DIR / EXCLUSIONS_FILE
    if not path.is_file():
        return []
    rows: list[dict[str, Any]] = pq.read_table(
        path, columns=["url", "page_url", "source_id"]).to_pylist()
    return rows


def _kept(table: pa.Table, withdraw: set[int]) -> pa.Table:
    mask = pa.array([i not in withdraw for i in range(table.num_rows)], type=pa.bool_())
    return table.filter(mask)


def _replace(table: pa.Table, path: Path) -> None:
    """Write ``table`` to a hidden sibling, fsync, rename over ``path``."""
    tmp = path.with_name(f".{path.name}.screen-{os.getpid()}.tmp")
    try:
        write_parquet(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _drop_named(table: pa.Table, urls: set[str], hashes: set[str] | None = None
                ) -> tuple[pa.Table, pa.Table]:
    """Split ``table`` into (kept, removed) by its url or page_url (and row_id) column."""
    if table.num_rows == 0 or not urls:
        return table, table.slice(0, 0)
    listed = pa.array(sorted(urls), type=pa.string())
    mask = pc.or_kleene(pc.is_in(table["url"], value_set=listed),
                        pc.is_in(table["page_url"], value_set=listed))
    if hashes and "row_id" in table.column_names:
        by_hash = pc.is_in(table["row_id"], value_set=pa.array(sorted(hashes), type=pa.string()))
        mask = pc.or_kleene(mask, by_hash)
    mask = pc.fill_null(mask, False)
    return table.filter(pc.invert(mask)), table.filter(mask)


def _rewrite_run(target: _Target, urls: set[str], state: State) -> Counter[str]:
    counts = Counter[str]()
    run_dir = target.path
    rejections_path = run_dir / "rejections.parquet"
    removed_rejections = REJECTIONS_SCHEMA.empty_table()
    if rejections_path.is_file():
        rejections = pq.read_table(rejections_path, schema=REJECTIONS_SCHEMA)
        kept_rejections, removed_rejections = _drop_named(rejections, urls)
        if removed_rejections.num_rows:
            _replace(kept_rejections, rejections_path)
            counts["files_rewritten"] += 1
            counts["rejections_removed"] += removed_rejections.num_rows
    if not target.withdraw and not removed_rejections.num_rows:
        return counts
    withdrawn = target.table.take(sorted(target.withdraw)) if target.withdraw else None
    if target.withdraw:
        _replace(_kept(target.table, target.withdraw), run_dir / "items.parquet")
        counts["files_rewritten"] += 1
    meta_path = run_dir / RUN_JSON
    doc = read_json(meta_path)
    run_counts = doc.setdefault("counts", {})
    run_counts["items"] = target.table.num_rows - len(target.withdraw)
    run_counts["withheld"] = int(run_counts.get("withheld", 0)) + len(target.withdraw)
    run_counts["rejections"] = int(run_counts.get("rejections", 0)) - removed_rejections.num_rows
    by_reason = Counter(run_counts.get("by_reason", {}))
    by_reason.subtract(Counter(removed_rejections["reason"].to_pylist()))
    run_counts["by_reason"] = {k: v for k, v in sorted(by_reason.items()) if v > 0}
    if withdrawn is not None:
        sources = doc.get("sources")
        for source_id, n in Counter(withdrawn["source_id"].to_pylist()).items():
            entry = sources.get(source_id) if isinstance(sources, dict) else None
            if isinstance(entry, dict) and "items" in entry:
                entry["items"] = max(0, int(entry["items"]) - n)
    write_json_atomic(meta_path, doc)
    fsync_dir(run_dir)
    state.register_run(doc.get("run_id", run_dir.name), doc)
    return counts


def read_json(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def _part_rows(version: Path) -> int:
    parts = sorted((version / DATA_DIR).glob("part-*.parquet"))
    if len(parts) > 1:
        return pq.read_metadata(parts[0]).num_rows  # the build's part size
    return PART_ROWS


def _rewrite_version(target: _Target, urls: set[str], hashes: set[str]) -> Counter[str]:
    counts = Counter[str]()
    version = target.path
    exclusions_path = version / AUDIT_DIR / EXCLUSIONS_FILE
    removed_exclusions = EXCLUSIONS_SCHEMA.empty_table()
    kept_exclusions = None
    if exclusions_path.is_file():
        exclusions = pq.read_table(exclusions_path, schema=EXCLUSIONS_SCHEMA)
        kept_exclusions, removed_exclusions = _drop_named(exclusions, urls, hashes)
    if not target.withdraw and not removed_exclusions.num_rows:
        return counts
    with exclusive_lock(version.parent / ".lock"):
        if target.withdraw:
            kept = _kept(target.table, target.withdraw)
            counts["files_rewritten"] += _rewrite_parts(version / DATA_DIR, kept,
                                                        _part_rows(version))
        else:
            kept = target.table
        if removed_exclusions.num_rows and kept_exclusions is not None:
            _replace(kept_exclusions, exclusions_path)
            fsync_dir(exclusions_path.parent)
            counts["files_rewritten"] += 1
            counts["exclusions_removed"] += removed_exclusions.num_rows
        doc = read_manifest(version)
        m = doc.setdefault("counts", {})
        m["kept"] = kept.num_rows
        m["excluded"] = int(m.get("excluded", 0)) - removed_exclusions.num_rows
        m["withheld"] = int(m.get("withheld", 0)) + len(target.withdraw) \
            + removed_exclusions.num_rows
        by_reason = Counter(m.get("excluded_by_reason", {}))
        by_reason.subtract(Counter(removed_exclusions["reason"].to_pylist()))
        m["excluded_by_reason"] = {k: v for k, v in sorted(by_reason.items()) if v > 0}
        m["kept_by_source"] = tally(kept, "source_id")
        m["kept_by_licence"] = tally(kept, "licence")
        m["kept_by_licence_source"] = tally(kept, "licence_source")
        m["parts"] = len(list((version / DATA_DIR).glob("part-*.parquet")))
        doc["files"] = checksums(version)
        write_json_atomic(version / MANIFEST_JSON, doc)
        fsync_dir(version)
    return counts


def _rewrite_parts(folder: Path, kept: pa.Table, part_rows: int) -> int:
    """Re-partition like the build (same part size, same names); each file replaced
    atomically, surplus parts removed last. An empty result keeps one empty part."""
    offsets = range(0, max(kept.num_rows, 1), part_rows)
    written = 0
    for index, offset in enumerate(offsets):
        _replace(kept.slice(offset, part_rows), folder / f"part-{index:05d}.parquet")
        written += 1
    for extra in sorted(folder.glob("part-*.parquet"))[len(offsets):]:
        extra.unlink()
        written += 1
    fsync_dir(folder)
    return written
