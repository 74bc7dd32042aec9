"""Incident records: the one trace a blocklist hit leaves, under ``data/incidents/``.

A hit never reaches items, rejections, manifests, reports or logs (DESIGN.md promise 4). What a
hotline report needs (NCMEC CyberTipline, INHOPE ICCAM) is kept here instead, one JSON file per
incident, in a directory only the owner can open (0700) and in files only the owner can read
(0600). Files are created with those modes from the first byte (``O_CREAT | O_EXCL`` with mode
0600 inside the 0700 directory, then renamed into place), so no record is ever world-readable,
not even while it is written. The README ("Incidents") documents every field.

Everything outside this directory may carry only counts (:func:`incident_counts`). No record
carries a URL's credentials: user info is written as ``***`` (:func:`redact_credentials`).
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.runs.credentials import URL_FIELDS, redact_credentials

INCIDENTS_DIR = "incidents"
FORMAT = "clearance.incident/1"
DIR_MODE = 0o700
FILE_MODE = 0o600

# incident_type values
BLOCKLIST_MATCH = "blocklist_match"  # the content's hash is on a list (exact or PDQ)
URL_LIST_MATCH = "url_list_match"  # the URL is on a URL list; nothing was fetched
NEIGHBOUR = "blocklist_neighbour"  # PDQ within the threshold of another incident's image
# Fields holding one URL each: its own user info is redacted, the rest of it kept as it was.
_URL_FIELDS = URL_FIELDS | {"redirect_chain"}


class IncidentError(OSError):
    """The incident directory or a record could not be written with restricted modes."""


@dataclass
class Incident:
    """One record. Only :func:`write_incident` turns it into a file."""

    incident_type: str
    source_id: str | None
    detected_by: str  # "crawl" | "screen"
    run_id: str | None = None
    consent_id: str | None = None
    source_name: str | None = None
    page_url: str | None = None
    url: str | None = None
    redirect_chain: list[str] = field(default_factory=list)
    accessed_at: str | None = None  # when the content was fetched (UTC ISO 8601)
    server_ip: str | None = None
    http_status: int | None = None
    content_type: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    md5: str | None = None
    sha1: str | None = None
    pdq: str | None = None
    pdq_quality: int | None = None
    list_id: str | None = None
    list_version: str | None = None
    list_kind: str | None = None
    matched: str | None = None
    matched_quality: int | None = None  # a PDQ entry's quality, when its list gave one < 50
    distance: int | None = None
    threshold: int | None = None
    neighbour_of: str | None = None  # incident_id of the hit this one is near
    found_in: list[str] = field(default_factory=list)  # runs / manifest versions (screen)
    user_agent: str | None = None
    reporting_organisation: str | None = None  # clearance.yaml incidents: (placeholders)
    reporting_contact: str | None = None
    incident_id: str = field(default_factory=lambda: new_incident_id())

    def reliable(self) -> bool | None:
        """For a PDQ match: False when the image's or the entry's quality is below 50 (the
        reference's "unreliable": a reviewer should judge it); None for other kinds."""
        if self.list_kind != "pdq":
            return None
        return all(q is None or q >= 50 for q in (self.pdq_quality, self.matched_quality))

    def document(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "incident_id": self.incident_id,
            "incident_type": self.incident_type,
            "neighbour_of": self.neighbour_of,
            "detected_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "detected_by": self.detected_by,
            "reporter": {
                # Who files the hotline report (clearance.yaml incidents:); null until set.
                "organisation": self.reporting_organisation,
                "contact": self.reporting_contact,
            },
            "source": {
                "id": self.source_id,
                "name": self.source_name,
                "consent_id": self.consent_id,
            },
            "content": {
                "url": self.url,
                "page_url": self.page_url,
                "redirect_chain": self.redirect_chain,
                "accessed_at": self.accessed_at,
                "server_ip": self.server_ip,
                "http_status": self.http_status,
                "content_type": self.content_type,
                "bytes": self.bytes,
            },
            "hashes": {
                "sha256": self.sha256,
                "md5": self.md5,
                "sha1": self.sha1,
                "pdq": self.pdq,
                "pdq_quality": self.pdq_quality,
            },
            "match": {
                "list_id": self.list_id,
                "list_version": self.list_version,
                "kind": self.list_kind,
                "matched": self.matched,
                "matched_quality": self.matched_quality,
                "distance": self.distance,
                "threshold": self.threshold,
                "reliable": self.reliable(),
            },
            "found_in": self.found_in,
            "crawler": {
                "name": "clearance",
                "version": __version__,
                "user_agent": self.user_agent,
                "run_id": self.run_id,
            },
            "content_retained": False,  # the bytes were dropped; nothing else kept them
        }


def new_incident_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(6)}"


def incidents_dir(data_dir: Path) -> Path:
    """``<data>/incidents``, created 0700 (and tightened to 0700 if it exists wider)."""
    path = Path(data_dir) / INCIDENTS_DIR
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, DIR_MODE)
    except FileExistsError:
        if not path.is_dir() or path.is_symlink():
            raise IncidentError(f"{path}: exists and is not a directory") from None
    if stat.S_IMODE(path.stat().st_mode) != DIR_MODE:
        os.chmod(path, DIR_MODE)
    return path


def write_incident(data_dir: Path, incident: Incident) -> Path:
    """Write one record atomically with mode 0600; return its path."""
    folder = incidents_dir(data_dir)
    final = folder / f"{incident.incident_id}.json"
    tmp = folder / f".{incident.incident_id}.{os.getpid()}.tmp"
    document = redact_credentials(incident.document(), _URL_FIELDS)
    blob = json.dumps(document, indent=2, sort_keys=True).encode("utf-8") + b"\n"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # the umask may only have narrowed it; make it exact
        os.write(fd, blob)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, final)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return final


def read_incidents(data_dir: Path) -> list[dict[str, Any]]:
    """Every record, oldest first. Needs read permission on the files (their owner)."""
    folder = Path(data_dir) / INCIDENTS_DIR
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        out.append(json.loads(path.read_text(encoding="utf-8")))
    return out


def incident_counts(data_dir: Path) -> dict[str, Any]:
    """Counts per source, per list and per type: never a URL or a hash."""
    records = read_incidents(data_dir)
    by_source: Counter[str] = Counter()
    by_list: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    by_source_list: Counter[tuple[str, str]] = Counter()
    for record in records:
        source = record.get("source", {}).get("id") or "(unknown)"
        listed = record.get("match", {}).get("list_id") or "(none)"
        by_source[source] += 1
        by_list[listed] += 1
        by_type[record.get("incident_type") or "(unknown)"] += 1
        by_source_list[(source, listed)] += 1
    return {
        "total": len(records),
        "by_source": dict(sorted(by_source.items())),
        "by_list": dict(sorted(by_list.items())),
        "by_type": dict(sorted(by_type.items())),
        "by_source_and_list": [
            {"source_id": s, "list_id": lst, "incidents": n}
            for (s, lst), n in sorted(by_source_list.items())
        ],
    }
