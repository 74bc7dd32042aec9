"""After the first build: what happens to sources, runs and versions over time.

`schedule` (which sources are due), `rescreen` (`clearance screen`: stored rows matched again
when the hash lists change, rows withdrawn from runs and versions).

May import: registry, runs, safety, build.
"""
