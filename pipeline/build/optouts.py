"""Contributor opt-outs at build time: which lists apply, and which rows they name.

Per source, every list it declares (:class:`pipeline.registry.config.Optouts`) applies:
``creators`` from its YAML, ``file`` read now from the config dir, and ``url`` as the latest of
the build's runs fetched it (``run.json`` ``optout_lists``; the crawl fetches it through every
gate). A declared list the build cannot read — the file is gone or unreadable, or no run of the
build fetched the URL — fails closed: all of the source's rows are excluded until it can be
read, because they cannot be checked against it.

Matching is like a ``creator`` takedown (case- and whitespace-insensitive, on ``creator``), per
distinct creator value with Arrow compute. A row an opt-out names is excluded ``takedown``; the
detail names the list, never the creator, and the audit row carries no URL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.registry.config import Config, Source
from pipeline.registry.optouts import (
    OptoutList,
    OptoutListError,
    normalise_creator,
    optout_list,
    parse_optout_list,
)
from pipeline.runs import reasons
from pipeline.runs.writer import RunInfo

RUN_KEY = "optout_lists"  # run.json: {source_id: {url, fetched_at, sha256, names}}


@dataclass
class SourceOptouts:
    """The lists the build applies, and the declared lists it could not read (source, why)."""

    lists: list[OptoutList] = field(default_factory=list)
    unavailable: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {
            "applied": [lst.summary() for lst in self.lists],
            "unavailable": [{"source_id": s, "problem": why} for s, why in self.unavailable],
        }


def source_optouts(config: Config, runs: Iterable[RunInfo]) -> SourceOptouts:
    runs = sorted(runs, key=lambda r: r.run_id, reverse=True)
    out = SourceOptouts()
    for _, source in sorted(config.sources.items()):
        if source.optouts.declared:
            _add_lists(out, config, source, runs)
    return out


def _add_lists(out: SourceOptouts, config: Config, source: Source, runs: list[RunInfo]) -> None:
    sid, declared = source.id, source.optouts
    if declared.creators:
        raw = json.dumps(declared.creators, ensure_ascii=False).encode()
        out.lists.append(optout_list(sid, f"optouts.creators of sources/{sid}.yaml",
                                     declared.creators, raw))
    if declared.file is not None:
        label = f"optouts.file {declared.file}"
        try:
            raw = config.resolve(declared.file).read_bytes()
            out.lists.append(optout_list(sid, label, parse_optout_list(raw), raw))
        except (OSError, OptoutListError) as exc:
            out.unavailable.append((sid, f"{label} cannot be read: {exc}"))
    if declared.url is not None:
        fetched = _latest_fetch(runs, sid, declared.url)
        if fetched is None:
            out.unavailable.append(
                (sid, f"optouts.url {declared.url} was not fetched by any run of this build")
            )
        else:
            run_id, record = fetched
            label = (f"optouts.url {declared.url} as fetched at {record['fetched_at']} "
                     f"(run {run_id})")
            names = frozenset(normalise_creator(n) for n in record["names"]) - {""}
            out.lists.append(OptoutList(sid, label, record["sha256"], names))


def _latest_fetch(runs: list[RunInfo], source_id: str, url: str) -> tuple[str, dict] | None:
    for run in runs:  # newest first
        record = (run.meta.get(RUN_KEY) or {}).get(source_id)
        if record and record.get("url") == url:
            return run.run_id, record
    return None


def optout_verdicts(
    table: pa.Table, optouts: SourceOptouts
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """(keep mask, reasons, details of the dropped rows in row order) over ``source_id`` and
    ``creator``; the reason is always ``takedown``."""
    n = table.num_rows
    detail = np.full(n, None, dtype=object)
    hit = np.zeros(n, dtype=bool)
    if n and (optouts.lists or optouts.unavailable):
        source = table["source_id"]
        creator = table["creator"]
        if isinstance(creator, pa.ChunkedArray):
            creator = creator.combine_chunks()
        encoded = pc.dictionary_encode(creator)
        names = [None if v is None else normalise_creator(v)
                 for v in encoded.dictionary.to_pylist()]
        normalised = pa.array(names, pa.string()).take(encoded.indices)
        for lst in optouts.lists:
            wanted = pa.array(sorted(lst.names), pa.string())
            match = pc.and_(pc.equal(source, lst.source_id),
                            pc.is_in(normalised, value_set=wanted))
            new = _bools(pc.fill_null(match, False)) & ~hit
            detail[new] = f"contributor opt-out: {lst.label}"
            hit |= new
        for sid, why in optouts.unavailable:
            new = _bools(pc.fill_null(pc.equal(source, sid), False)) & ~hit
            detail[new] = f"contributor opt-out list unavailable: {why}"
            hit |= new
    dropped = int(hit.sum())
    return (
        pa.array(~hit, pa.bool_()),
        pa.array([reasons.TAKEDOWN] * dropped, pa.string()),
        pa.array(detail[hit].tolist(), pa.string()),
    )


def _bools(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=bool)
