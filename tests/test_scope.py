"""pipeline/scope.py: consent scope as URL prefixes that look-alike URLs cannot fool, and the
per-origin policy files (robots.txt, ai.txt, tdmrep.json) that are in scope for every origin."""

from __future__ import annotations

import pytest

from pipeline.registry.scope import (
    POLICY_PATHS,
    is_policy_url,
    origin,
    url_in_prefix,
    url_in_prefixes,
)

GALLERY = "https://a.example/gallery/"


@pytest.mark.parametrize(
    "url",
    [
        "https://a.example/gallery/",
        "https://a.example/gallery/cat.jpg",
        "https://a.example/gallery/2024/cat.jpg",
        "https://a.example/gallery/?page=2",
        "https://a.example/gallery/cat.jpg#top",
        "https://A.EXAMPLE/gallery/cat.jpg",  # host is case-insensitive
        "HTTPS://a.example/gallery/cat.jpg",  # so is the scheme
        "https://a.example./gallery/cat.jpg",  # trailing dot: the same host
        "https://a.example:443/gallery/cat.jpg",  # explicit default port
        "https://a.example/%67allery/cat.jpg",  # %67 is 'g': the same path once decoded
    ],
)
def test_inside_the_gallery_prefix(url: str) -> None:
    assert url_in_prefix(url, GALLERY)


@pytest.mark.parametrize(
    "url",
    [
        # Host suffix / prefix look-alikes.
        "https://a.example.evil.test/gallery/cat.jpg",
        "https://evil-a.example/gallery/cat.jpg",
        "https://xa.example/gallery/cat.jpg",
        "https://sub.a.example/gallery/cat.jpg",
        # Userinfo: the host is evil.test, and credentials are refused outright.
        "https://a.example@evil.test/gallery/cat.jpg",
        "https://a.example:443@evil.test/gallery/",
        "https://user@a.example/gallery/cat.jpg",
        "https://user:pw@a.example/gallery/cat.jpg",
        "https://a.example\\@evil.test/gallery/",
        # The prefix is a string trick away: fragment / query tricks put the host elsewhere.
        "https://evil.test#@a.example/gallery/",
        "https://evil.test/?u=https://a.example/gallery/",
        "https://evil.test/https://a.example/gallery/",
        # Sibling paths that share the prefix's characters.
        "https://a.example/gallery-private/cat.jpg",
        "https://a.example/gallery",
        "https://a.example/galleryx/",
        "https://a.example/Gallery/cat.jpg",  # paths are case-sensitive
        "https://a.example/",
        # Port differences.
        "https://a.example:8443/gallery/cat.jpg",
        "https://a.example:80/gallery/cat.jpg",
        "https://a.example:99999/gallery/",  # invalid port
        # Scheme differences.
        "http://a.example/gallery/cat.jpg",
        "ftp://a.example/gallery/cat.jpg",
        "//a.example/gallery/cat.jpg",
        "/gallery/cat.jpg",
        # Dot segments (raw or percent-encoded) are refused, not resolved.
        "https://a.example/gallery/../private/x.jpg",
        "https://a.example/gallery/./x.jpg",
        "https://a.example/gallery/..",
        "https://a.example/gallery/%2e%2e/private/x.jpg",
        "https://a.example/gallery/%2E%2E%2Fprivate/x.jpg",
        "https://a.example/gallery%2f..%2fprivate/x.jpg",
        # Not URLs.
        "",
        "gallery/cat.jpg",
        "https:///gallery/",
    ],
)
def test_outside_the_gallery_prefix(url: str) -> None:
    assert not url_in_prefix(url, GALLERY)


def test_default_ports_are_equal_to_no_port() -> None:
    assert url_in_prefix("http://a.example/x/1", "http://a.example:80/x/")
    assert url_in_prefix("http://a.example:80/x/1", "http://a.example/x/")
    assert url_in_prefix("https://a.example:443/x/1", "https://a.example/x/")
    assert not url_in_prefix("http://a.example:443/x/1", "https://a.example/x/")
    assert not url_in_prefix("https://a.example:80/x/1", "http://a.example/x/")


def test_explicit_non_default_port_must_match() -> None:
    prefix = "http://127.0.0.1:8765/site/"
    assert url_in_prefix("http://127.0.0.1:8765/site/a.jpg", prefix)
    assert not url_in_prefix("http://127.0.0.1:8766/site/a.jpg", prefix)
    assert not url_in_prefix("http://127.0.0.1/site/a.jpg", prefix)
    assert not url_in_prefix("http://localhost:8765/site/a.jpg", prefix)


