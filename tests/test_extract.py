"""crawler/extract.py: images (one per <img>/<picture>, largest candidate, caption), links to
follow and page-level rel="license" links, on hand-written snippets and the real pages in
../shared/fixtures/html."""

from __future__ import annotations

from pathlib import Path

import pytest
from parsel import Selector

from crawler.extract import FoundImage, find_images, find_licence_links, find_links

BASE = "https://a.example/gallery/page.html"


def images(html: str, base: str = BASE) -> list[FoundImage]:
    return find_images(Selector(text=html), base)


def urls(html: str, base: str = BASE) -> list[str]:
    return [image.url for image in images(html, base)]


# --------------------------------------------------------------------------- find_images


def test_img_src_is_resolved_against_the_page() -> None:
    assert urls('<img src="cat.jpg"><img src="/abs.png"><img src="../up.gif">'
                '<img src="//cdn.a.example/img/x.webp"><img src="https://b.example/y.jpg">') == [
        "https://a.example/gallery/cat.jpg",
        "https://a.example/abs.png",
        "https://a.example/up.gif",
        "https://cdn.a.example/img/x.webp",
        "https://b.example/y.jpg",
    ]


def test_src_whitespace_and_fragment_are_dropped() -> None:
    assert urls('<img src="  cat.jpg#zoom ">') == ["https://a.example/gallery/cat.jpg"]


def test_srcset_width_descriptors_choose_the_widest() -> None:
    html = '<img src="b.jpg" srcset="b-800.jpg 800w, b-1600.jpg 1600w, b-400.jpg 400w">'
    assert urls(html) == ["https://a.example/gallery/b-1600.jpg"]


def test_srcset_density_descriptors_choose_the_densest() -> None:
    html = '<img src="a.jpg" srcset="a-1x.jpg 1x, a-3x.jpg 3x, a-1.5x.jpg 1.5x">'
    assert urls(html) == ["https://a.example/gallery/a-3x.jpg"]


def test_srcset_candidate_without_descriptor_is_1x() -> None:
    assert urls('<img srcset="big.jpg, small.jpg 0.5x">') == ["https://a.example/gallery/big.jpg"]
    assert urls('<img srcset="one.jpg, two.jpg 2x">') == ["https://a.example/gallery/two.jpg"]


def test_srcset_only_image_and_odd_spacing() -> None:
    html = '<img srcset="\n  s.jpg   320w ,\n  l.jpg 1280w ,  m.jpg 640w,  ">'
    assert urls(html) == ["https://a.example/gallery/l.jpg"]


def test_srcset_commas_follow_the_html_algorithm() -> None:
    """A URL runs to whitespace: commas inside it (data: placeholders, queries) are kept."""
    gif = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
    assert urls(f'<img src="real.jpg" srcset="{gif} 1x">') == [
        "https://a.example/gallery/real.jpg"
    ]
    assert urls(f'<img srcset="{gif}, lazy.jpg 2x">') == ["https://a.example/gallery/lazy.jpg"]
    assert urls('<img srcset="a.jpg 1x,b.jpg 2x">') == ["https://a.example/gallery/b.jpg"]
    assert urls('<img srcset="img.jpg?crop=1,2 3x, big.jpg 2x">') == [
        "https://a.example/gallery/img.jpg?crop=1,2"
    ]


def test_picture_sources_compete_with_the_img() -> None:
    """libxml2 does not know <source> is void: the <img> ends up nested inside <source>."""
    html = ('<picture>'
            '<source srcset="/img/big.webp 2000w, /img/mid.webp 1000w" type="image/webp">'
            '<source srcset="/img/huge.jpg 3000w">'
            '<img src="/img/small.jpg" alt="A cat">'
            '</picture>')
    assert Selector(text=html).xpath("//source/source/img"), "libxml2 nesting changed"
    assert images(html) == [FoundImage("https://a.example/img/huge.jpg", "A cat")]


def test_picture_is_one_item_and_neighbours_stay_separate() -> None:
    html = ('<picture><source srcset="p-2x.jpg 2x"><img src="p.jpg"></picture>'
            '<picture><source srcset="q-800.jpg 800w"><img src="q.jpg"></picture>'
            '<img src="r.jpg">')
    assert urls(html) == [
        "https://a.example/gallery/p-2x.jpg",
        "https://a.example/gallery/q-800.jpg",
        "https://a.example/gallery/r.jpg",
    ]


def test_alt_is_the_caption_whitespace_collapsed() -> None:
    assert images('<img src="c.jpg" alt="  A  white\n house ">') == [
        FoundImage("https://a.example/gallery/c.jpg", "A white house")
    ]


def test_figcaption_is_the_fallback_caption() -> None:
    html = ('<figure><img src="c.jpg"><figcaption> The <b>old</b>\n house </figcaption></figure>'
            '<figure><img src="d.jpg" alt="Alt wins"><figcaption>Not me</figcaption></figure>'
            '<figure><img src="e.jpg" alt="   "><figcaption>Blank alt falls back</figcaption>'
            '</figure>'
            '<img src="f.jpg">')
    assert images(html) == [
        FoundImage("https://a.example/gallery/c.jpg", "The old house"),
        FoundImage("https://a.example/gallery/d.jpg", "Alt wins"),
        FoundImage("https://a.example/gallery/e.jpg", "Blank alt falls back"),
        FoundImage("https://a.example/gallery/f.jpg", None),
    ]


def test_data_and_script_uris_and_empty_sources_are_ignored() -> None:
    html = ('<img src="data:image/png;base64,iVBORw0KGgo=">'
            '<img src="javascript:alert(1)">'
            '<img src="">'
            '<img>'
            '<img src="#">'
            '<img src="ftp://a.example/x.jpg">'
            '<img src="real.jpg" srcset="data:image/gif;base64,R0lGOD 2x">')
    assert urls(html) == ["https://a.example/gallery/real.jpg"]


