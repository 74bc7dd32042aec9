#!/usr/bin/env python3
"""Regenerate ``crawler/data/ai_agents.txt`` from the ai.robots.txt project's ``robots.json``.

The list of AI crawler product tokens is data, not code (DESIGN.md: "keep the list as data"):
a robots.txt group that names one of them is read as an AI-training opt-out. The upstream list
(https://github.com/ai-robots-txt/ai.robots.txt, MIT licence) is a JSON object keyed by user-agent
token, each entry with ``operator``, ``respect``, ``function``, ``frequency`` and ``description``.

Usage::

    python tools/update_ai_agents.py PATH_OR_URL [--out FILE] [--label TEXT]

    # e.g. from a local checkout or a downloaded copy
    python tools/update_ai_agents.py ../shared/fixtures/robots/ai.robots.txt_robots.json
    # or straight from upstream (the only time this tool touches the network)
    python tools/update_ai_agents.py \\
        https://raw.githubusercontent.com/ai-robots-txt/ai.robots.txt/main/robots.json

The output is deterministic: tokens sorted case-insensitively, duplicates that differ only in
case kept once, the source's sha256 recorded in the header. Review the diff before committing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import urllib.request
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "crawler" / "data" / "ai_agents.txt"
MAX_BYTES = 5 * 1024 * 1024

MIT_NOTICE = """\
MIT License

Copyright (c) 2024 ai.robots.txt

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE."""


def read_source(source: str) -> bytes:
    """The bytes of ``source``: an http(s) URL or a local path."""
    if source.startswith(("https://", "http://")):
        with urllib.request.urlopen(source, timeout=30) as response:  # noqa: S310 (explicit URL)
            data = response.read(MAX_BYTES + 1)
    else:
        data = Path(source).read_bytes()
    if len(data) > MAX_BYTES:
        raise ValueError(f"{source}: larger than {MAX_BYTES} bytes; not a robots.json")
    return data


def _comment(text: object) -> str:
    """One line of upstream prose, safe inside a ``#`` comment."""
    line = " ".join(str(text or "").split())
    return line if len(line) <= 80 else line[:77] + "..."


def render(data: bytes, source: str) -> str:
    """The ai_agents.txt text for the robots.json bytes ``data``; ``source`` names where from."""
    agents = json.loads(data)
    if not isinstance(agents, dict) or not agents:
        raise ValueError(f"{source}: expected a JSON object keyed by user-agent token")
    seen: dict[str, str] = {}
    for token in sorted(agents, key=lambda t: (t.lower(), t)):
        clean = " ".join(str(token).split())
        if not clean or "#" in clean:
            raise ValueError(f"{source}: unusable user-agent token {token!r}")
        seen.setdefault(clean.lower(), clean)
    digest = hashlib.sha256(data).hexdigest()
    header = [
        "Well-known AI crawler user agents: robots.txt product tokens, one per line.",
        "A robots.txt group that names one of these is read as an AI-training opt-out",
        "(reason robots_ai_optout). Matching is case-insensitive; text after '#' is a comment.",
        "",
        "Derived from robots.json of the ai.robots.txt project",
        "(https://github.com/ai-robots-txt/ai.robots.txt), which lists AI-related crawlers",
        "of all kinds; the trailing comment on each line is that list's 'function' field.",
        f"Source: {source}",
        f"Source sha256: {digest}",
        "Regenerate: python tools/update_ai_agents.py PATH_OR_URL_OF_ROBOTS_JSON",
        "",
        "ai.robots.txt is distributed under this licence:",
        "",
        *MIT_NOTICE.splitlines(),
    ]
    lines = [f"# {line}".rstrip() for line in header]
    lines.append("")
    width = max(len(token) for token in seen.values()) + 2
    for token in seen.values():
        entry = agents.get(token)
        function = _comment(entry.get("function")) if isinstance(entry, dict) else ""
        lines.append(f"{token:<{width}}# {function}".rstrip() if function else token)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="path or http(s) URL of ai.robots.txt's robots.json")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    parser.add_argument(
        "--label", help="how the header names the source (default: the path or URL as given)"
    )
    args = parser.parse_args(argv)
    try:
        text = render(read_source(args.source), args.label or args.source)
    except (OSError, ValueError) as exc:
        print(f"update_ai_agents: {exc}", file=sys.stderr)
        return 1
    args.out.write_text(text, encoding="utf-8")
    count = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    print(f"wrote {count} agents to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
