"""Reason codes: the stable vocabulary of every exclusion (DESIGN.md, public contract).

Each code is a module constant so that typos fail at import time, and :data:`ALL` lets tests
and readers check that nothing outside the contract is ever written.
"""

from __future__ import annotations

OUT_OF_SCOPE = "out_of_scope"
PRIVATE_ADDRESS = "private_address"
CONSENT_INACTIVE = "consent_inactive"
AGE_UNVERIFIED = "age_unverified"
ROBOTS_DISALLOWED = "robots_disallowed"
ROBOTS_UNREACHABLE = "robots_unreachable"
ROBOTS_AI_OPTOUT = "robots_ai_optout"
X_ROBOTS_NOAI = "x_robots_noai"
META_NOAI = "meta_noai"
TDM_RESERVED = "tdm_reserved"
CONTENT_USAGE_DISALLOWED = "content_usage_disallowed"
AI_TXT_DISALLOWED = "ai_txt_disallowed"
IPTC_DATA_MINING_PROHIBITED = "iptc_data_mining_prohibited"
C2PA_TRAINING_NOT_ALLOWED = "c2pa_training_not_allowed"
MINOR_DEPICTED = "minor_depicted"
NO_LICENCE = "no_licence"
LICENCE_NOT_ALLOWED = "licence_not_allowed"
LICENCE_CONFLICT = "licence_conflict"
TOO_LARGE = "too_large"
NOT_AN_IMAGE = "not_an_image"
FETCH_FAILED = "fetch_failed"
DUPLICATE = "duplicate"
TAKEDOWN = "takedown"
REVOKED = "revoked"
# An image URL that now answers 404 or 410 (crawl), and at build every row of a URL whose latest
# fetch said so.
GONE = "gone"
# Build: an earlier fetch of a URL that a later run fetched again (a row's url must serve its
# sha256, so only the URL's latest fetch stays).
SUPERSEDED = "superseded"
# A page request of a source whose limits.max_pages_per_source was used up: never sent.
PAGE_LIMIT = "page_limit"

ALL: frozenset[str] = frozenset(
    value for name, value in dict(globals()).items() if name.isupper() and isinstance(value, str)
)

# Reasons that mean a source's own opt-out signal refused (its consent and signals disagree).
OPT_OUTS: frozenset[str] = frozenset({
    ROBOTS_DISALLOWED, ROBOTS_AI_OPTOUT, X_ROBOTS_NOAI, META_NOAI, TDM_RESERVED,
    CONTENT_USAGE_DISALLOWED, AI_TXT_DISALLOWED, IPTC_DATA_MINING_PROHIBITED,
    C2PA_TRAINING_NOT_ALLOWED,
})

# Stages at which an exclusion can happen (the `stage` column of rejections).
STAGE_ELIGIBILITY = "eligibility"
STAGE_CONSENT = "consent"
STAGE_ROBOTS = "robots"
STAGE_SIGNALS = "signals"
STAGE_FETCH = "fetch"
STAGE_IMAGE = "image"
STAGE_LICENCE = "licence"
STAGE_BUILD = "build"
