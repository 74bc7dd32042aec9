"""Safety: hash lists, matching and incidents; a blocklist hit leaves no trace but an incident.

`hashlists` loads and validates the `blocklists:` (the `Screener`), `matching` holds the
in-memory indexes and the PDQ helpers (distance, neighbours, reliability), `urls` the URL
normalisation URL lists hash, `incidents` the restricted records under `data/incidents/`. The
crawl screens with these (crawler/pipelines/screening.py); `clearance screen` re-screens stored
rows with them (pipeline/lifecycle/rescreen.py).

May import: registry, runs.
"""
