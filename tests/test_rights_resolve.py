"""Precedence, conflicts and the credit line (crawler.rights.resolve)."""

from __future__ import annotations

from crawler.rights.evidence import EMBEDDED, IMAGE, PAGE, Evidence, licence_evidence
from crawler.rights.resolve import resolve
from pipeline.reports.attribution import credit_line, licence_label
from pipeline.runs import reasons

ALLOW = ("CC0-1.0", "CC-BY-4.0", "CC-BY-SA-4.0")
CC_BY = "https://creativecommons.org/licenses/by/4.0/"
CC_BY_SA = "https://creativecommons.org/licenses/by-sa/4.0/"
CC_BY_NC = "https://creativecommons.org/licenses/by-nc/4.0/"


def xmp(value: str, **kw) -> Evidence:
    return licence_evidence("xmp", EMBEDDED, "cc:license", value, **kw)


def page(value: str, **kw) -> Evidence:
    return licence_evidence("rel-license", PAGE, "a[rel=license]", value, **kw)


def jsonld(value: str, **kw) -> Evidence:
    return licence_evidence("jsonld", IMAGE, "ImageObject.license", value, **kw)


def test_agreeing_evidence_names_the_most_specific_source():
    d = resolve([page(CC_BY), xmp(CC_BY, creator="Ann", title="Dawn")], ALLOW, "CC0-1.0",
                source_url="https://s.example/p")
    assert (d.reason, d.licence, d.licence_source, d.licence_url) == (
        None, "CC-BY-4.0", "xmp", CC_BY)
    assert d.disagreement is None and d.creator == "Ann"
    assert d.attribution == (f'"Dawn" by Ann is licensed under CC BY 4.0 ({CC_BY}). '
                             "Source: https://s.example/p")
    assert [e["source"] for e in d.evidence] == ["xmp", "rel-license"]


def test_disagreeing_allowed_licences_keep_the_more_restrictive():
    d = resolve([page(CC_BY), jsonld(CC_BY_SA)], ALLOW, None)
    assert (d.reason, d.licence, d.licence_source) == (None, "CC-BY-SA-4.0", "jsonld")
    assert "rel-license [page]: CC-BY-4.0" in d.disagreement
    assert "jsonld [image]: CC-BY-SA-4.0" in d.disagreement


def test_disagreement_with_a_licence_not_allowed_is_a_conflict_with_both_in_detail():
    d = resolve([xmp(CC_BY_NC), page(CC_BY)], ALLOW, "CC-BY-4.0")
    assert d.reason == reasons.LICENCE_CONFLICT and d.licence is None
    assert "CC-BY-NC-4.0" in d.detail and "CC-BY-4.0" in d.detail
    assert f"xmp cc:license [embedded]: CC-BY-NC-4.0 <{CC_BY_NC}>" in d.detail


def test_sole_licence_not_allowed_is_refused_at_crawl_time():
    d = resolve([jsonld(CC_BY_NC)], ALLOW, "CC-BY-4.0")
    assert d.reason == reasons.LICENCE_NOT_ALLOWED and "CC-BY-NC-4.0" in d.detail


def test_unknown_licence_url_is_a_licenseref_the_policy_does_not_list():
    d = resolve([page("https://example.org/terms")], ALLOW, None)
    assert d.reason == reasons.NO_LICENCE and "LicenseRef-" in d.detail
    assert "https://example.org/terms" in d.detail
    listed = resolve([page("https://example.org/terms")], (*ALLOW, d.detail.split()[0]), None)
    assert listed.reason is None and listed.licence == d.detail.split()[0]


def test_source_default_only_without_licence_evidence():
    text = Evidence("xmp", EMBEDDED, "xmp", raw="dc:rights: Copyright 2004 Phil Harvey",
                    creator="Phil Harvey")
    d = resolve([text], ALLOW, "CC-BY-4.0")
    assert (d.licence, d.licence_source, d.creator) == ("CC-BY-4.0", "source-default",
                                                        "Phil Harvey")
    assert d.evidence[-1] == {"source": "source-default", "licence": "CC-BY-4.0", "url": None,
                              "raw": "CC-BY-4.0", "scope": "default"}
    assert d.attribution == ("Image by Phil Harvey is licensed under CC BY 4.0 "
                             f"({CC_BY}).")


def test_rights_text_without_a_licence_and_no_default_is_no_licence_with_the_text():
    text = Evidence("xmp", EMBEDDED, "xmp", raw="xmpRights:UsageTerms: do whatever you want")
    d = resolve([text], ALLOW, None)
    assert d.reason == reasons.NO_LICENCE and "do whatever you want" in d.detail
    assert resolve([], ALLOW, None).reason == reasons.NO_LICENCE


def test_attribution_name_is_credited_over_creator_and_cc0_is_marked():
    d = resolve([page("https://creativecommons.org/publicdomain/zero/1.0/",
                      attribution_name="Site Team")], ALLOW, None)
    assert d.attribution == ("Image by Site Team is marked with CC0 1.0 "
                             "(https://creativecommons.org/publicdomain/zero/1.0/).")


def test_licence_labels_and_deeds():
    assert licence_label("CC-BY-SA-3.0-DE") == (
        "CC BY-SA 3.0 DE", "https://creativecommons.org/licenses/by-sa/3.0/de/")
    assert licence_label("CC-PDM-1.0")[0] == "Public Domain Mark 1.0"
    assert licence_label("MIT") == ("MIT", "https://spdx.org/licenses/MIT.html")
    assert licence_label("LicenseRef-example-abc") == ("LicenseRef-example-abc", None)
    assert credit_line(title=None, author=None, licence="LicenseRef-example-abc",
                       licence_url=None, source_url=None) == (
        "Image is licensed under LicenseRef-example-abc.")


def test_all_rights_reserved_text_is_a_licence_statement_not_noise():
    """Agency/camera rights text reserving all rights beats the source default and conflicts
    with a CC licence elsewhere (the Getty case): never skipped over."""
    reserved = licence_evidence("xmp", EMBEDDED, "dc:rights",
                                "(c) 2020 Jane Doe. All rights reserved.")
    assert reserved.licence == "LicenseRef-All-Rights-Reserved"
    alone = resolve([reserved], ALLOW, "CC-BY-4.0")
    assert alone.reason == reasons.LICENCE_NOT_ALLOWED
    assert "reserves all rights" in (alone.detail or "")
    page_cc = licence_evidence("rel-license", PAGE, "rel=license",
                               "https://creativecommons.org/licenses/by/4.0/")
    both = resolve([reserved, page_cc], ALLOW, None)
    assert both.reason == reasons.LICENCE_CONFLICT
    assert "All rights reserved" in (both.detail or "") and "CC-BY-4.0" in (both.detail or "")
    copyright_only = licence_evidence("xmp", EMBEDDED, "dc:rights", "Copyright 2020 Jane Doe")
    assert copyright_only.licence is None  # a notice alone names no licence: default applies
    assert resolve([copyright_only], ALLOW, "CC-BY-4.0").licence == "CC-BY-4.0"
