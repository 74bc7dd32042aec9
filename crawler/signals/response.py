"""Response-level opt-out signals: headers, HTML meta and embedded image metadata.

Pre-fetch signals (robots.txt, AI-agent groups, Content-Usage rules in robots.txt, tdmrep.json,
ai.txt) are gates in :mod:`crawler.downloadermiddlewares`. What can only be read from a response
is evaluated here, each check only when its switch in ``clearance.yaml signals:`` is on:

* on a page: ``Content-Usage``, ``X-Robots-Tag`` and ``tdm-reservation`` headers, and
  ``<meta name="robots">`` / ``<meta name="ClearanceBot">`` / ``<meta name="tdm-reservation">``
  (TDMRep header and meta combined in the spec's processing priority: meta supersedes).
  They apply to the images found on the page (labelled ``page.*`` on the image's row); a page
  that refuses means its images are refused without being fetched.
* on an image: the same headers, then XMP (IPTC/PLUS data mining, minor models) and C2PA/CAWG
  training-mining assertions read from the bytes.

Every result is kept with its raw evidence; the first refusal decides the reason. One place is
stricter than TDMRep's precedence on purpose: a location reserved by ``tdmrep.json`` is never
fetched, so a ``tdm-reservation: 0`` header on it (which the spec lets supersede the file) is
never seen. The reserved path stays unrequested, as DESIGN.md promises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crawler.signals import NONE, SignalResult, aipref, tdmrep, xrobots
from crawler.signals.c2pa_manifest import (
    C2paInfo,
    c2pa_signals,
    has_c2pa_jumbf,
    read_c2pa,
    remote_manifest_url,
)
from crawler.signals.htmlmeta import MAX_HTML_BYTES
from crawler.signals.xmp import XmpInfo, check_xmp
from pipeline.registry.config import Settings


@dataclass
class Verdict:
    """Labelled results of one response's checks, and the first refusal among them."""

    results: list[tuple[str, SignalResult]] = field(default_factory=list)

    def add(self, label: str, result: SignalResult) -> None:
        self.results.append((label, result))

    @property
    def refusal(self) -> tuple[str, SignalResult] | None:
        return next(((label, r) for label, r in self.results if r.denies), None)

    def rows(self, prefix: str = "") -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for label, result in self.results:
            row = result.as_row()
            row["check"] = f"{prefix}{label}"
            out[f"{prefix}{label}"] = row
        return out


def header_checks(
    headers: Any, settings: Settings, verdict: Verdict, *, tdm: bool = True
) -> None:
    switches, token = settings.signals, settings.robots_token
    if switches.content_usage:
        verdict.add("content_usage.header", aipref.content_usage_from_headers(headers))
    if switches.x_robots_tag:
        verdict.add("x_robots_tag", xrobots.from_headers(headers, token, for_image=True))
    if switches.tdmrep and tdm:
        verdict.add("tdmrep.header", tdmrep.from_headers(headers))


def page_verdict(headers: Any, body: bytes, settings: Settings) -> Verdict:
    """Signals of a page that its images inherit."""
    verdict = Verdict()
    header_checks(headers, settings, verdict, tdm=False)
    # A meta tag can only be there if its name is: skip the second HTML parse when it is not.
    lowered = body[:MAX_HTML_BYTES].lower()
    token = settings.robots_token.lower().encode()
    if settings.signals.meta_robots:
        if b"robots" in lowered or token in lowered:
            result = xrobots.from_html_meta(body, settings.robots_token, for_image=True)
        else:
            result = SignalResult(xrobots.META_CHECK, NONE, detail="no robots meta tag")
        verdict.add("meta_robots", result)
    if settings.signals.tdmrep:
        if b"tdm-" in lowered:
            meta = tdmrep.from_html_meta(body)
        else:
            meta = SignalResult(tdmrep.CHECK, NONE, detail="HTML meta: no tdm-reservation")
        # The spec's processing priority: HTML meta supersedes the page's headers.
        verdict.add("tdmrep", tdmrep.decide(None, tdmrep.from_headers(headers), meta))
    return verdict


@dataclass(frozen=True)
class EmbeddedMetadata:
    """What an image's bytes say (computed off the reactor thread)."""

    results: list[tuple[str, SignalResult]]
    c2pa_remote_url: str | None
    # The parsed XMP, for the licence stage (xmp_read: parsed here; None then means "no XMP").
    xmp: XmpInfo | None = None
    xmp_read: bool = False
    # The embedded C2PA store as read for the opt-out check (c2pa_read: read here, so the
    # licence stage does not read it again; None then means "no embedded manifest").
    c2pa_store: dict[str, Any] | None = None
    c2pa_read: bool = False
    rights: Any = None  # crawler.rights.embedded.EmbeddedRights, attached by the spider


def embedded_checks(
    body: bytes, mime: str | None, settings: Settings, remote_manifest: bytes | None = None
) -> EmbeddedMetadata:
    results: list[tuple[str, SignalResult]] = []
    remote_url: str | None = None
    xmp: XmpInfo | None = None
    xmp_read = False
    c2pa_store: dict[str, Any] | None = None
    c2pa_read = False
    if settings.signals.xmp:
        xmp, xmp_results = check_xmp(body, settings.exclude_minors)
        xmp_read = xmp is not None or not any(r.denies for r in xmp_results)
        labels = ("xmp.data_mining", "xmp.minors")
        for i, result in enumerate(xmp_results):
            results.append((labels[i] if i < len(labels) else f"xmp.{i}", result))
    if settings.signals.c2pa:
        reference = remote_manifest_url(body)
        embedded_jumbf = has_c2pa_jumbf(body)
        if embedded_jumbf or reference or remote_manifest is not None:
            info = read_c2pa(body, mime, remote_manifest)
        else:
            info = C2paInfo(False, note="no C2PA manifest (no JUMBF box, no remote reference)")
        if not embedded_jumbf:
            c2pa_read = True  # the licence stage reads embedded manifests only: there is none
        elif info.present and not info.remote_read:
            c2pa_store, c2pa_read = info.store, True
        # Only a manifest that is not embedded is worth fetching (and only inside consent).
        if not info.present and not info.error and remote_manifest is None:
            remote_url = info.remote_url
        for result in c2pa_signals(info):
            results.append(("c2pa", result))
    return EmbeddedMetadata(results, remote_url, xmp, xmp_read, c2pa_store, c2pa_read)
