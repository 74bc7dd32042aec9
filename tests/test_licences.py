"""pipeline/licences.py: SPDX normalisation, CC/ODC licence URLs -> SPDX ids, the allow-list
test, and the licence links found in real third-party pages (../shared/fixtures/html)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from parsel import Selector

from pipeline.licences import LicenceError, is_allowed, licence_from_url, normalise_expression

# --------------------------------------------------------------------------- normalise_expression


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("CC-BY-4.0", "CC-BY-4.0"),
        ("cc-by-4.0", "CC-BY-4.0"),
        ("  cc0-1.0 ", "CC0-1.0"),
        ("Cc-By-Sa-4.0", "CC-BY-SA-4.0"),
        ("pddl-1.0", "PDDL-1.0"),
        ("odbl-1.0", "ODbL-1.0"),
        ("GPL-2.0+", "GPL-2.0-or-later"),
        ("gpl-2.0+", "GPL-2.0-or-later"),
        ("mit or cc-by-4.0", "MIT OR CC-BY-4.0"),
        ("MIT and Apache-2.0", "MIT AND Apache-2.0"),
        ("(mit OR cc0-1.0) and cc-by-4.0", "(MIT OR CC0-1.0) AND CC-BY-4.0"),
        ("gpl-2.0-only with classpath-exception-2.0",
         "GPL-2.0-only WITH Classpath-exception-2.0"),
    ],
)
def test_normalise_expression(given: str, canonical: str) -> None:
    assert normalise_expression(given) == canonical
    # Canonical output is a fixed point.
    assert normalise_expression(canonical) == canonical


@pytest.mark.parametrize(
    "bad",
    ["", "   ", "CC-BY-9.9", "Totally-Free-1.0", "MIT OR", "AND MIT", "MIT WITH NOPE",
     "(MIT", "http://creativecommons.org/licenses/by/4.0/"],
)
def test_normalise_expression_refuses_what_is_not_spdx(bad: str) -> None:
    with pytest.raises(LicenceError):
        normalise_expression(bad)


def test_licence_error_names_the_value_and_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="CC-BY-9.9"):
        normalise_expression("CC-BY-9.9")


# --------------------------------------------------------------------------- licence_from_url


@pytest.mark.parametrize(
    ("url", "spdx"),
    [
        # Creative Commons: codes and versions.
        ("http://creativecommons.org/licenses/by/4.0/", "CC-BY-4.0"),
        ("https://creativecommons.org/licenses/by-sa/4.0/", "CC-BY-SA-4.0"),
        ("https://creativecommons.org/licenses/by-nc-nd/4.0/", "CC-BY-NC-ND-4.0"),
        ("https://creativecommons.org/licenses/by-nc/4.0/", "CC-BY-NC-4.0"),
        ("https://creativecommons.org/licenses/by-nd/4.0/", "CC-BY-ND-4.0"),
        ("https://creativecommons.org/licenses/by-nc-sa/4.0/", "CC-BY-NC-SA-4.0"),
        ("http://creativecommons.org/licenses/by/2.5/", "CC-BY-2.5"),
        ("http://creativecommons.org/licenses/by/3.0/", "CC-BY-3.0"),
        ("http://creativecommons.org/licenses/by-sa/2.0/", "CC-BY-SA-2.0"),
        ("https://creativecommons.org/licenses/by/1.0/", "CC-BY-1.0"),
        # Without the trailing slash, with doubled slashes, in capitals.
        ("https://creativecommons.org/licenses/by/4.0", "CC-BY-4.0"),
        ("https://creativecommons.org//licenses//by/4.0/", "CC-BY-4.0"),
        ("HTTPS://CreativeCommons.ORG/Licenses/BY-SA/4.0/", "CC-BY-SA-4.0"),
        # http / https / www.
        ("https://www.creativecommons.org/licenses/by/4.0/", "CC-BY-4.0"),
        ("http://www.creativecommons.org/licenses/by-nc-nd/3.0/", "CC-BY-NC-ND-3.0"),
        # Ports.
        ("http://creativecommons.org/licenses/by/3.0/de/", "CC-BY-3.0-DE"),
        ("http://creativecommons.org/licenses/by/3.0/de", "CC-BY-3.0-DE"),
        ("https://creativecommons.org/licenses/by/3.0/us/", "CC-BY-3.0-US"),
        ("https://creativecommons.org/licenses/by/2.5/au/", "CC-BY-2.5-AU"),
        ("https://creativecommons.org/licenses/by-sa/2.1/jp/", "CC-BY-SA-2.1-JP"),
        ("https://creativecommons.org/licenses/by-nc-sa/2.0/uk/", "CC-BY-NC-SA-2.0-UK"),
        ("https://creativecommons.org/licenses/by/3.0/igo/", "CC-BY-3.0-IGO"),
        ("https://creativecommons.org/licenses/by-nc-nd/3.0/igo/legalcode",
         "CC-BY-NC-ND-3.0-IGO"),
        ("http://creativecommons.org/licenses/by/3.0/de/deed.en", "CC-BY-3.0-DE"),
        # Deeds, legal code, RDF.
        ("https://creativecommons.org/licenses/by/4.0/deed.fr", "CC-BY-4.0"),
        ("https://creativecommons.org/licenses/by/4.0/deed.zh-hans", "CC-BY-4.0"),
        ("https://creativecommons.org/licenses/by-sa/4.0/legalcode", "CC-BY-SA-4.0"),
        ("https://creativecommons.org/licenses/by-sa/4.0/legalcode.de", "CC-BY-SA-4.0"),
        ("https://creativecommons.org/licenses/by/4.0/rdf", "CC-BY-4.0"),
        # Query strings and fragments do not change the licence.
        ("https://creativecommons.org/licenses/by/4.0/?ref=chooser-v1", "CC-BY-4.0"),
        ("https://creativecommons.org/licenses/by/4.0/#ref-appropriate-credit", "CC-BY-4.0"),
        # CC0 and the public domain mark.
        ("https://creativecommons.org/publicdomain/zero/1.0/", "CC0-1.0"),
        ("http://creativecommons.org/publicdomain/zero/1.0/legalcode", "CC0-1.0"),
        ("https://creativecommons.org/publicdomain/zero/1.0", "CC0-1.0"),
        ("http://www.creativecommons.org/publicdomain/zero/1.0/deed.de", "CC0-1.0"),
        ("https://creativecommons.org/publicdomain/mark/1.0/", "CC-PDM-1.0"),
        # Open Data Commons.
        ("https://opendatacommons.org/licenses/pddl/", "PDDL-1.0"),
        ("https://opendatacommons.org/licenses/pddl/1-0/", "PDDL-1.0"),
        ("http://opendatacommons.org/licenses/pddl/1.0/", "PDDL-1.0"),
        ("https://opendatacommons.org/licenses/odbl/", "ODbL-1.0"),
        ("https://opendatacommons.org/licenses/odbl/1-0/", "ODbL-1.0"),
        ("http://www.opendatacommons.org/licenses/odbl/summary/", "ODbL-1.0"),
        ("https://opendatacommons.org/licenses/by/", "ODC-By-1.0"),
        ("http://opendatacommons.org/licenses/by/1.0/", "ODC-By-1.0"),
    ],
)
def test_licence_from_url(url: str, spdx: str) -> None:
    assert licence_from_url(url) == spdx


@pytest.mark.parametrize(
    "url",
    [
        # The literal in mediawiki_xmp_7.xmp: wrong host, no such licence.
        "http://creativecommons.com/cc-by-2.9",
        # No such version, or a port SPDX does not list: None rather than a guess.
        "https://creativecommons.org/licenses/by/9.9/",
        "https://creativecommons.org/licenses/by/3.0/xx/",
        "https://creativecommons.org/licenses/by/2.5/scotland/",
        "https://creativecommons.org/licenses/by/4.0/foo",
        "https://creativecommons.org/licenses/by/",
        "https://creativecommons.org/licenses/",
        "https://creativecommons.org/licenses/nonsense/4.0/",
        "https://creativecommons.org/publicdomain/zero/2.0/",
        "https://creativecommons.org/",
        # Look-alike hosts.
        "https://evil.test/licenses/by/4.0/",
        "https://creativecommons.org.evil.test/licenses/by/4.0/",
        "https://notcreativecommons.org/licenses/by/4.0/",
        "https://evil.test/?u=https://creativecommons.org/licenses/by/4.0/",
        "https://opendatacommons.org/licenses/pddlx/",
        "https://opendatacommons.org/licenses/",
        # Other licence sites and non-URLs.
        "http://www.opensource.org/licenses/mit-license.php",
        "https://www.gnu.org/licenses/gpl-3.0.html",
        "CC-BY-4.0",
        "",
        "not a url at all",
    ],
)
def test_licence_from_url_unknown(url: str) -> None:
    assert licence_from_url(url) is None


# --------------------------------------------------------------------------- is_allowed

ALLOW = ["CC0-1.0", "CC-BY-4.0", "CC-BY-SA-4.0", "PDDL-1.0"]


@pytest.mark.parametrize(
    ("expression", "allowed"),
    [
        ("CC-BY-4.0", True),
        ("cc-by-4.0", True),
        ("CC-BY-NC-4.0", False),
        ("CC-BY-3.0", False),
        ("MIT", False),
        # OR: one allowed branch is enough.
        ("CC-BY-NC-4.0 OR CC-BY-4.0", True),
        ("MIT OR Apache-2.0", False),
        # AND: every part must be allowed.
        ("CC-BY-4.0 AND CC0-1.0", True),
        ("CC-BY-4.0 AND CC-BY-NC-4.0", False),
        # Nesting.
        ("(MIT OR CC0-1.0) AND CC-BY-4.0", True),
        ("(MIT OR CC-BY-NC-4.0) AND CC-BY-4.0", False),
        ("(CC-BY-NC-4.0 AND MIT) OR PDDL-1.0", True),
    ],
)
def test_is_allowed(expression: str, allowed: bool) -> None:
    assert is_allowed(expression, ALLOW) is allowed


def test_is_allowed_normalises_the_allow_list() -> None:
    assert is_allowed("CC-BY-4.0", ["cc-by-4.0"])
    assert is_allowed("GPL-2.0-or-later", ["GPL-2.0+"])
    assert is_allowed("GPL-2.0+", ("GPL-2.0-or-later",))


def test_is_allowed_with_exception_needs_the_whole_expression() -> None:
    """`X WITH E` is a different grant from `X`: only an allow entry naming both admits it."""
    expression = "GPL-2.0-only WITH Classpath-exception-2.0"
    assert not is_allowed(expression, ["GPL-2.0-only"])
    assert is_allowed(expression, ["GPL-2.0-only WITH Classpath-exception-2.0"])
    assert is_allowed("MIT OR " + expression, ["MIT"])


def test_is_allowed_with_an_empty_allow_list() -> None:
    assert not is_allowed("CC0-1.0", [])


def test_is_allowed_refuses_unknown_ids() -> None:
    with pytest.raises(LicenceError):
        is_allowed("Totally-Free-1.0", ALLOW)
    with pytest.raises(LicenceError):
        is_allowed("CC-BY-4.0", ["Totally-Free-1.0"])


# --------------------------------------------------------------------------- real fixture files


def _rel_licence_hrefs(html: str) -> list[str]:
    sel = Selector(text=html)
    return [
        node.attrib["href"]
        for node in sel.xpath("//a[@href]|//link[@href]|//area[@href]")
        if "license" in node.attrib.get("rel", "").lower().split()
    ]


def test_microformats_rel_license_fixture(shared_fixtures: Path) -> None:
    html_dir = shared_fixtures / "html"
    html = (html_dir / "microformats_rel-license.html").read_text(encoding="utf-8")
    expected = json.loads(
        (html_dir / "microformats_rel-license.expected.json").read_text(encoding="utf-8")
    )
    hrefs = _rel_licence_hrefs(html)
    # The same rel-license URLs the microformats parser test suite expects.
    assert hrefs == expected["rels"]["license"]
    assert [licence_from_url(h) for h in hrefs] == ["CC-BY-2.5"]
    assert not is_allowed("CC-BY-2.5", ALLOW)


def test_rdfa_primer_licence_fixture(shared_fixtures: Path) -> None:
    html = (shared_fixtures / "html" / "extruct_w3c_rdfaprimer_example009_cc-license.html"
            ).read_text(encoding="utf-8")
    hrefs = Selector(text=html).xpath("//a[@property='license']/@href").getall()
    assert [licence_from_url(h) for h in hrefs] == ["CC-BY-3.0"]


def test_microdata_licence_fixture_is_not_a_cc_licence(shared_fixtures: Path) -> None:
    html = (shared_fixtures / "html" / "extruct_w3c_microdata.5.5_itemprop-license.html"
            ).read_text(encoding="utf-8")
    hrefs = Selector(text=html).xpath("//*[@itemprop='license']/@href").getall()
    assert hrefs == ["http://www.opensource.org/licenses/mit-license.php"]
    # An MIT link is no CC/ODC licence URL: no guess.
    assert licence_from_url(hrefs[0]) is None


def test_mediawiki_xmp_bogus_licence_literal(shared_fixtures: Path) -> None:
    xmp = (shared_fixtures / "images" / "iptc_xmp" / "mediawiki_xmp_7.xmp").read_text(
        encoding="utf-8"
    )
    literals = re.findall(r"<cc:license>([^<]+)</cc:license>", xmp)
    assert literals == ["http://creativecommons.com/cc-by-2.9"]
    assert licence_from_url(literals[0]) is None
