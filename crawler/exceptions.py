"""The crawler's exception vocabulary."""

from __future__ import annotations

from scrapy.exceptions import DropItem, IgnoreRequest


class Refused(IgnoreRequest):
    """A gate refused a request; the rejection row has already been written.

    Errbacks that see this exception must not record the URL again.
    """

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class ItemRefused(DropItem):
    """A per-item stage refused an image; its rejection row has already been written."""


class ItemWithheld(DropItem):
    """A blocklist hit, a hit's neighbour or an image of a suspended source: dropped with no
    row and no rejection (the incident, if any, is already written)."""
