"""The registry: what may be crawled and kept, declared by the curator and kept by the tool.

Configs (`config`: clearance.yaml and sources/*.yaml, validated), consent scope (`scope`),
eligibility (`eligibility`), licences (`spdx`: parsing and normalisation; `licences`: the
allow-list test, presets, ranking), the starter configs (`starter`) and the operational state
of sources in `data/state.sqlite` (`state`: suspensions, schedule records).

May import: runs.
"""
