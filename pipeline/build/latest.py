"""A row's ``url`` must serve its ``sha256``: only the latest fetch of each URL stays in a build.

Incremental crawls fetch a URL again. Per (``source_id``, ``url``) over the chosen runs, the
latest event decides:

- the latest *fetch* (an item row) stays; every earlier item row of that URL is ``superseded``
  (the content may have changed since, or a ``304`` re-used it with a newer ``fetched_at``);
- when the URL's latest event is a crawl rejection that says the item may no longer be used —
  the URL answered 404/410 (``gone``) or one of the source's own opt-out signals now refuses
  it (:data:`pipeline.runs.reasons.OPT_OUTS`) — every item row of the URL leaves the build with
  that reason. Transient failures (``fetch_failed``, ``too_large``, ...) decide nothing: the
  earlier row stands until a fetch says otherwise.

"Later" is by run: runs of one source never overlap (the scheduler's lock) and run ids sort by
start time. An ending rejection counts only when its run is later than the run of the URL's
latest fetch, so inside one run the crawl's own decision stands (an image refused by one page's
``noai`` meta but fetched through another page is a kept row of that run).
Everything is decided with Arrow joins over the key columns, so it runs at table speed; the
build filter is :class:`pipeline.build.filters.LatestFetchFilter`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.runs import reasons
from pipeline.runs.writer import RunInfo

# Crawl rejections that end an earlier row of the same URL.
ENDING: frozenset[str] = frozenset({reasons.GONE}) | reasons.OPT_OUTS

EVENTS_SCHEMA = pa.schema(
    [
        pa.field("source_id", pa.string()),
        pa.field("url", pa.string()),
        pa.field("at", pa.timestamp("us", tz="UTC")),
        pa.field("reason", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("run_id", pa.string()),
    ]
)
_REJECTION_COLUMNS = ["source_id", "url", "at", "reason", "detail"]
_KEY = ["source_id", "url"]


def url_events(runs: Iterable[RunInfo]) -> pa.Table:
    """The ending rejections (``ENDING``) of the runs, as (source_id, url, at, reason, detail,
    run_id)."""
    tables = []
    wanted = pa.array(sorted(ENDING), pa.string())
    for run in runs:
        if not run.rejections_path.is_file():
            continue
        # ParquetFile, not read_table: no import of pyarrow.dataset (~0.5 s) for a small file.
        table = pq.ParquetFile(run.rejections_path).read(columns=_REJECTION_COLUMNS)
        table = table.filter(pc.is_in(table["reason"], value_set=wanted))
        table = table.filter(pc.and_(pc.is_valid(table["source_id"]), pc.is_valid(table["url"])))
        run_ids = pa.array([run.run_id] * table.num_rows, pa.string())
        tables.append(table.append_column("run_id", run_ids).cast(EVENTS_SCHEMA))
    if not tables:
        return EVENTS_SCHEMA.empty_table()
    return pa.concat_tables(tables)


def latest_verdicts(table: pa.Table, events: pa.Table) -> tuple[pa.Array, pa.Array, pa.Array]:
    """(keep mask, reasons, details of the dropped rows in table order) for item rows with
    ``source_id``, ``url``, ``fetched_at`` and ``run_id``, given :func:`url_events`."""
    n = table.num_rows
    if n == 0:
        empty = pa.array([], pa.string())
        return pa.array([], pa.bool_()), empty, empty
    keys = table.select([*_KEY, "fetched_at", "run_id"]).append_column(
        "_pos", pa.array(range(n), pa.int64())
    )
    newest = (
        keys.sort_by([("fetched_at", "descending"), ("run_id", "descending")])
        .group_by(_KEY, use_threads=False)
        .aggregate([("fetched_at", "first"), ("run_id", "first")])
        .rename_columns([*_KEY, "_latest_at", "_latest_run"])
    )
    events = events.sort_by(
        [("run_id", "descending"), ("at", "descending"), ("reason", "ascending")]
    )
    ending = (
        events.group_by(_KEY, use_threads=False)
        .aggregate([("run_id", "first"), ("at", "first"), ("reason", "first"), ("detail", "first")])
        .rename_columns([*_KEY, "_event_run", "_event_at", "_event_reason", "_event_detail"])
    )
    joined = keys.join(newest, _KEY, join_type="left outer")
    joined = joined.join(ending, _KEY, join_type="left outer").sort_by("_pos")

    ended = pc.fill_null(pc.greater(joined["_event_run"], joined["_latest_run"]), False)
    older = pc.less(joined["fetched_at"], joined["_latest_at"])
    superseded = pc.and_(pc.invert(ended), pc.fill_null(older, False))
    drop = pc.or_(ended, superseded)

    dropped = joined.filter(drop)
    is_end = pc.filter(ended, drop)
    said = pc.coalesce(dropped["_event_detail"], dropped["_event_reason"])
    end_detail = pc.binary_join_element_wise(
        "a later run's fetch of the URL, at ", _iso(dropped["_event_at"]), ", said ", said, ""
    )
    again_detail = pc.binary_join_element_wise(
        "fetched again at ", _iso(dropped["_latest_at"]),
        " (run ", dropped["_latest_run"], ")", "",
    )
    out_reasons = pc.if_else(is_end, dropped["_event_reason"], reasons.SUPERSEDED)
    details = pc.if_else(is_end, end_detail, again_detail)
    return pc.invert(drop), out_reasons, details


def _iso(column: Any) -> Any:
    seconds = pc.cast(column, pa.timestamp("s", tz="UTC"), safe=False)
    return pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%SZ")
