"""Reports of one manifest version, for the people who must read it.

`provenance` gathers the facts of a version (the JSON report: one model), `markdown` and
`html` render them, `eusummary` fills the EU AI Act public summary, `attribution` writes the
ATTRIBUTION file, `formats` names the formats and renders any of them (the Croissant document
is `pipeline.build.croissant`, as every build writes it).
A new format is a module here with a render function, added to `formats`.

May import: registry, runs, build.
"""
