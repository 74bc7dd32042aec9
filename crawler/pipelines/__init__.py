"""The crawl's per-item stages, as Scrapy item pipelines: one job each, in the flow's order.

The spider fetches an image and yields a :class:`crawler.items.FetchedImage`; these stages
decide what becomes of it, in the order :mod:`crawler.addon` gives them (one place):

    100 screening  hashes, bounded decode + PDQ, blocklist match: a hit leaves only its
                   incident (nothing after this stage sees it, nothing is recorded)
    200 optout     opt-out signals on the response: a page's refusal inherited, the image's
                   headers, then its embedded metadata (XMP, C2PA; read only now, of a
                   screened image, with the rights evidence in the same pass)
    300 rights     the licence, from every piece of evidence (crawler.rights.resolve)
    400 rows       the row, with every check's evidence, in contract column order
    900 writer     the run's items.parquet (streamed; committed at the end of the crawl)

Why item pipelines and not one stage chain: they are Scrapy's own shape for per-item work
(``ITEM_PIPELINES`` priorities are the order a reader sees, async ``process_item`` keeps the
reactor free, a ``DropItem`` ends an item), and a user can insert a stage of their own at a
priority between two of ours. A stage that refuses records the rejection at its stage and
drops the item (:func:`crawler.items.refuse`); a new opt-out signal read from a response goes
into :mod:`crawler.pipelines.optout`, one read before the fetch into a gate in
:mod:`crawler.downloadermiddlewares`.
"""
