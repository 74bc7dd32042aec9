"""Incremental crawls: the validators of images fetched before, and the rows a 304 re-uses.

An image URL that a committed run kept, answered with an ``ETag`` or ``Last-Modified``, is
asked for again conditionally (:mod:`crawler.downloadermiddlewares.conditional`). Its
validators live in ``state.sqlite`` (table ``validators``, per source_id + url) with where its
row is (run, row group, index) and a *re-use key*: a hash of everything besides the body that
went into that row's decision (the page's rights markup for the image, the page URL, the
source's licence default, the licence policy, the signal switches, ``exclude_minors``, the size
limits). A ``304`` re-uses the row's content columns (hashes, PDQ, size, embedded signals,
licence decision) only when the key is unchanged; otherwise the request goes out
unconditionally, since the body would be needed to decide again.

What is never recorded, and when:

* validators are written only after the run has committed (:meth:`Validators.commit`, called
  by the runner with the committed ``items.parquet``), so an uncommitted run's are never used;
* only for rows in the committed file: a withheld image (blocklist hit, neighbour) never has
  one, nor has a rejected one. A URL withheld now loses what an earlier run recorded at once
  (:meth:`Validators.forget`, ``secure_delete``); a rejected one at commit;
* an image whose C2PA manifest is remote is not re-used (the manifest may have changed);
* an earlier row that cannot be found (its run deleted) means an unconditional request.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.registry.state import State, Validator, ValidatorReader
from pipeline.runs.writer import ITEMS_FILE, REJECTIONS_FILE, RUN_JSON, RUNS_DIR

if TYPE_CHECKING:
    from pipeline.registry.config import Config, Source

logger = logging.getLogger(__name__)

KEY_VERSION = 1  # bump when what the key covers changes: every earlier key then misses
_CACHED_GROUPS = 8  # row groups of earlier runs kept in memory (a crawl revisits in order)


def reuse_key(config: Config, source: Source, found: dict[str, Any], url: str,
              page_url: str | None) -> str:
    """What a row's decision depended on besides the image's bytes (see the module doc)."""
    settings = config.settings
    markup = found.get("markup")
    pieces = list(found.get("scoped") or [])
    errors: list[str] = []
    if markup is not None:
        pieces += markup.for_image(found.get("requested"), url) + markup.page
        errors = list(markup.errors)
    evidence = [repr(piece) for piece in pieces]
    doc = {
        "v": KEY_VERSION,
        "evidence": evidence,
        "errors": errors,
        "page_url": page_url,
        "default": source.licence.default,
        "allow": list(settings.licences.effective),
        "signals": settings.signals.model_dump(mode="json"),
        "exclude_minors": settings.exclude_minors,
        "limits": [settings.limits.max_bytes, settings.limits.max_pixels],
        "dihedral": settings.screening.pdq_dihedral,
    }
    blob = json.dumps(doc, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class Earlier:
    """A conditional request's validators and the row a 304 would re-use."""

    validator: Validator
    row: dict[str, Any]

    @property
    def pdq_variants(self) -> tuple[str, ...]:
        raw = self.validator.pdq_variants
        return tuple(raw.split(",")) if raw else ()


@dataclass
class _Note:
    etag: str | None
    last_modified: str | None
    reuse_key: str
    pdq_variants: str | None


