"""Rights evidence in page markup (crawler.rights.markup): extruct + ccREL scoping."""

from __future__ import annotations

import pytest
from parsel import Selector

from crawler.extract import find_images
from crawler.rights.evidence import IMAGE, JSONLD, MICRODATA, PAGE, RDFA, REL_LICENSE
from crawler.rights.markup import page_markup, scoped_evidence


def load(shared_fixtures, name: str) -> str:
    path = shared_fixtures / "html" / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path.read_text()


def markup_of(html: str, url: str):
    sel = Selector(text=html)
    return page_markup(html.encode(), html, sel, url), find_images(sel, url)


def test_w3c_microdata_work_items_give_each_image_its_licence_and_title(shared_fixtures):
    html = load(shared_fixtures, "extruct_w3c_microdata.5.5_itemprop-license.html")
    markup, images = markup_of(html, "http://example.com/gallery/")
    assert [i.url for i in images] == ["http://example.com/gallery/images/house.jpeg",
                                       "http://example.com/gallery/images/mailbox.jpeg"]
    titles = []
    for image in images:
        (piece,) = markup.for_image(image.url)
        assert (piece.source, piece.scope) == (MICRODATA, IMAGE)
        assert piece.url == "http://www.opensource.org/licenses/mit-license.php"
        titles.append(piece.title)
    assert titles == ["The house I found.", "The mailbox."]
    assert markup.page == []


def test_rdfa_primer_cc_license_is_page_wide(shared_fixtures):
    html = load(shared_fixtures, "extruct_w3c_rdfaprimer_example009_cc-license.html")
    markup, _ = markup_of(html, "http://www.example.com/index.html")
    (piece,) = markup.page
    assert (piece.source, piece.scope, piece.licence) == (RDFA, PAGE, "CC-BY-3.0")
    assert piece.url == "http://creativecommons.org/licenses/by/3.0/"


def test_microformats_rel_license_is_page_wide_and_not_counted_twice(shared_fixtures):
    html = load(shared_fixtures, "microformats_rel-license.html")
    markup, _ = markup_of(html, "http://example.com/")
    # pyRdfa also reads rel=license as xhv:license; only the ccREL reading is kept.
    (piece,) = markup.page
    assert (piece.source, piece.licence) == (REL_LICENSE, "CC-BY-2.5")


# Google's image licence structured-data example shape (the pages themselves are not fixtures).
JSONLD_PAGE = """<html><head><script type="application/ld+json">
{"@context": "https://schema.org/", "@graph": [
 {"@type": "ImageObject", "contentUrl": "https://example.com/photos/1x1/puppy.jpg",
  "license": "https://creativecommons.org/licenses/by-sa/4.0/",
  "acquireLicensePage": "https://example.com/how-to-use-my-images",
  "creditText": "Labrador PhotoLab", "creator": {"@type": "Person", "name": "Brixton Brownstone"},
  "copyrightNotice": "Clara Kent", "name": "Puppy"},
 {"@type": "ImageObject", "contentUrl": "https://example.com/photos/other.jpg",
  "acquireLicensePage": "https://example.com/buy"},
 {"@type": "WebPage", "license": "https://creativecommons.org/licenses/by/4.0/",
  "author": {"@type": "Person", "name": "Page Author"}}]}
</script></head><body><img src="/photos/1x1/puppy.jpg#x"><img src="/photos/other.jpg">
</body></html>"""


def test_jsonld_image_object_matched_by_normalised_url():
    markup, images = markup_of(JSONLD_PAGE, "https://EXAMPLE.com:443/p")
    (piece,) = markup.for_image("https://example.com/photos/1x1/puppy.jpg#frag")
    assert (piece.source, piece.scope, piece.licence) == (JSONLD, IMAGE, "CC-BY-SA-4.0")
    assert (piece.creator, piece.credit, piece.title) == (
        "Brixton Brownstone", "Labrador PhotoLab", "Puppy")
    (other,) = markup.for_image(images[1].url)
    assert other.licence is None and "acquireLicensePage: https://example.com/buy" in other.raw
    (page,) = markup.page
    assert (page.scope, page.licence, page.creator) == (PAGE, "CC-BY-4.0", None)


def test_final_url_after_a_redirect_is_matched_too():
    markup, _ = markup_of(JSONLD_PAGE, "https://example.com/p")
    assert markup.for_image("https://example.com/r/1", "https://example.com/photos/1x1/puppy.jpg")
    assert markup.for_image("https://example.com/r/1") == []


def test_malformed_jsonld_is_an_error_for_the_page():
    html = '<script type="application/ld+json">{"@type": "ImageObject", oops</script><img src=a>'
    markup, _ = markup_of(html, "https://example.com/")
    assert markup.errors and "unreadable jsonld" in markup.errors[0]


CCREL_PAGE = """<html><body>
<a rel="license" href="https://creativecommons.org/publicdomain/zero/1.0/">page CC0</a>
<span property="cc:attributionName">Site Team</span>
<figure about="/a.jpg"><img src="/a.jpg">
 <span property="dct:title">Alpha</span> by <a rel="cc:attributionURL" property="cc:attributionName"
 href="https://ann.example/">Ann</a>, <a rel="license"
 href="https://creativecommons.org/licenses/by-nc/4.0/">CC BY-NC 4.0</a></figure>
<div typeof="ImageObject"><img src="/b.jpg"></div>
<img src="/c.jpg">
</body></html>"""


def test_ccrel_inside_the_images_element_is_per_image_and_the_rest_page_wide():
    markup, images = markup_of(CCREL_PAGE, "https://example.com/")
    a, b, c = images
    (own,) = scoped_evidence(a, "https://example.com/")
    assert (own.source, own.scope, own.licence) == (REL_LICENSE, IMAGE, "CC-BY-NC-4.0")
    assert (own.attribution_name, own.attribution_url, own.title) == (
        "Ann", "https://ann.example/", "Alpha")
    assert scoped_evidence(b, "https://example.com/") == []
    assert c.scope is None
    page = [p for p in markup.page if p.source == REL_LICENSE]
    assert [(p.licence, p.attribution_name) for p in page] == [("CC0-1.0", "Site Team")]
