"""pipeline.reports.attribution: the ATTRIBUTION file (`report NAME --format attribution`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers_config import source_doc, write_config
from helpers_runs import make_item, write_run

from pipeline.build.builder import build_manifest
from pipeline.registry.config import load_config
from pipeline.reports.attribution import credit_line, licence_label, render_attribution
from pipeline.reports.formats import render_report

AURORA = "https://aurora.example/gallery/"
BIRCH = "https://birch.example/gallery/"
PIER = AURORA + "d.jpg"
BY_SA_DE = "https://creativecommons.org/licenses/by-sa/4.0/deed.de"
BY = "https://creativecommons.org/licenses/by/4.0/"
ZERO = "https://creativecommons.org/publicdomain/zero/1.0/"


@pytest.mark.parametrize(
    ("spdx", "label", "url"),
    [
        ("CC-BY-4.0", "CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/"),
        ("CC-BY-SA-3.0-DE", "CC BY-SA 3.0 DE",
         "https://creativecommons.org/licenses/by-sa/3.0/de/"),
        ("CC-BY-NC-SA-2.0-FR", "CC BY-NC-SA 2.0 FR",
         "https://creativecommons.org/licenses/by-nc-sa/2.0/fr/"),
        ("CC-BY-NC-ND-1.0", "CC BY-NC-ND 1.0",
         "https://creativecommons.org/licenses/by-nd-nc/1.0/"),
        ("LicenseRef-CC-BY-2.0-DE", "CC BY 2.0 DE",
         "https://creativecommons.org/licenses/by/2.0/de/"),
        ("CC0-1.0", "CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/"),
        ("CC-PDM-1.0", "Public Domain Mark 1.0",
         "https://creativecommons.org/publicdomain/mark/1.0/"),
        ("PDDL-1.0", "PDDL-1.0", "https://spdx.org/licenses/PDDL-1.0.html"),
        ("MIT OR CC-BY-4.0", "MIT OR CC-BY-4.0", None),
        ("LicenseRef-example.com-terms-0123456789", "LicenseRef-example.com-terms-0123456789",
         None),
    ],
)
def test_licence_label(spdx: str, label: str, url: str | None) -> None:
    assert licence_label(spdx) == (label, url)


def test_credit_line_tasl_parts() -> None:
    assert credit_line(
        title="Dawn", author="Ana Ruiz", licence="CC-BY-4.0", licence_url=None,
        source_url=AURORA + "1.jpg",
    ) == (
        '"Dawn" by Ana Ruiz is licensed under CC BY 4.0 '
        "(https://creativecommons.org/licenses/by/4.0/). Source: " + AURORA + "1.jpg"
    )
    # The licence URL found with the evidence wins over the canonical deed.
    assert credit_line(
        title=None, author=None, licence="CC0-1.0",
        licence_url="http" + ZERO[5:] + "legalcode", source_url=None,
    ) == f"Image is marked with CC0 1.0 ({'http' + ZERO[5:]}legalcode)."
    # A part nobody gave is left out, never invented.
    assert credit_line(title=None, author=None, licence=None, licence_url=None,
                       source_url="u") == "Image; licence not stated. Source: u"


def _manifest(tmp_path: Path, items_of, name: str = "set") -> Path:
    root = tmp_path / "configs"
    config = write_config(root, [source_doc("aurora"), source_doc("birch")])
    a, b = config.sources["aurora"], config.sources["birch"]
    data = tmp_path / "data"
    write_run(data, "run-1", items_of(a, b), [])
    build_manifest(load_config(root), data, name)
    return data


def _items(a, b):
    return [
        make_item(b, BIRCH + "z.jpg", creator="Zoe Park", caption="Fog\nover the bay",
                  licence="CC-BY-SA-4.0", licence_url=BY_SA_DE),
        make_item(a, AURORA + "b.jpg", creator="Ana Ruiz", caption="Dusk"),
        make_item(a, AURORA + "a.jpg", creator="Ana Ruiz", caption="Dawn",
                  attribution='"Dawn" by Ana Ruiz, CC BY 4.0, as the page asks'),
        make_item(a, AURORA + "c.jpg", creator=None, caption=None, licence="CC0-1.0"),
        make_item(a, AURORA + "d.jpg", creator="Ben Ode", caption="Pier",
                  attribution=f'"Pier" by Ben Ode is licensed under CC BY 4.0. Source: {PIER}'),
        # Not published: licence outside the policy, and a duplicate of b.jpg's bytes.
        make_item(a, AURORA + "nc.jpg", creator="Ana Ruiz", licence="CC-BY-NC-4.0"),
        make_item(b, BIRCH + "dup.jpg", content=(AURORA + "b.jpg").encode(), creator="Zoe Park"),
    ]


EXPECTED = f"""ATTRIBUTION

