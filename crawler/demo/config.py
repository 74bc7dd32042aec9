"""Config directories for the demo, the tests and the benchmark, written from plain dicts.

:func:`write_demo_configs` writes the commented configuration that ``clearance demo`` crawls
(and that ``configs/`` at the repository root holds, for a server on 127.0.0.1:8000).
:func:`settings_dict`, :func:`source_dict` and :func:`write_config_dir` build valid configs
with dates relative to today, for tests and benchmarks that need a source in a few lines.

Regenerate the example with ``python -m crawler.demo.config configs http://127.0.0.1:8000``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from pipeline.registry.config import SETTINGS_FILE, SOURCES_DIR

USER_AGENT = "ClearanceBot/0.1 (+https://example.org/clearance-bot)"
ROBOTS_TOKEN = "ClearanceBot"
INTENDED_USE = "ai-training"
ALLOWED_LICENCES = ["CC0-1.0", "CC-BY-4.0", "CC-BY-SA-4.0", "PDDL-1.0"]
ACCEPTED_AV_METHODS = ["government-id", "platform-kyc", "records-2257"]


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``overrides``; mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def settings_dict(**overrides: Any) -> dict[str, Any]:
    """A valid ``clearance.yaml`` as a dict (no blocklists), deep-merged with ``overrides``."""
    base: dict[str, Any] = {
        "user_agent": USER_AGENT,
        "robots_token": ROBOTS_TOKEN,
        "intended_use": INTENDED_USE,
        "licences": {"allow": list(ALLOWED_LICENCES)},
        "age_verification": {"accepted_methods": list(ACCEPTED_AV_METHODS), "max_age_days": 730},
        "signals": {},
        "exclude_minors": True,
        "blocklists": [],
        "limits": {
            "max_bytes": 20_000_000,
            "max_pixels": 50_000_000,
            "max_pages_per_source": 10_000,
        },
    }
    return deep_merge(base, overrides)


def source_dict(
    source_id: str, start_urls: list[str], today: date | None = None, **overrides: Any
) -> dict[str, Any]:
    """A valid, eligible ``sources/<id>.yaml`` as a dict, deep-merged with ``overrides``.

    Consent is active for ``ai-training`` (granted 30 days ago, expiring in a year), age
    verification is by government ID (30 days old, valid two years), ``scope`` defaults to
    ``start_urls``, ``allow_private_network`` is true (test servers live on 127.0.0.1), there is
    no licence default and no download delay.
    """
    today = today or date.today()
    base: dict[str, Any] = {
        "id": source_id,
        "name": f"Source {source_id}",
        "start_urls": list(start_urls),
        "scope": list(overrides.get("scope", start_urls)),
        "allow_private_network": True,
        "consent": {
            "id": f"C-{source_id}",
            "status": "active",
            "granted_by": f"{source_id}, by its legal representative",
            "granted_at": today - timedelta(days=30),
            "expires_at": today + timedelta(days=365),
            "uses": [INTENDED_USE, "research"],
            "evidence": {
                "uri": f"evidence/{source_id}.pdf",
                "sha256": hashlib.sha256(f"consent of {source_id}".encode()).hexdigest(),
            },
        },
        "age_verification": {
            "id": f"AV-{source_id}",
            "method": "government-id",
            "verified_by": "Example Verifier Ltd",
            "verified_at": today - timedelta(days=30),
            "expires_at": today + timedelta(days=730),
        },
        "licence": {"default": None},
        "crawl": {"max_depth": 6, "download_delay": 0.0},
    }
    return deep_merge(base, overrides)


def write_config_dir(
    config_dir: str | Path, settings: Mapping[str, Any], sources: Iterable[Mapping[str, Any]]
) -> Path:
    """Write ``clearance.yaml`` and ``sources/<id>.yaml`` (uncommented); return the directory."""
    root = Path(config_dir)
    (root / SOURCES_DIR).mkdir(parents=True, exist_ok=True)
    _dump(root / SETTINGS_FILE, dict(settings))
    for source in sources:
        _dump(root / SOURCES_DIR / f"{source['id']}.yaml", dict(source))
    return root


def _dump(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


# --------------------------------------------------------------------------- the demo

SETTINGS_COMMENTS = {
    "user_agent": "Sent on every request; the URL tells a site owner who we are.",
    "robots_token": "The product token matched against User-agent lines in robots.txt.",
    "intended_use": "Every source's consent must list this use, or the source is skipped.",
    "licences": "Licences an item may carry to enter a manifest (SPDX ids or expressions).",
    "age_verification": "Which age-verification records count, and how old they may be.",
    "signals": "Opt-out checks, all honoured by default; set one to false to turn it off.",
    "exclude_minors": "Metadata disclosing a model under 18 excludes the item.",
    "blocklists": (
        "Hash lists every image is screened against; paths are relative to this directory.\n"
        "A hit is never stored: it becomes an incident and suspends the source."
    ),
    "limits": "Per-item byte and pixel caps (decompression bombs), pages per source per run.",
}

SOURCE_COMMENTS = {
    "id": "Must equal the file name (sources/<id>.yaml).",
    "name": "Shown in reports.",
    "start_urls": "Where the crawl begins; every one must lie inside scope.",
    "scope": (
        "URL prefixes the consent covers: nothing outside them is ever requested\n"
        "(redirects and images included; robots.txt and other policy files of these hosts\n"
        "are read too)."
    ),
    "allow_private_network": (
        "Loopback and private addresses are refused unless this is true; the demo\n"
        "site is served on 127.0.0.1, so it is true here."
    ),
    "consent": "The opt-in: without an active, unexpired consent for intended_use, no crawl.",
    "consent.status": "active | suspended | revoked",
    "consent.uses": "Must include intended_use from clearance.yaml.",
    "consent.evidence": "The signed agreement (relative to this directory) and its sha256.",
    "age_verification": "Contributors' age verification; missing or lapsed: no crawl.",
    "age_verification.method": "One of age_verification.accepted_methods in clearance.yaml.",
    "licence": (
        "default applies only to items that carry no licence evidence of their own\n"
        "(rel=license, JSON-LD, XMP, IPTC, C2PA); null: such items are excluded (no_licence)."
    ),
    "crawl": (
        "schedule: cron for `clearance schedule`; max_depth: links from a start URL;\n"
        "download_delay: seconds between requests to the host."
    ),
}


def _comment(text: str, indent: str) -> list[str]:
    return [f"{indent}# {line}" for line in text.splitlines()]


def commented_yaml(
    data: Mapping[str, Any], comments: Mapping[str, str], header: str = "", _path: str = ""
) -> str:
    """YAML for ``data`` with ``comments`` (keyed by dotted path) above their keys.

    A mapping is expanded when one of its keys has a comment; other values are written in
    flow style on one line.
    """
    depth = _path.count(".") + 1 if _path else 0
    indent = "  " * depth
    lines = _comment(header, "") + ([""] if header else [])
    for key, value in data.items():
        dotted = f"{_path}.{key}" if _path else str(key)
        if dotted in comments:
            lines.extend(_comment(comments[dotted], indent))
        if isinstance(value, Mapping) and any(c.startswith(dotted + ".") for c in comments):
            lines.append(f"{indent}{key}:")
            lines.append(commented_yaml(value, comments, "", dotted).rstrip("\n"))
        else:
            flow = None if isinstance(value, Mapping | list) else False
            text = yaml.safe_dump(
                {key: value}, default_flow_style=flow, sort_keys=False, width=10_000
            )
            lines.append(indent + text.rstrip("\n").replace("\n", "\n" + indent))
        if depth == 0:
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _last_day_of_previous_month(today: date) -> date:
    return today.replace(day=1) - timedelta(days=1)


def _evidence(config_dir: Path, source_id: str, text: str) -> dict[str, str]:
    relative = f"evidence/{source_id}-consent.txt"
    path = config_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return {"uri": relative, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _demo_source(
    config_dir: Path,
    source_id: str,
    name: str,
    start: str,
    scope: list[str],
    granted: date,
    expires: date,
    verified: date,
    licence_default: str | None,
    schedule: str,
) -> dict[str, Any]:
    evidence = _evidence(
        config_dir,
        source_id,
        f"DEMO ONLY - not a real agreement.\n{name} consents to the use of the works it\n"
        f"publishes under {', '.join(scope)} for ai-training and research,\n"
        f"from {granted.isoformat()} until {expires.isoformat()}.\n",
    )
    return {
        "id": source_id,
        "name": name,
        "start_urls": [start],
        "scope": scope,
        "allow_private_network": True,
        "consent": {
            "id": f"C-DEMO-{source_id.upper()}",
            "status": "active",
            "granted_by": f"{name}, by its legal representative",
            "granted_at": granted,
            "expires_at": expires,
            "uses": [INTENDED_USE, "research"],
            "evidence": evidence,
        },
        "age_verification": {
            "id": f"AV-DEMO-{source_id.upper()}",
            "method": "government-id",
            "verified_by": "Example Verifier Ltd",
            "verified_at": verified,
            "expires_at": verified + timedelta(days=730),
        },
        "licence": {"default": licence_default},
        "crawl": {"schedule": schedule, "max_depth": 6, "download_delay": 0.0},
    }


def write_demo_configs(config_dir: Path, base_url: str, today: date | None = None) -> None:
    """Write the demo's ``clearance.yaml``, three sources, their evidence and blocklists.

    ``aurora-art`` and ``borealis-photo`` are eligible (``borealis-photo`` has no licence
    default); ``lapsed-archive``'s consent expired at the end of last month, so ``crawl`` skips
    it. Dates are relative to ``today`` so the demo keeps working.
    """
    today = today or date.today()
    base = base_url.rstrip("/")
    config_dir = Path(config_dir)
    (config_dir / SOURCES_DIR).mkdir(parents=True, exist_ok=True)
    blocklists = config_dir / "blocklists"
    blocklists.mkdir(exist_ok=True)
    # Lists that match nothing in the sample site: the demo shows screening, not an incident.
    (blocklists / "demo-sha256.txt").write_text(
        "# Demo hash list: one hex sha256 per line; # starts a comment.\n"
        + hashlib.sha256(b"not an image of the demo site").hexdigest()
        + "\n",
        encoding="utf-8",
    )
    (blocklists / "demo-pdq.txt").write_text(
        "# Demo PDQ list: 64 hex digits (256 bits) per line, ThreatExchange's canonical form.\n"
        + hashlib.sha256(b"clearance demo pdq").hexdigest()
        + "\n",
        encoding="utf-8",
    )
    for written in ("demo-sha256.txt", "demo-pdq.txt"):
        (blocklists / written).chmod(0o600)  # partner lists are restricted: show the habit
    settings = settings_dict(
        blocklists=[
            {"id": "demo-sha256", "kind": "sha256", "path": "blocklists/demo-sha256.txt"},
            {"id": "demo-pdq", "kind": "pdq", "path": "blocklists/demo-pdq.txt", "threshold": 31},
        ]
    )
    (config_dir / SETTINGS_FILE).write_text(
        commented_yaml(
            settings,
            SETTINGS_COMMENTS,
            header=(
                "Clearance settings for the bundled demo site (DESIGN.md: public contract).\n"
                f"The sources crawl {base}/. To crawl this copy by hand, serve the site\n"
                "there: `python -m crawler.demo.server --port 8000`. `clearance demo` writes a\n"
                "fresh copy (its own port, dates relative to the day it runs); so does\n"
                "`python -m crawler.demo.config DIR BASE_URL`."
            ),
        ),
        encoding="utf-8",
    )
    lapsed_end = _last_day_of_previous_month(today)
    sources = [
        _demo_source(
            config_dir,
            "aurora-art",
            "Aurora Art Collective",
            f"{base}/aurora/gallery/",
            [f"{base}/aurora/gallery/", f"{base}/cdn/aurora/"],
            today - timedelta(days=90),
            today + timedelta(days=730),
            today - timedelta(days=100),
            "CC-BY-4.0",
            "0 3 * * 1",
        ),
        _demo_source(
            config_dir,
            "borealis-photo",
            "Borealis Photo Cooperative",
            f"{base}/borealis/",
            [f"{base}/borealis/"],
            today - timedelta(days=60),
            today + timedelta(days=730),
            today - timedelta(days=60),
            None,
            "30 4 * * *",
        ),
        _demo_source(
            config_dir,
            "lapsed-archive",
            "Lapsed Archive (consent expired)",
            f"{base}/lapsed/",
            [f"{base}/lapsed/"],
            lapsed_end - timedelta(days=365),
            lapsed_end,
            lapsed_end - timedelta(days=370),
            "CC0-1.0",
            "0 5 1 * *",
        ),
    ]
    headers = {
        "aurora-art": "Eligible. Images live on a CDN path, covered by a second scope prefix.",
        "borealis-photo": "Eligible, with no licence default: unlicensed images are excluded.",
        "lapsed-archive": "Consent expired last month: `clearance crawl` skips it, sends nothing.",
    }
    for source in sources:
        path = config_dir / SOURCES_DIR / f"{source['id']}.yaml"
        path.write_text(
            commented_yaml(source, SOURCE_COMMENTS, header=headers[source["id"]]), encoding="utf-8"
        )


def main(argv: list[str] | None = None) -> int:
    """``python -m crawler.demo.config DIR BASE_URL``: write the demo configs into DIR."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(main.__doc__, file=sys.stderr)
        return 2
    write_demo_configs(Path(args[0]), args[1])
    print(f"wrote {args[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