def test_ipv6_literal_hosts() -> None:
    prefix = "http://[::1]:8080/site/"
    assert url_in_prefix("http://[::1]:8080/site/a.jpg", prefix)
    assert not url_in_prefix("http://[::2]:8080/site/a.jpg", prefix)


def test_prefix_without_trailing_slash_is_a_segment_boundary() -> None:
    prefix = "https://a.example/gallery"
    assert url_in_prefix("https://a.example/gallery", prefix)
    assert url_in_prefix("https://a.example/gallery/", prefix)
    assert url_in_prefix("https://a.example/gallery/cat.jpg", prefix)
    assert not url_in_prefix("https://a.example/gallery-private/", prefix)
    assert not url_in_prefix("https://a.example/gallery.jpg", prefix)


def test_root_prefix_covers_the_whole_origin_only() -> None:
    for prefix in ("https://a.example/", "https://a.example"):
        assert url_in_prefix("https://a.example/anything/at/all?q=1", prefix)
        assert url_in_prefix("https://a.example", prefix)
        assert not url_in_prefix("https://a.example.evil.test/", prefix)
        assert not url_in_prefix("http://a.example/", prefix)


def test_percent_encoded_prefix_matches_decoded_url() -> None:
    prefix = "https://a.example/my%20gallery/"
    assert url_in_prefix("https://a.example/my gallery/a.jpg", prefix)
    assert url_in_prefix("https://a.example/my%20gallery/a.jpg", prefix)
    assert not url_in_prefix("https://a.example/my%20gallery2/a.jpg", prefix)


def test_a_bad_prefix_covers_nothing() -> None:
    for prefix in ("", "a.example/gallery/", "https://u@a.example/gallery/",
                   "https://a.example/x/../gallery/"):
        assert not url_in_prefix("https://a.example/gallery/cat.jpg", prefix)


def test_url_in_prefixes_any() -> None:
    prefixes = [GALLERY, "https://cdn.a.example/img/"]
    assert url_in_prefixes("https://cdn.a.example/img/1.jpg", prefixes)
    assert url_in_prefixes("https://a.example/gallery/1.jpg", prefixes)
    assert not url_in_prefixes("https://cdn.a.example/other/1.jpg", prefixes)
    assert not url_in_prefixes("https://a.example/gallery/1.jpg", [])


def test_origin() -> None:
    assert origin("https://A.Example./gallery/x?q") == "https://a.example:443"
    assert origin("http://a.example/") == "http://a.example:80"
    assert origin("http://a.example:8080/") == "http://a.example:8080"
    assert origin("https://u@a.example/") is None
    assert origin("mailto:x@a.example") is None


# --------------------------------------------------------------------------- policy files


@pytest.mark.parametrize("path", POLICY_PATHS)
def test_policy_files_of_in_scope_origins(path: str) -> None:
    scope = [GALLERY, "https://cdn.a.example/img/"]
    assert is_policy_url(f"https://a.example{path}", scope)
    assert is_policy_url(f"https://cdn.a.example{path}", scope)
    assert is_policy_url(f"https://A.EXAMPLE:443{path}", scope)
    # ...while the file itself is not inside the gallery prefix.
    assert not url_in_prefixes(f"https://a.example{path}", scope)


def test_policy_path_list_is_the_contracts() -> None:
    assert set(POLICY_PATHS) == {"/robots.txt", "/ai.txt", "/.well-known/tdmrep.json"}


@pytest.mark.parametrize(
    "url",
    [
        "https://a.example/robots.txt?x=1",
        "https://a.example/ai.txt#frag",
        "https://a.example/.well-known/tdmrep.json?callback=x",
        "https://evil.test/robots.txt",
        "https://a.example.evil.test/robots.txt",
        "https://a.example@evil.test/robots.txt",
        "https://a.example:8443/robots.txt",
        "http://a.example/robots.txt",
        "https://a.example/gallery/robots.txt",
        "https://a.example/robots.txt/",
        "https://a.example/Robots.txt",
        "https://a.example/sitemap.xml",
        "https://a.example/.well-known/other.json",
        "https://a.example/../robots.txt",
    ],
)
def test_not_a_policy_url(url: str) -> None:
    assert not is_policy_url(url, [GALLERY])


def test_policy_url_needs_a_scope() -> None:
    assert not is_policy_url("https://a.example/robots.txt", [])
