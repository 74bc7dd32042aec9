"""`clearance init`: a commented starter config directory that validates as written."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from pathlib import Path

from pipeline.registry.schema import FILES, SCHEMA_DIR, settings_schema, source_schema

SETTINGS = """\
# yaml-language-server: $schema=schema/clearance.schema.json
# Clearance settings. Every key is documented in the README ("Config reference").
user_agent: "ClearanceBot/0.1 (+https://example.org/clearance-bot)"   # sent with every request
robots_token: ClearanceBot        # the product token matched (exactly) in robots.txt groups
intended_use: ai-training         # every source's consent must list this use
licences:
  allow: [CC0-1.0, CC-BY-4.0, CC-BY-SA-4.0, PDDL-1.0]   # SPDX ids or expressions
  # preset: commercial-ai-training  # adds named sets (README "Licences"); research adds NC
age_verification:
  accepted_methods: [government-id, platform-kyc, records-2257]
  max_age_days: 730               # a verification older than this no longer counts
signals: {}                       # opt-out checks, all on; e.g. {c2pa: false} turns one off
exclude_minors: true              # metadata disclosing a model under 18 excludes the item
# Hash lists every fetched image is screened against before anything about it is kept (README
# "Hash lists", "Incidents"); kinds: sha256 sha1 md5 pdq url-sha256 url-sha1 url-md5. Keep the
# files mode 600. e.g.
#   - {id: partner-sha256, kind: sha256, path: blocklists/partner.txt}
#   - {id: partner-pdq, kind: pdq, path: blocklists/partner-pdq.txt, threshold: 31}
blocklists: []
screening: {pdq_dihedral: false}  # true: also match the 8 rotations/mirrors of each image
# Who files hotline reports for blocklist hits (copied into each incident record; README
# "Incidents"): incidents: {reporting_organisation: "...", contact: "..."}
incidents: {}
limits: {max_bytes: 20000000, max_pixels: 50000000, max_pages_per_source: 10000}
"""

SOURCE = """\
# yaml-language-server: $schema=../schema/source.schema.json
# One opted-in source per file; `id` must equal the file name.
id: example-source
name: Example Source (replace me)
start_urls: ["https://example.org/gallery/"]
# URL prefixes the consent covers; nothing outside them is ever requested.
scope: ["https://example.org/gallery/"]
allow_private_network: false      # true only for sources served on a private network
consent:
  id: C-EXAMPLE-1
  status: active                  # active | suspended | revoked
  granted_by: "Example Org, by its legal representative"
  granted_at: {granted}
  expires_at: {expires}
  uses: [ai-training, research]
  evidence: {{uri: "consent/example-consent.txt", sha256: "{evidence_sha}"}}
age_verification:
  id: AV-EXAMPLE-1
  method: government-id
  verified_by: "Example Verifier Ltd"
  verified_at: {granted}
  expires_at: {expires}
licence: {{default: CC-BY-4.0}}     # only for items that carry no licence evidence of their own
crawl: {{schedule: "0 3 * * 1", max_depth: 6, download_delay: 0.25}}
"""

EVIDENCE = """\
Replace this file with the signed consent document (or a pointer to it) and update the
sha256 in sources/example-source.yaml: `sha256sum consent/example-consent.txt`.
"""


def write_starter(config_dir: Path, today: date | None = None) -> list[Path]:
    """Write the starter set; refuse (FileExistsError) rather than overwrite anything."""
    today = today or date.today()
    files = {
        config_dir / "clearance.yaml": SETTINGS,
        config_dir / "consent" / "example-consent.txt": EVIDENCE,
    }
    evidence_sha = hashlib.sha256(EVIDENCE.encode()).hexdigest()
    files[config_dir / "sources" / "example-source.yaml"] = SOURCE.format(
        granted=today.isoformat(),
        expires=(today + timedelta(days=365)).isoformat(),
        evidence_sha=evidence_sha,
    )
    # The JSON Schemas the starter files name on their first line, for editors.
    for kind, schema in (("clearance", settings_schema()), ("source", source_schema())):
        files[config_dir / SCHEMA_DIR / FILES[kind]] = json.dumps(schema, indent=2) + "\n"
    existing = [p for p in files if p.exists()]
    if existing:
        raise FileExistsError(", ".join(str(p) for p in existing))
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(files)
