"""Reports of one manifest version, for the people who must read it.

`provenance` gathers the facts of a version (the JSON report), `markdown` renders them,
`attribution` writes the ATTRIBUTION file, `formats` names the formats and renders any of them.
A new format is a module here with a render function, added to `formats`.

May import: registry, runs, build.
"""