@dataclass
class Validators:
    """The crawl's side of ``state.sqlite`` validators: look-ups, notes, commit, forget."""

    config: Config
    data_dir: Path
    _state: State | None = None
    _reader: ValidatorReader | None = None
    _notes: dict[tuple[str, str], _Note] = field(default_factory=dict)
    _groups: OrderedDict[tuple[str, int], pa.Table] = field(default_factory=OrderedDict)
    _runs: dict[str, pq.ParquetFile | None] = field(default_factory=dict)

    def state(self) -> State:
        if self._state is None:
            self._state = State.in_data_dir(self.data_dir)
        return self._state

    # ------------------------------------------------------------------ before a request

    def earlier(self, source: Source, url: str, found: dict[str, Any],
                page_url: str | None) -> Earlier | None:
        """What a conditional request for ``url`` would re-use, or None (ask for the body)."""
        if self._reader is None:
            self._reader = self.state().validator_reader()
        validator = self._reader.get(source.id, url)
        if validator is None or not (validator.etag or validator.last_modified):
            return None
        if validator.reuse_key != reuse_key(self.config, source, found, url, page_url):
            return None
        if self.config.settings.screening.pdq_dihedral and not validator.pdq_variants:
            return None  # screened without the variants: a fresh fetch screens them all
        row = self._row(validator)
        if row is None:
            return None
        return Earlier(validator, row)

    def _row(self, v: Validator) -> dict[str, Any] | None:
        """The earlier row, from its committed run; None if the run or the row is gone."""
        table = self._group(v.run_id, v.row_group)
        if table is not None and 0 <= v.row_index < table.num_rows:
            row = table.slice(v.row_index, 1).to_pylist()[0]
            if row["url"] == v.url and row["row_id"] == v.row_id \
                    and row["source_id"] == v.source_id:
                return row
        return None

    def _group(self, run_id: str, index: int) -> pa.Table | None:
        key = (run_id, index)
        if key in self._groups:
            self._groups.move_to_end(key)
            return self._groups[key]
        if run_id not in self._runs:
            run_dir = self.data_dir / RUNS_DIR / run_id
            path = run_dir / ITEMS_FILE
            try:
                committed = (run_dir / RUN_JSON).is_file() and path.is_file()
                self._runs[run_id] = pq.ParquetFile(path) if committed else None
            except (OSError, pa.ArrowException):
                self._runs[run_id] = None
        parquet = self._runs[run_id]
        if parquet is None or not 0 <= index < parquet.num_row_groups:
            return None
        try:
            table = parquet.read_row_group(index)
        except (OSError, pa.ArrowException):
            return None
        self._groups[key] = table
        while len(self._groups) > _CACHED_GROUPS:
            self._groups.popitem(last=False)
        return table

    # ------------------------------------------------------------------ during the crawl

    def note(self, row: dict[str, Any], headers: Any, key: str,
             pdq_variants: tuple[str, ...], earlier: Earlier | None) -> None:
        """Remember a kept row's validators (the response's, else those a 304 confirmed);
        recorded only if the row is still in the run when it commits."""
        etag = _header(headers, b"ETag")
        last_modified = _header(headers, b"Last-Modified")
        if earlier is not None and not (etag or last_modified):
            etag, last_modified = earlier.validator.etag, earlier.validator.last_modified
        if earlier is not None and not pdq_variants:
            pdq_variants = earlier.pdq_variants
        if not (etag or last_modified):
            return
        self._notes[(row["source_id"], row["url"])] = _Note(
            etag, last_modified, key, ",".join(pdq_variants) or None)

    def forget(self, urls: set[str] | list[str]) -> None:
        """A withheld URL keeps nothing: earlier runs' validators of it go now."""
        urls = set(urls)
        for key in [k for k in self._notes if k[1] in urls]:
            del self._notes[key]
        if urls:
            self.state().forget_validators(urls)

    # ------------------------------------------------------------------ after the commit

    def commit(self, run_dir: Path, run_id: str, withheld: set[str]) -> int:
        """Record the validators of the committed run's rows; forget those of its rejections
        and of every withheld URL. Returns how many were recorded."""
        records: list[Validator] = []
        forget: list[tuple[str | None, str]] = [(None, url) for url in sorted(withheld)]
        items = pq.ParquetFile(run_dir / ITEMS_FILE)
        for index in range(items.num_row_groups):
            group = items.read_row_group(index, columns=["source_id", "url", "row_id"])
            for position, (source_id, url, row_id) in enumerate(zip(
                    group["source_id"].to_pylist(), group["url"].to_pylist(),
                    group["row_id"].to_pylist(), strict=True)):
                note = self._notes.get((source_id, url))
                if note is None or url in withheld:
                    forget.append((source_id, url))  # fetched without validators now
                    continue
                records.append(Validator(
                    source_id, url, note.etag, note.last_modified, run_id, row_id, index,
                    position, note.reuse_key, note.pdq_variants))
        rejections = pq.read_table(run_dir / REJECTIONS_FILE, columns=["source_id", "url"])
        for source_id, url in zip(rejections["source_id"].to_pylist(),
                                  rejections["url"].to_pylist(), strict=True):
            forget.append((source_id, url) if source_id is not None else (None, url))
        self.close()
        self.state().record_validators(records, forget)
        self._notes.clear()
        return len(records)

    def close(self) -> None:
        self._groups.clear()
        self._runs.clear()
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def _header(headers: Any, name: bytes) -> str | None:
    value = headers.get(name) if headers is not None else None
    if not value:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return text.strip() or None