def test_duplicates_are_reported_once_with_the_first_caption() -> None:
    html = ('<img src="a.jpg" alt="first"><img src="a.jpg" alt="second">'
            '<img src="/gallery/a.jpg#x"><img src="https://a.example/gallery/a.jpg">'
            '<img src="b.jpg">')
    assert images(html) == [
        FoundImage("https://a.example/gallery/a.jpg", "first"),
        FoundImage("https://a.example/gallery/b.jpg", None),
    ]


def test_no_images() -> None:
    assert images("<p>text only</p>") == []
    assert images("<html></html>") == []


def test_real_microdata_gallery_images(shared_fixtures: Path) -> None:
    html = (shared_fixtures / "html" / "extruct_w3c_microdata.5.5_itemprop-license.html"
            ).read_text(encoding="utf-8")
    assert images(html, "https://photos.example/gallery/") == [
        FoundImage("https://photos.example/gallery/images/house.jpeg",
                   "A white house, boarded up, sits in a forest."),
        FoundImage("https://photos.example/gallery/images/mailbox.jpeg",
                   "Outside the house is a mailbox. It has a leaflet inside."),
    ]


# --------------------------------------------------------------------------- find_links


def test_links_resolved_fragments_stripped_and_deduplicated() -> None:
    html = ('<a href="../up.html#frag">u</a><a href="../up.html">u again</a>'
            '<a href="next.html">n</a><a href="?page=2">p</a>'
            '<a href="//other.example/p">o</a><a href="HTTPS://a.example/caps">c</a>'
            '<map><area href="map.html"></map>')
    assert find_links(Selector(text=html), BASE) == [
        "https://a.example/up.html",
        "https://a.example/gallery/next.html",
        "https://a.example/gallery/page.html?page=2",
        "https://other.example/p",
        "https://a.example/caps",
        "https://a.example/gallery/map.html",
    ]


@pytest.mark.parametrize(
    "href",
    ["javascript:void(0)", "JavaScript:alert(1)", "mailto:x@a.example", " MAILTO:x@a.example",
     "tel:+100", "#top", "#", "", "   ", "ftp://a.example/f", "data:text/html,hi"],
)
def test_links_that_are_not_pages_are_ignored(href: str) -> None:
    assert find_links(Selector(text=f'<a href="{href}">x</a>'), BASE) == []


def test_only_a_and_area_are_links() -> None:
    html = ('<link rel="stylesheet" href="/style.css"><script src="/app.js"></script>'
            '<img src="x.jpg"><a>no href</a><a href="ok.html">ok</a>')
    assert find_links(Selector(text=html), BASE) == ["https://a.example/gallery/ok.html"]


# --------------------------------------------------------------------------- find_licence_links


def test_licence_links_on_a_link_and_area_in_document_order() -> None:
    html = ('<head><link rel="license" href="/licence.html#section"></head><body>'
            '<a rel="license" href="https://creativecommons.org/licenses/by/4.0/">CC BY</a>'
            '<map><area rel="license" href="terms.html"></map></body>')
    assert find_licence_links(Selector(text=html), BASE) == [
        "https://a.example/licence.html",
        "https://creativecommons.org/licenses/by/4.0/",
        "https://a.example/gallery/terms.html",
    ]


def test_licence_rel_among_other_tokens_any_case_and_british_spelling() -> None:
    html = ('<a rel="noopener license nofollow" href="one.html">1</a>'
            '<a rel="LICENSE" href="two.html">2</a>'
            '<a rel="licence" href="three.html">3</a>')
    assert find_licence_links(Selector(text=html), BASE) == [
        "https://a.example/gallery/one.html",
        "https://a.example/gallery/two.html",
        "https://a.example/gallery/three.html",
    ]


def test_not_licence_links() -> None:
    html = ('<a rel="licensed" href="a.html">a</a><a rel="nolicense" href="b.html">b</a>'
            '<a href="c.html">license</a><a rel="license">no href</a>'
            '<a rel="license" href="mailto:x@a.example">m</a>'
            '<a class="license" href="d.html">d</a><img rel="license" src="e.jpg">')
    assert find_licence_links(Selector(text=html), BASE) == []


def test_licence_links_deduplicated() -> None:
    html = ('<a rel="license" href="https://creativecommons.org/licenses/by/4.0/">1</a>'
            '<link rel="license" href="https://creativecommons.org/licenses/by/4.0/#x">')
    assert find_licence_links(Selector(text=html), BASE) == [
        "https://creativecommons.org/licenses/by/4.0/"
    ]


def test_real_microformats_rel_license(shared_fixtures: Path) -> None:
    html = (shared_fixtures / "html" / "microformats_rel-license.html").read_text(
        encoding="utf-8"
    )
    sel = Selector(text=html)
    assert find_licence_links(sel, "https://mf.example/") == [
        "http://creativecommons.org/licenses/by/2.5/"
    ]
    # A rel-license link is also an ordinary link.
    assert find_links(sel, "https://mf.example/") == ["http://creativecommons.org/licenses/by/2.5/"]


def test_real_pages_without_rel_license(shared_fixtures: Path) -> None:
    """itemprop/property="license" are other syntaxes, not rel-license."""
    for name in ("extruct_w3c_microdata.5.5_itemprop-license.html",
                 "extruct_w3c_rdfaprimer_example009_cc-license.html"):
        html = (shared_fixtures / "html" / name).read_text(encoding="utf-8")
        assert find_licence_links(Selector(text=html), "https://x.example/") == [], name
