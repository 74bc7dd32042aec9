"""After the first build: what happens to sources, runs and versions over time.

`schedule` (which sources are due, which records lapse soon), `scheduler` (the loop of
`clearance schedule run`: lock, jitter, crawl children, stop signals), `rescreen`
(`clearance screen`: stored rows matched again when the hash lists change, rows withdrawn from
runs and versions).

May import: registry, runs, safety, build.
"""
