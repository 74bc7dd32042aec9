"""The bundled demo: the generated site carries every special case, its configs validate."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from urllib.request import urlopen

import pytest
from PIL import Image
from protego import Protego

from crawler.demo.config import write_demo_configs
from crawler.demo.server import serve_directory
from crawler.demo.site import BOMB_SIDE, CASES, CC0, CC_BY_NC, NEVER_REQUESTED, generate_site
from pipeline.registry.config import load_config
from pipeline.registry.eligibility import check
from pipeline.registry.scope import url_in_prefixes
from pipeline.runs import reasons

REPO = Path(__file__).resolve().parents[1]
BASE = "http://127.0.0.1:8000"
BROKEN = {CASES[k] for k in ("truncated_image", "not_an_image", "decompression_bomb")}


class _Refs(HTMLParser):
    """Collects hrefs, img/source URLs (srcset candidates split) and rel=license targets."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.images: list[str] = []
        self.licences: list[str] = []
        self.alts: list[str] = []
        self.meta_robots: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "a":
            (self.licences if a.get("rel") == "license" else self.links).append(a["href"])
        if tag in ("img", "source"):
            if "src" in a:
                self.images.append(a["src"])
            for candidate in a.get("srcset", "").split(","):
                if candidate.strip():
                    self.images.append(candidate.split()[0])
            if tag == "img":
                self.alts.append(a.get("alt", ""))
        if tag == "meta" and a.get("name") == "robots":
            self.meta_robots.append(a["content"])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo-site")
    generate_site(root)
    return root


def _file(site: Path, path: str) -> Path:
    target = site / path.lstrip("/")
    return target / "index.html" if path.endswith("/") else target


def _refs(site: Path, path: str) -> _Refs:
    parser = _Refs()
    parser.feed(_file(site, path).read_text(encoding="utf-8"))
    return parser


def _pages(site: Path) -> dict[str, _Refs]:
    return {
        "/" + str(p.relative_to(site)): _refs(site, "/" + str(p.relative_to(site)))
        for p in sorted(site.rglob("*.html"))
        if p.read_bytes().startswith(b"<!doctype html>") and "/img/" not in str(p)
    }


