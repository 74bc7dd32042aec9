"""pipeline/licences.py: SPDX normalisation, CC/ODC licence URLs -> SPDX ids, the allow-list
test, and the licence links found in real third-party pages (../shared/fixtures/html)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from parsel import Selector

from pipeline.registry.licences import (
    PRESETS,
    effective_allow,
    is_allowed,
    more_restrictive,
    preset_licences,
)
from pipeline.registry.spdx import (
    LicenceError,
    NormalisedLicence,
    is_licence_ref,
    licence_from_url,
    normalise_expression,
    normalise_licence,
)

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


# --------------------------------------------------------------------------- normalise_licence

# (input, spdx). URLs keep `url`; `known` is True exactly when the id is SPDX-listed.
NORMALISE_TABLE = [
    # Creative Commons licence URLs: every code, versions, http/https, www., slashes, tails.
    ("https://creativecommons.org/licenses/by/4.0/", "CC-BY-4.0"),
    ("http://creativecommons.org/licenses/by/4.0", "CC-BY-4.0"),
    ("https://www.creativecommons.org/licenses/by/4.0/", "CC-BY-4.0"),
    ("//creativecommons.org/licenses/by/4.0/", "CC-BY-4.0"),
    ("creativecommons.org/licenses/by/4.0/", "CC-BY-4.0"),
    ("https://creativecommons.org/licenses/by/4.0/legalcode", "CC-BY-4.0"),
    ("https://creativecommons.org/licenses/by/4.0/legalcode.fr", "CC-BY-4.0"),
    ("https://creativecommons.org/licenses/by/4.0/deed.de", "CC-BY-4.0"),
    ("https://creativecommons.org/licenses/by/4.0/rdf", "CC-BY-4.0"),
    ("HTTPS://CREATIVECOMMONS.ORG/LICENSES/BY/4.0/", "CC-BY-4.0"),
    ("https://creativecommons.org/licenses/by-sa/4.0/", "CC-BY-SA-4.0"),
    ("https://creativecommons.org/licenses/by-nc/4.0/", "CC-BY-NC-4.0"),
    ("https://creativecommons.org/licenses/by-nd/4.0/", "CC-BY-ND-4.0"),
    ("https://creativecommons.org/licenses/by-nc-sa/4.0/", "CC-BY-NC-SA-4.0"),
    ("https://creativecommons.org/licenses/by-nc-nd/4.0/", "CC-BY-NC-ND-4.0"),
    ("http://creativecommons.org/licenses/by/1.0/", "CC-BY-1.0"),
    ("http://creativecommons.org/licenses/by/2.0/", "CC-BY-2.0"),
    ("http://creativecommons.org/licenses/by/2.5/", "CC-BY-2.5"),
    ("http://creativecommons.org/licenses/by/3.0/", "CC-BY-3.0"),
    ("http://creativecommons.org/licenses/by-sa/3.0/", "CC-BY-SA-3.0"),
    # CC 1.0 spelled by-nd-nc; sa-only 1.0.
    ("https://creativecommons.org/licenses/by-nd-nc/1.0/", "CC-BY-NC-ND-1.0"),
    ("https://creativecommons.org/licenses/sa/1.0/", "CC-SA-1.0"),
    # Ports SPDX lists keep their own id.
    ("https://creativecommons.org/licenses/by/3.0/de/", "CC-BY-3.0-DE"),
    ("https://creativecommons.org/licenses/by-sa/3.0/de/legalcode", "CC-BY-SA-3.0-DE"),
    ("http://creativecommons.org/licenses/by/3.0/us", "CC-BY-3.0-US"),
    ("https://creativecommons.org/licenses/by/3.0/igo/deed.fr", "CC-BY-3.0-IGO"),
    ("https://creativecommons.org/licenses/by-sa/2.0/uk/", "CC-BY-SA-2.0-UK"),
    ("https://creativecommons.org/licenses/by-nc-sa/2.0/fr/", "CC-BY-NC-SA-2.0-FR"),
    # Ports SPDX lacks: kept, never collapsed to the unported licence.
    ("https://creativecommons.org/licenses/by/2.0/de/", "LicenseRef-CC-BY-2.0-DE"),
    ("http://creativecommons.org/licenses/by/2.0/de", "LicenseRef-CC-BY-2.0-DE"),
    ("https://creativecommons.org/licenses/by-sa/2.5/scotland/",
     "LicenseRef-CC-BY-SA-2.5-SCOTLAND"),
    ("https://creativecommons.org/licenses/by-nc/3.0/es/deed.es", "LicenseRef-CC-BY-NC-3.0-ES"),
    # CC0, the Public Domain Mark, the old public-domain certification.
    ("https://creativecommons.org/publicdomain/zero/1.0/", "CC0-1.0"),
    ("http://creativecommons.org/publicdomain/zero/1.0", "CC0-1.0"),
    ("https://creativecommons.org/publicdomain/zero/1.0/legalcode", "CC0-1.0"),
    ("https://creativecommons.org/publicdomain/zero/1.0/deed.ja", "CC0-1.0"),
    ("https://creativecommons.org/publicdomain/mark/1.0/", "CC-PDM-1.0"),
    ("http://www.creativecommons.org/publicdomain/mark/1.0", "CC-PDM-1.0"),
    ("https://creativecommons.org/licenses/publicdomain/", "CC-PDDC"),
    # Open Data Commons, spdx.org pages.
    ("https://opendatacommons.org/licenses/pddl/1-0/", "PDDL-1.0"),
    ("https://opendatacommons.org/licenses/odbl/", "ODbL-1.0"),
    ("https://spdx.org/licenses/CC-BY-SA-4.0.html", "CC-BY-SA-4.0"),
    ("https://spdx.org/licenses/CC0-1.0", "CC0-1.0"),
    # SPDX ids and expressions in any case.
    ("CC-BY-4.0", "CC-BY-4.0"),
    ("cc-by-sa-4.0", "CC-BY-SA-4.0"),
    ("cc0-1.0", "CC0-1.0"),
    ("Cc-Pdm-1.0", "CC-PDM-1.0"),
    ("cc-by-4.0 or cc0-1.0", "CC-BY-4.0 OR CC0-1.0"),
    ("mit AND cc-by-4.0", "MIT AND CC-BY-4.0"),
    ("licenseref-my-terms", "LicenseRef-my-terms"),
    # Common names.
    ("CC BY 4.0", "CC-BY-4.0"),
    ("CC-BY 4.0", "CC-BY-4.0"),
    ("cc by 4", "CC-BY-4.0"),
    ("CC BY-SA 4.0", "CC-BY-SA-4.0"),
    ("CC BY-NC-ND 4.0", "CC-BY-NC-ND-4.0"),
    ("CC BY-SA 3.0 DE", "CC-BY-SA-3.0-DE"),
    ("CC BY 2.0 DE", "LicenseRef-CC-BY-2.0-DE"),
    ("Creative Commons Attribution 4.0 International", "CC-BY-4.0"),
    ("Creative Commons Attribution 4.0 International License", "CC-BY-4.0"),
    ("Creative Commons Attribution-ShareAlike 4.0 International", "CC-BY-SA-4.0"),
    ("Creative Commons Attribution-NonCommercial-ShareAlike 4.0 International", "CC-BY-NC-SA-4.0"),
    ("Creative Commons Attribution-NoDerivatives 4.0 International", "CC-BY-ND-4.0"),
    ("Creative Commons Attribution 3.0 Unported", "CC-BY-3.0"),
    ("Creative Commons Attribution 2.0 Generic", "CC-BY-2.0"),
    ("Creative Commons Attribution 3.0 Germany", "CC-BY-3.0-DE"),
    ("Attribution 4.0 International (CC BY 4.0)", "CC-BY-4.0"),
    ("Attribution-ShareAlike 4.0 International (CC BY-SA 4.0)", "CC-BY-SA-4.0"),
    ("Licensed under CC BY-SA 3.0", "CC-BY-SA-3.0"),
    ("CC0", "CC0-1.0"),
    ("CC0 1.0 Universal", "CC0-1.0"),
    ("CC0 1.0 Universal (CC0 1.0) Public Domain Dedication", "CC0-1.0"),
    ("Creative Commons Zero", "CC0-1.0"),
    ("Public Domain Mark 1.0", "CC-PDM-1.0"),
    ("Public Domain Mark", "CC-PDM-1.0"),
    ("Open Data Commons Public Domain Dedication and License v1.0", "PDDL-1.0"),
    ("MIT License", "MIT"),
]


@pytest.mark.parametrize(("given", "spdx"), NORMALISE_TABLE)
def test_normalise_licence_table(given: str, spdx: str) -> None:
    found = normalise_licence(given)
    assert found.spdx == spdx
    is_url = "creativecommons.org" in given or "://" in given
    assert found.url == (given if is_url else None)
    assert found.known is (not spdx.startswith("LicenseRef-"))
    # The id is valid SPDX and canonical.
    assert normalise_expression(spdx) == spdx


def test_normalise_table_is_large_enough() -> None:
    assert len(NORMALISE_TABLE) >= 40


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/licence/v2/",
        "http://creativecommons.com/cc-by-2.9",  # the bogus literal in mediawiki_xmp_7.xmp
        "https://creativecommons.org/licenses/by/9.9/",  # no such version
        "https://creativecommons.org/licenses/by/4.0/de/",  # 4.0 has no ports
        "https://creativecommons.org/licenses/by/3.0/xx/",  # no such port
        "https://creativecommons.org/licenses/by/4.0/foo",
        "https://creativecommons.org/licenses/by-nd-sa/4.0/",  # no such licence
        "https://creativecommons.org/publicdomain/zero/2.0/",
        "https://www.gnu.org/licenses/gpl-3.0.html",
    ],
)
def test_unknown_url_is_a_licence_ref_with_the_url_kept(url: str) -> None:
    found = normalise_licence(url)
    assert found.spdx is not None and found.spdx.startswith("LicenseRef-")
    assert not found.spdx.startswith("LicenseRef-CC-")
    assert found.url == url and found.known is False
    assert normalise_expression(found.spdx) == found.spdx
    assert is_licence_ref(found.spdx)
    assert not is_allowed(found.spdx, preset_licences("research"))
    assert is_allowed(found.spdx, [found.spdx])


def test_unknown_url_slug_is_stable_and_distinct() -> None:
    a = normalise_licence("https://example.com/Licence/v2/").spdx
    assert a == normalise_licence("http://www.example.com/Licence/v2").spdx
    assert a is not None and a.startswith("LicenseRef-example.com-licence-v2-")
    # Paths that slug alike are still told apart.
    assert a != normalise_licence("https://example.com/licence/v2/").spdx
    assert a != normalise_licence("https://example.com/Licence_v2").spdx


@pytest.mark.parametrize(
    "text",
    ["", "   ", "hello world", "Public Domain", "CC BY", "Creative Commons",
     "CC BY 9.9", "CC BY-ND-SA 4.0", "CC BY 4.0 DE", "CC BY 4.0 (CC BY-SA 4.0)",
     "Not a licence (CC BY 4.0)", "Attribution 4.0 International",
     "LicenseRef-has space"],
)
def test_text_that_names_no_licence(text: str) -> None:
    assert normalise_licence(text) == NormalisedLicence(None, None, False)


def test_fixture_rights_statements(shared_fixtures: Path) -> None:
    """Real XMP rights fields: the free text names no licence; the URLs are unknown refs."""
    xmp_dir = shared_fixtures / "images" / "iptc_xmp"
    texts: list[str] = []
    urls: list[str] = []
    for name in ("exiftool_PLUS.xmp", "exiv2_issue_1959_poc.xmp", "mediawiki_xmp_7.xmp"):
        xmp = (xmp_dir / name).read_text(encoding="utf-8")
        for field in ("xmpRights:UsageTerms", "dc:rights"):
            for block in re.findall(rf"<{field}>(.*?)</{field}>", xmp, re.S):
                texts += re.findall(r"<rdf:li[^>]*>([^<]+)</rdf:li>", block)
        urls += re.findall(r'WebStatement(?:="|>)\s*(https?://[^"<\s]+)', xmp)
    assert "do whatever you want" in texts and "Copyright © 2016 Phil Harvey" in texts
    assert [normalise_licence(t).spdx for t in texts] == [None] * len(texts)
    assert sorted(urls) == ["http://example.com/web_statement",
                            "http://www.example.com/WebStatement/testing123"]
    refs = [normalise_licence(url) for url in sorted(urls)]
    assert [r.url for r in refs] == sorted(urls) and not any(r.known for r in refs)
    assert [(r.spdx or "")[:-11] for r in refs] == [
        "LicenseRef-example.com-web-statement",
        "LicenseRef-example.com-webstatement-testing123",
    ]


def test_licence_from_url_keeps_its_contract() -> None:
    """The older API: SPDX-listed ids only, None for anything that would be a LicenseRef."""
    assert licence_from_url("https://creativecommons.org/licenses/by/2.0/de/") is None
    assert licence_from_url("https://creativecommons.org/licenses/by/3.0/de/") == "CC-BY-3.0-DE"
    assert licence_from_url("https://example.com/licence") is None


# --------------------------------------------------------------------------- LicenseRef policy


def test_licence_ref_is_valid_spdx_and_allowed_only_when_listed_verbatim() -> None:
    ref = "LicenseRef-CC-BY-2.0-DE"
    assert normalise_expression("licenseref-CC-BY-2.0-DE") == ref
    assert not is_allowed(ref, ALLOW)
    assert not is_allowed(ref, preset_licences("commercial-ai-training"))
    assert not is_allowed(ref, ["CC-BY-2.0"])  # never collapsed to the unported licence
    assert is_allowed(ref, [ref])
    assert not is_allowed(ref, ["LicenseRef-cc-by-2.0-de"])  # verbatim: the id as listed
    assert is_allowed(f"{ref} OR CC-BY-NC-4.0", [ref])
    assert not is_allowed(f"{ref} AND CC-BY-NC-4.0", [ref])
    assert is_allowed("DocumentRef-spdx-doc:LicenseRef-x", ["DocumentRef-spdx-doc:LicenseRef-x"])


def test_is_licence_ref() -> None:
    assert is_licence_ref("LicenseRef-a")
    assert is_licence_ref("LicenseRef-a OR LicenseRef-b")
    assert not is_licence_ref("LicenseRef-a OR CC-BY-4.0")
    assert not is_licence_ref("CC-BY-4.0")


# --------------------------------------------------------------------------- presets


def test_presets_contents() -> None:
    assert PRESETS == ("commercial-ai-training", "research")
    commercial = set(preset_licences("commercial-ai-training"))
    research = set(preset_licences("research"))
    for spdx in ("CC0-1.0", "CC-PDM-1.0", "PDDL-1.0", "CC-BY-1.0", "CC-BY-4.0", "CC-BY-3.0-DE",
                 "CC-BY-3.0-IGO", "CC-BY-SA-4.0", "CC-BY-SA-2.1-JP", "CC-BY-SA-2.0-UK"):
        assert spdx in commercial and spdx in research
    for spdx in ("CC-BY-NC-4.0", "CC-BY-NC-SA-4.0", "CC-BY-NC-SA-2.0-FR", "CC-BY-NC-3.0-DE"):
        assert spdx in research and spdx not in commercial
    assert commercial < research
    # ND is in no preset; nor are LicenseRefs or licences outside the CC/PD families.
    everything = commercial | research
    assert not [s for s in everything if "-ND-" in s or s.startswith("LicenseRef-")]
    assert {"MIT", "CC-SA-1.0", "ODbL-1.0", "CC-PDDC"}.isdisjoint(everything)
    # Every id is SPDX-listed and canonical.
    assert all(normalise_expression(s) == s for s in everything)


def test_preset_unknown_name() -> None:
    with pytest.raises(KeyError):
        preset_licences("anything-goes")


def test_effective_allow_is_allow_then_presets_without_repeats() -> None:
    out = effective_allow(("MIT", "CC-BY-4.0"), ("commercial-ai-training",))
    assert out[:2] == ("MIT", "CC-BY-4.0")
    assert out.count("CC-BY-4.0") == 1
    assert set(out) == {"MIT"} | set(preset_licences("commercial-ai-training"))
    assert effective_allow(("CC0-1.0",), ()) == ("CC0-1.0",)


# --------------------------------------------------------------------------- more_restrictive


@pytest.mark.parametrize(
    ("a", "b", "winner"),
    [
        ("CC0-1.0", "CC-BY-4.0", "CC-BY-4.0"),
        ("CC-PDM-1.0", "CC0-1.0", "CC0-1.0"),  # no obligations either: the id sorting last
        ("PDDL-1.0", "CC-BY-SA-4.0", "CC-BY-SA-4.0"),
        ("CC-BY-4.0", "CC-BY-SA-4.0", "CC-BY-SA-4.0"),
        ("CC-BY-SA-4.0", "CC-BY-NC-4.0", "CC-BY-NC-4.0"),
        ("CC-BY-NC-SA-4.0", "CC-BY-NC-4.0", "CC-BY-NC-SA-4.0"),
        ("CC-BY-NC-SA-4.0", "CC-BY-ND-4.0", "CC-BY-ND-4.0"),
        ("CC-BY-NC-ND-4.0", "CC-BY-ND-4.0", "CC-BY-NC-ND-4.0"),
        # Same obligations: a port over the unported licence, then the older version.
        ("CC-BY-4.0", "CC-BY-3.0-DE", "CC-BY-3.0-DE"),
        ("CC-BY-4.0", "LicenseRef-CC-BY-2.0-DE", "LicenseRef-CC-BY-2.0-DE"),
        ("CC-BY-4.0", "CC-BY-3.0", "CC-BY-3.0"),
        ("CC-BY-SA-4.0", "CC-BY-SA-2.0", "CC-BY-SA-2.0"),
        # Outside the table: ranks above every known licence.
        ("MIT", "CC-BY-NC-ND-4.0", "MIT"),
        ("LicenseRef-x", "CC-BY-SA-4.0", "LicenseRef-x"),
        # Expressions: AND adds obligations, OR keeps the common ones.
        ("CC-BY-4.0 AND CC-BY-SA-4.0", "CC-BY-NC-4.0", "CC-BY-NC-4.0"),
        ("CC-BY-4.0 AND CC-BY-NC-4.0", "CC-BY-NC-4.0", "CC-BY-4.0 AND CC-BY-NC-4.0"),
        ("CC0-1.0 OR CC-BY-SA-4.0", "CC-BY-4.0", "CC-BY-4.0"),
        # Input case does not matter; the answer is canonical.
        ("cc-by-4.0", "cc0-1.0", "CC-BY-4.0"),
    ],
)
def test_more_restrictive(a: str, b: str, winner: str) -> None:
    assert more_restrictive(a, b) == winner
    assert more_restrictive(b, a) == winner  # symmetric


def test_more_restrictive_refuses_invalid() -> None:
    with pytest.raises(LicenceError):
        more_restrictive("CC-BY-4.0", "Totally-Free-1.0")


# --------------------------------------------------------------------------- licences.preset config


def _settings_with(tmp_path: Path, licences: dict[str, object]) -> Path:
    import yaml
    from helpers_config import settings_doc, source_doc, write_source

    settings = settings_doc()
    settings["licences"] = licences
    root = tmp_path / "configs"
    write_source(root, source_doc("aurora-art"))
    (root / "clearance.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    return root


def test_config_preset_expands_into_effective(tmp_path: Path) -> None:
    from pipeline.registry.config import load_config

    root = _settings_with(tmp_path, {"allow": ["MIT"], "preset": "commercial-ai-training"})
    policy = load_config(root).settings.licences
    assert policy.allow == ["MIT"] and policy.preset == ["commercial-ai-training"]
    assert policy.effective == effective_allow(("MIT",), ("commercial-ai-training",))
    assert is_allowed("CC-BY-SA-3.0-DE", policy.effective)
    assert not is_allowed("CC-BY-NC-4.0", policy.effective)


def test_config_preset_list_and_allow_alone(tmp_path: Path) -> None:
    from pipeline.registry.config import load_config

    root = _settings_with(tmp_path, {"preset": ["commercial-ai-training", "research"]})
    policy = load_config(root).settings.licences
    assert set(policy.effective) == set(preset_licences("research"))
    # The old syntax keeps validating, and means exactly its list.
    root = _settings_with(tmp_path / "b", {"allow": ["cc-by-4.0", "LicenseRef-CC-BY-2.0-DE"]})
    policy = load_config(root).settings.licences
    assert policy.effective == ("CC-BY-4.0", "LicenseRef-CC-BY-2.0-DE")


@pytest.mark.parametrize("preset", ["anything-goes", ["research", "anything-goes"]])
def test_config_unknown_preset_is_a_config_error(tmp_path: Path, preset: object) -> None:
    from pipeline.registry.config import ConfigError, load_config

    root = _settings_with(tmp_path, {"allow": ["CC0-1.0"], "preset": preset})
    with pytest.raises(ConfigError) as info:
        load_config(root)
    (problem,) = info.value.problems
    assert str(problem).startswith(
        "configs/clearance.yaml: licences.preset: unknown preset 'anything-goes' "
        "(known: commercial-ai-training, research)"
    )


@pytest.mark.parametrize(
    "text",
    ["All rights reserved", "(c) 2024 Example Agency, all rights reserved",
     "Alle Rechte vorbehalten", "Tous droits réservés", "© Jane. All Rights Reserved. CC BY 4.0"],
)
def test_text_reserving_all_rights_is_the_all_rights_reserved_ref(text: str) -> None:
    from pipeline.registry.spdx import ALL_RIGHTS_RESERVED

    found = normalise_licence(text)
    assert (found.spdx, found.known) == (ALL_RIGHTS_RESERVED, False)
    assert not is_allowed(found.spdx, ["CC-BY-4.0", "CC0-1.0"])
