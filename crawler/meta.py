"""Request meta keys: what a request carries from the component that made it to the next ones.

One place for the vocabulary every gate, stage and the spider share (Scrapy's own keys, such
as ``redirect_urls`` and ``download_maxsize``, keep their names).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scrapy import Request

    from crawler.signals import SignalResult

META_SOURCE = "clearance_source"  # id of the source whose scope admitted the request
META_PAGE = "clearance_page_url"  # the page the URL was found on
META_KIND = "clearance_kind"  # "page" | "image" | "c2pa_manifest"
META_POLICY = "clearance_policy_file"  # robots.txt, tdmrep.json, ai.txt (fetched by a gate)
META_DEPTH = "clearance_depth"  # link depth from the start URLs
META_IMAGE = "clearance_image"  # what the page said about an image (caption, rights markup)
META_SIGNALS = "clearance_signals"  # results of the pre-fetch signal gates, per check label
META_TOO_LARGE = "clearance_too_large"  # why SizeGuard stopped the download
META_RECEIVED = "clearance_bytes_received"  # SizeGuard's running count
META_EARLIER = "clearance_earlier"  # the row a 304 re-uses (crawler.conditional.Earlier)


def record_signal(request: Request, result: SignalResult, label: str | None = None) -> None:
    """Keep the latest result per check label on the request (redirect hops overwrite)."""
    row = result.as_row()
    row["check"] = label or result.check
    request.meta.setdefault(META_SIGNALS, {})[row["check"]] = row