def test_generation_is_deterministic_and_a_few_dozen_pages(site: Path, tmp_path: Path) -> None:
    generate_site(tmp_path)

    def digest(root: Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    assert digest(site) == digest(tmp_path)
    assert 30 <= len(_pages(site)) <= 60


def test_every_internal_reference_resolves_and_every_image_has_alt_text(site: Path) -> None:
    for page, refs in _pages(site).items():
        for ref in refs.links + refs.images:
            if ref.startswith("/"):
                assert _file(site, ref).is_file(), f"{page} -> {ref}"
            else:
                assert ref == CASES["external"], f"{page} -> {ref}"
        assert all(alt.strip() for alt in refs.alts), page


def test_images_srcset_and_picture_sources(site: Path) -> None:
    srcset_page = _refs(site, "/aurora/gallery/series-1/work-2.html")
    assert srcset_page.images == [
        "/cdn/aurora/img/s1-w2-400.jpg",
        "/cdn/aurora/img/s1-w2-200.jpg",
        "/cdn/aurora/img/s1-w2-400.jpg",
    ]
    html = _file(site, "/aurora/gallery/series-2/work-2.html").read_text()
    assert '<picture><source srcset="/cdn/aurora/img/s2-w2.png" type="image/png">' in html
    assert "<figcaption>" in html
    sizes = []
    for image in sorted(site.rglob("*")):
        if image.suffix in (".jpg", ".png") and "/" + str(image.relative_to(site)) not in BROKEN:
            with Image.open(image) as opened:
                opened.load()
                sizes.append(opened.size)
    assert len(sizes) >= 35
    assert all(64 <= side <= 400 for size in sizes for side in size)


def test_exactly_one_duplicate_pair(site: Path) -> None:
    by_hash: dict[str, list[str]] = defaultdict(list)
    for image in site.rglob("*"):
        if image.suffix in (".jpg", ".png"):
            by_hash[hashlib.sha256(image.read_bytes()).hexdigest()].append(
                "/" + str(image.relative_to(site))
            )
    dupes = [sorted(paths) for paths in by_hash.values() if len(paths) > 1]
    assert dupes == [sorted([CASES["duplicate_image"], CASES["duplicate_image_copy"]])]
    pages = _pages(site)
    on = {img: [p for p, r in pages.items() if img in r.images] for img in dupes[0]}
    assert all(len(found) == 1 for found in on.values()) and len(set(sum(on.values(), []))) == 2


def test_licences_in_pages(site: Path) -> None:
    pages = _pages(site)
    assert pages[CASES["licence_not_allowed_page"]].licences == [CC_BY_NC]
    assert pages[CASES["licence_cc0_page"]].licences == [CC0]
    unlicensed = [p for p, r in pages.items() if CASES["unlicensed_image"] in r.images]
    assert len(unlicensed) == 1 and pages[unlicensed[0]].licences == []
    assert unlicensed[0].startswith("/borealis/")
    assert pages[CASES["meta_noai_page"]].meta_robots == ["noai, noimageai"]
    with Image.open(_file(site, CASES["xmp_licensed_image"])) as image:
        assert b"creativecommons.org/licenses/by/4.0/" in image.info["xmp"]
    with Image.open(_file(site, CASES["iptc_dmi_prohibited_image"])) as image:
        assert b"DMI-PROHIBITED-AIMLTRAINING" in image.info["xmp"]


def test_scope_and_robots_cases(site: Path) -> None:
    aurora_index = _refs(site, "/aurora/gallery/")
    assert CASES["out_of_scope_page"] in aurora_index.links
    assert CASES["external"] in aurora_index.links
    assert CASES["robots_disallowed"] in aurora_index.links
    assert CASES["out_of_scope_image"] in aurora_index.images
    assert CASES["robots_ai_optout"] in _refs(site, "/borealis/").links
    robots = Protego.parse(_file(site, "/robots.txt").read_text())
    assert not robots.can_fetch(BASE + CASES["robots_disallowed"], "ClearanceBot")
    assert robots.can_fetch(BASE + "/aurora/gallery/series-1/work-1.html", "ClearanceBot")
    assert robots.can_fetch(BASE + CASES["robots_ai_optout"], "ClearanceBot")
    assert not robots.can_fetch(BASE + CASES["robots_ai_optout"], "GPTBot")


def test_broken_images_and_the_bomb(site: Path) -> None:
    with pytest.raises(OSError), Image.open(_file(site, CASES["truncated_image"])) as image:
        image.load()
    with pytest.raises(OSError):
        Image.open(_file(site, CASES["not_an_image"]))
    bomb = _file(site, CASES["decompression_bomb"])
    assert bomb.stat().st_size < 64_000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(bomb)
    assert bomb.read_bytes()[16:24] == BOMB_SIDE.to_bytes(4, "big") * 2  # IHDR width, height


def test_demo_configs_validate_and_say_who_is_eligible(tmp_path: Path) -> None:
    write_demo_configs(tmp_path, "http://127.0.0.1:54321/")
    config = load_config(tmp_path)
    today = date.today()
    assert sorted(config.sources) == ["aurora-art", "borealis-photo", "lapsed-archive"]
    assert check(config.sources["aurora-art"], config.settings, today)
    assert check(config.sources["borealis-photo"], config.settings, today)
    lapsed = check(config.sources["lapsed-archive"], config.settings, today)
    assert not lapsed and lapsed.reason == reasons.CONSENT_INACTIVE
    assert config.sources["borealis-photo"].licence.default is None
    assert config.sources["aurora-art"].licence.default == "CC-BY-4.0"
    assert all(s.allow_private_network for s in config.sources.values())
    for source in config.sources.values():
        evidence = config.resolve(source.consent.evidence.uri)
        assert hashlib.sha256(evidence.read_bytes()).hexdigest() == source.consent.evidence.sha256
    for blocklist in config.settings.blocklists:
        assert config.resolve(blocklist.path).is_file()
    text = (tmp_path / "sources" / "aurora-art.yaml").read_text()
    assert text.count("\n# ") >= 8  # every field is explained


def test_scopes_cover_the_site_as_intended(tmp_path: Path) -> None:
    write_demo_configs(tmp_path, BASE)
    sources = load_config(tmp_path).sources
    aurora, borealis = sources["aurora-art"].scope, sources["borealis-photo"].scope
    assert url_in_prefixes(BASE + "/aurora/gallery/series-1/work-1.html", aurora)
    assert url_in_prefixes(BASE + CASES["duplicate_image"], aurora)
    assert not url_in_prefixes(BASE + CASES["out_of_scope_page"], aurora)
    assert not url_in_prefixes(BASE + CASES["out_of_scope_image"], aurora)
    assert url_in_prefixes(BASE + CASES["unlicensed_image"], borealis)

    # What keeps each never-requested prefix out: scope, robots.txt, or lapsed consent.
    def owners(prefix: str) -> list[str]:
        return [i for i, s in sources.items() if url_in_prefixes(BASE + prefix + "x.html", s.scope)]

    assert set(NEVER_REQUESTED) == {
        "/aurora/private/",
        "/aurora/gallery/drafts/",
        "/borealis/members/",
        "/lapsed/",
    }
    assert owners("/aurora/private/") == []
    assert owners("/aurora/gallery/drafts/") == ["aurora-art"]
    assert owners("/borealis/members/") == ["borealis-photo"]
    assert owners("/lapsed/") == ["lapsed-archive"]


def test_repository_configs_are_the_demo_for_port_8000() -> None:
    config = load_config(REPO / "configs")
    assert sorted(config.sources) == ["aurora-art", "borealis-photo", "lapsed-archive"]
    for source in config.sources.values():
        assert all(url.startswith(BASE + "/") for url in source.start_urls + source.scope)
    assert not check(config.sources["lapsed-archive"], config.settings, date.today())
    assert (
        "python -m crawler.demo.server --port 8000"
        in (REPO / "configs" / "clearance.yaml").read_text()
    )


def test_the_site_serves_with_the_content_types_a_crawler_sees(site: Path) -> None:
    base_url, stop, log = serve_directory(site)
    try:
        with urlopen(base_url + "/aurora/gallery/", timeout=10) as reply:
            assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
        with urlopen(base_url + CASES["not_an_image"], timeout=10) as reply:
            assert reply.headers["Content-Type"] == "image/jpeg"
            assert reply.read().startswith(b"<!doctype html>")
        with urlopen(base_url + "/robots.txt", timeout=10) as reply:
            assert reply.headers["Content-Type"].startswith("text/plain")
        assert [r.path for r in log] == ["/aurora/gallery/", CASES["not_an_image"], "/robots.txt"]
    finally:
        stop()
