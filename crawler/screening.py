"""Blocklist screening inside the crawl: a hit leaves no trace but an incident.

Every fetched image is matched (exact hashes, then PDQ) before anything about it can be
recorded; every request URL is matched against URL lists before it is sent. On a hit:

- the bytes are dropped (nothing keeps the response; Scrapy's HTTP cache and JOBDIR are off);
- one incident record goes to ``data/incidents/`` (:mod:`pipeline.safety.incidents`); the log says
  only ``withheld by blocklist <id>``;
- the source is suspended in ``state.sqlite`` at once, and its queued requests are dropped;
- neighbour expansion: items admitted earlier in the run whose PDQ lies within the threshold of
  the hit are withdrawn from the run before it is committed, and images admitted later near an
  earlier hit are withheld too, each with its own incident record.

Log lines never name an image URL (:mod:`crawler.redaction`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crawler.exceptions import Refused
from pipeline.registry.config import Config
from pipeline.registry.state import State
from pipeline.safety.hashlists import Screener
from pipeline.safety.incidents import (
    BLOCKLIST_MATCH,
    NEIGHBOUR,
    URL_LIST_MATCH,
    Incident,
    write_incident,
)
from pipeline.safety.matching import Hit, pdq_distance, pdq_within, reliable

logger = logging.getLogger(__name__)

WITHHELD_LOG = "withheld by blocklist %s"
SUSPEND_REASON = "blocklist hit (incident {incident}); see data/incidents/"
_URL_RE = re.compile(r"https?://[^\s<>'\"]+")
_TRAILING = ".,;:)]}"


class Dropped(Refused):
    """A request not sent and not recorded: its URL is on a URL list (the incident is
    written), or its source was suspended during this crawl (run.json ``suspended``)."""


@dataclass(frozen=True)
class Fetched:
    """What the crawl knows about a fetched image when it screens it (kept only for a hit)."""

    url: str
    source_id: str
    page_url: str | None
    sha256: str
    md5: str
    sha1: str
    pdq: str | None = None
    pdq_quality: int | None = None
    pdq_variants: tuple[str, ...] = ()
    server_ip: str | None = None
    http_status: int | None = None
    content_type: str | None = None
    bytes: int | None = None
    redirect_chain: tuple[str, ...] = ()
    accessed_at: str | None = None


@dataclass
class CrawlScreen:
    """Per-crawl screening state: the lists, the hits so far, the suspended sources."""

    screener: Screener
    config: Config
    data_dir: Path
    run_id: str
    suspended: set[str] = field(default_factory=set)
    withheld_urls: set[str] = field(default_factory=set)  # in memory only, never written
    # Told of every URL withheld, at once: the frontier deletes it (crawler.resume).
    on_withheld: Callable[[list[str]], None] | None = None
    image_urls: set[str] = field(default_factory=set)  # redacted from every log line
    hit_pdqs: list[tuple[str, int, str, Hit]] = field(default_factory=list)
    admitted: dict[str, str] = field(default_factory=dict)  # url -> pdq of admitted items
    incidents: int = 0
    failure: str | None = None  # set when an incident could not be written
    _state: State | None = None

    def state(self) -> State:
        if self._state is None:
            self._state = State.in_data_dir(self.data_dir)
        return self._state

    def is_suspended(self, source_id: str | None) -> bool:
        # after a failed incident write every source counts as suspended: the crawl drains
        return self.failure is not None or (
            source_id is not None and source_id in self.suspended)

    # ------------------------------------------------------------------ matching

    def check_url(self, url: str, source_id: str | None, page_url: str | None,
                  redirect_chain: list[str] | None = None) -> bool:
        """URL lists, before a request is sent (or a row naming the URL is written). The
        redirect hops that led to a listed URL go into the incident, and nowhere else."""
        if url in self.withheld_urls:
            return True
        hit = self.screener.match_url(url)
        if hit is None:
            return False
        self._withhold([url, *(redirect_chain or ())])
        self._record(Incident(
            incident_type=URL_LIST_MATCH, source_id=source_id, detected_by="crawl",
            page_url=page_url, url=url, redirect_chain=list(redirect_chain or ()),
            **self._hit_fields(hit, None),
        ), hit)
        return True

    def check_image(self, image: Fetched) -> bool:
        """Match a fetched image; True when it is withheld (a hit or a hit's neighbour)."""
        hit = self.screener.match_hashes(
            sha256=image.sha256, md5=image.md5, sha1=image.sha1, pdq=image.pdq,
            pdq_variants=image.pdq_variants,
        )
        if hit is None:
            hit = self.screener.match_url(image.url)
        if hit is not None:
            self._withhold([image.url], image.redirect_chain)
            incident = self._record(self._image_incident(image, BLOCKLIST_MATCH, hit, None), hit)
            if reliable(image.pdq, image.pdq_quality):
                assert image.pdq is not None
                self.hit_pdqs.append((image.pdq, self.screener.threshold_for(hit), incident, hit))
            return True
        if image.pdq and self.hit_pdqs and reliable(image.pdq, image.pdq_quality):
            # a late neighbour of an earlier hit
            for centre, threshold, incident, centre_hit in self.hit_pdqs:
                if pdq_within(centre, [image.pdq], threshold):
                    self._withhold([image.url], image.redirect_chain)
                    self._record(self._image_incident(
                        image, NEIGHBOUR, centre_hit, incident, centre=centre,
                        threshold=threshold), centre_hit)
                    return True
        return False

    def _withhold(self, urls: list[str], hops: tuple[str, ...] = ()) -> None:
        """``urls`` are withheld; they and the redirect ``hops`` that led to them leave the
        frontier."""
        self.withheld_urls.update(urls)
        if self.on_withheld is not None:
            self.on_withheld([*urls, *hops])

    def admit(self, url: str, pdq: str | None, quality: int | None = None) -> None:
        if pdq and reliable(pdq, quality):
            self.admitted[url] = pdq

    def neighbours(self) -> list[tuple[str, str, int, str, Hit]]:
        """Admitted (url, pdq) near any hit: (url, centre pdq, threshold, incident, hit)."""
        if not self.admitted or not self.hit_pdqs:
            return []
        urls = list(self.admitted)
        pdqs = [self.admitted[u] for u in urls]
        out = []
        claimed: set[str] = set()
        for centre, threshold, incident, hit in self.hit_pdqs:
            for index in pdq_within(centre, pdqs, threshold):
                if urls[index] not in claimed:
                    claimed.add(urls[index])
                    out.append((urls[index], centre, threshold, incident, hit))
        return out

    def withdraw(self, rows: list[dict[str, Any]],
                 centres: dict[str, tuple[str, int, str, Hit]]) -> None:
        """Neighbour items taken back out of the run: one incident each."""
        for row in rows:
            centre, threshold, incident, hit = centres[row["url"]]
            self.admitted.pop(row["url"], None)
            self._withhold([row["url"]])
            image = Fetched(
                url=row["url"], source_id=row["source_id"], page_url=row.get("page_url"),
                sha256=row["sha256"], md5=row["md5"], sha1=row.get("sha1") or "",
                pdq=row.get("pdq"), pdq_quality=row.get("pdq_quality"),
                http_status=row.get("http_status"), content_type=row.get("content_type"),
                bytes=row.get("bytes"),
                accessed_at=_iso(row.get("fetched_at")),
            )
            self._record(self._image_incident(
                image, NEIGHBOUR, hit, incident, centre=centre, threshold=threshold), hit)

    # ------------------------------------------------------------------ records

    def _hit_fields(self, hit: Hit, threshold: int | None) -> dict[str, Any]:
        return {
            "list_id": hit.list_id, "list_version": hit.list_version, "list_kind": hit.kind,
            "matched": hit.matched, "matched_quality": hit.entry_quality,
            "distance": hit.distance,
            "threshold": threshold if threshold is not None else (
                self.screener.threshold_for(hit) if hit.kind == "pdq" else None),
        }

    def _image_incident(self, image: Fetched, kind: str, hit: Hit, neighbour_of: str | None,
                        *, centre: str | None = None, threshold: int | None = None) -> Incident:
        fields = self._hit_fields(hit, threshold)
        if kind == NEIGHBOUR and centre is not None and image.pdq:
            fields.update(matched=centre, matched_quality=None,
                          distance=pdq_distance(centre, image.pdq), threshold=threshold)
        return Incident(
            incident_type=kind, source_id=image.source_id, detected_by="crawl",
            page_url=image.page_url, url=image.url, redirect_chain=list(image.redirect_chain),
            accessed_at=image.accessed_at, server_ip=image.server_ip,
            http_status=image.http_status, content_type=image.content_type, bytes=image.bytes,
            sha256=image.sha256, md5=image.md5, sha1=image.sha1 or None, pdq=image.pdq,
            pdq_quality=image.pdq_quality, neighbour_of=neighbour_of, **fields,
        )

    def _record(self, incident: Incident, hit: Hit) -> str:
        """Write the record, suspend the source, log only the list id; return the incident id."""
        source = self.config.sources.get(incident.source_id or "")
        incident.run_id = self.run_id
        incident.user_agent = self.config.settings.user_agent
        reporting = self.config.settings.incidents
        incident.reporting_organisation = reporting.reporting_organisation
        incident.reporting_contact = reporting.contact
        if source is not None:
            incident.source_name = source.name
            incident.consent_id = source.consent.id
        try:
            write_incident(self.data_dir, incident)
        except OSError as exc:
            # Fail closed: nothing more is fetched or kept, and the run is discarded (runner).
            self.failure = f"an incident record could not be written: {exc.strerror or exc}"
            logger.error("withheld by blocklist %s; %s; the crawl stops", hit.list_id,
                         self.failure)
        self.incidents += 1
        logger.warning(WITHHELD_LOG, hit.list_id)
        if incident.source_id and incident.source_id not in self.suspended:
            self.suspended.add(incident.source_id)
            self.state().suspend(incident.source_id,
                                 SUSPEND_REASON.format(incident=incident.incident_id))
            logger.warning("source %s suspended pending review", incident.source_id)
        return incident.incident_id


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return None if value is None else str(value)