Dataset: set v1 (manifests/set/v1)
Items: 5 from 2 source(s)

Every image in this dataset is credited below in the form Creative Commons recommends
(title, author, source, licence), grouped by source and then by creator.

{"=" * 72}
Source: Aurora Collective (aurora): 4 item(s)
{"=" * 72}

Creator: Ana Ruiz
- "Dawn" by Ana Ruiz, CC BY 4.0, as the page asks Source: {AURORA}a.jpg
- "Dusk" by Ana Ruiz is licensed under CC BY 4.0 ({BY}). Source: {AURORA}b.jpg

Creator: Ben Ode
- "Pier" by Ben Ode is licensed under CC BY 4.0. Source: {PIER}

Creator: (creator not stated)
- Image is marked with CC0 1.0 ({ZERO}). Source: {AURORA}c.jpg

{"=" * 72}
Source: Birch Collective (birch): 1 item(s)
{"=" * 72}

Creator: Zoe Park
- "Fog over the bay" by Zoe Park is licensed under CC BY-SA 4.0 ({BY_SA_DE}). Source: {BIRCH}z.jpg
"""


def test_attribution_file_is_grouped_and_ordered(tmp_path: Path) -> None:
    data = _manifest(tmp_path, _items)
    text = render_attribution(data, "set")
    assert text == EXPECTED
    assert render_report(data, "set@v1", "attribution") == text


def test_attribution_is_byte_identical_whatever_the_input_order(tmp_path: Path) -> None:
    first = render_attribution(_manifest(tmp_path / "one", _items), "set").encode()
    reversed_ = render_attribution(
        _manifest(tmp_path / "two", lambda a, b: _items(a, b)[::-1]), "set"
    ).encode()
    assert first == reversed_
    assert first == render_attribution(tmp_path / "one" / "data", "set@v1").encode()


def test_attribution_header_names_the_version(tmp_path: Path) -> None:
    data = _manifest(tmp_path, _items)
    build_manifest(load_config(tmp_path / "configs"), data, "set")
    v2 = render_attribution(data, "set")
    assert v2.splitlines()[2] == "Dataset: set v2 (manifests/set/v2)"
    assert v2.split("\n", 3)[3] == EXPECTED.split("\n", 3)[3]


def test_attribution_of_an_empty_manifest(tmp_path: Path) -> None:
    data = _manifest(tmp_path, lambda a, b: [])
    text = render_attribution(data, "set")
    assert "Items: 0 from 0 source(s)" in text and "Source:" not in text


def test_cli_writes_the_attribution_file(tmp_path: Path) -> None:
    data = _manifest(tmp_path, _items)

    def clearance(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "--config", str(tmp_path / "configs"),
             "--data", str(data), *args],
            capture_output=True, text=True, timeout=120, check=False,
        )

    out = tmp_path / "ATTRIBUTION"
    written = clearance("report", "set", "--format", "attribution", "--out", str(out))
    assert written.returncode == 0, written.stderr
    assert out.read_text(encoding="utf-8") == EXPECTED
    printed = clearance("report", "set@v1", "--format", "attribution")
    assert printed.returncode == 0 and printed.stdout == EXPECTED


def test_a_crawl_credit_naming_its_page_is_not_given_a_second_source() -> None:
    from pipeline.reports.attribution import _credit

    line = "Image is licensed under CC BY 4.0 (https://x). Source: https://h.example/page.html"
    row = {"url": "https://h.example/img/1.jpg", "attribution": line}
    assert _credit(row) == line
    bare = {"url": "https://h.example/img/1.jpg", "attribution": "Image by Ana, CC BY 4.0"}
    assert _credit(bare) == "Image by Ana, CC BY 4.0 Source: https://h.example/img/1.jpg"
