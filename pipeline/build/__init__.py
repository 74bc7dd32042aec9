"""Build and curation: completed runs -> a manifest version, atomic and reproducible.

`filters` are the build-stage filters (one base: `filter` decides, the base counts and records
every exclusion), `builder` runs them and commits `data/manifests/<name>/v<N>/`, `versions`
says where versions live and resolves `NAME@vN`. `takedowns` matches takedowns over Arrow
tables (the build's filter and `impact` share it), `impact` finds the versions that held what
a takedown names, `removals` counts per reason what left since the previous version, `latest`
keeps only each URL's latest fetch, `optouts` gathers the contributor opt-out lists. A new
build filter is a `BuildFilter` subclass in `filters`, added to `default_filters`.

May import: registry, runs, safety.
"""
