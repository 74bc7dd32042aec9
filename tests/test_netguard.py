"""crawler/netguard.py: which addresses are not public, and the caching resolver that refuses a
host if any of its addresses is not public. No traffic leaves 127.0.0.0/8: public addresses are
only ever strings here, and name lookups other than ``localhost`` are faked."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import pytest

from crawler.netguard import Resolver, non_public


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("10.0.0.1", "private"),
        ("10.255.255.255", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.0.1", "private"),
        ("192.168.255.255", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata endpoint
        ("100.64.0.1", "shared (CGNAT)"),
        ("100.127.255.255", "shared (CGNAT)"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456:789a::1", "private"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6
        ("::ffff:10.1.2.3", "private"),
        ("::ffff:169.254.1.1", "link-local"),
        ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
    ],
)
def test_non_public_names_why(address: str, why: str) -> None:
    assert non_public(address) == why


@pytest.mark.parametrize(
    "address",
    ["0.0.0.0", "::", "255.255.255.255", "240.0.0.1", "192.0.2.1", "198.18.0.1",
     "64:ff9b::7f00:1"],
)
def test_unspecified_broadcast_reserved_and_documentation_are_not_public(address: str) -> None:
    assert non_public(address) is not None


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "172.15.255.255",  # just below 172.16/12
        "172.32.0.1",  # just above it
        "100.63.255.255",  # just below 100.64/10
        "100.128.0.1",  # just above it
        "192.169.0.1",
        "11.0.0.1",
        "2001:4860:4860::8888",
        "::ffff:8.8.8.8",
        "2002:808:808::",  # 6to4 wrapping 8.8.8.8
    ],
)
def test_public_addresses(address: str) -> None:
    """Strings only: none of these is ever contacted."""
    assert non_public(address) is None


def test_accepts_address_objects() -> None:
    assert non_public(ipaddress.ip_address("10.0.0.1")) == "private"
    assert non_public(ipaddress.ip_address("::ffff:127.0.0.1")) == "loopback"
    assert non_public(ipaddress.ip_address("8.8.8.8")) is None


@pytest.mark.parametrize("junk", ["", "localhost", "999.1.1.1", "1.2.3", "[::1]", "::g"])
def test_unparseable_is_refused(junk: str) -> None:
    assert non_public(junk) == "unparseable address"


# --------------------------------------------------------------------------- Resolver


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class FakeDNS:
    """Answers for names other than literals (``None``: the lookup fails); records lookups."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str] | None] = {}
        self.calls: list[str] = []

    async def getaddrinfo(self, host: str, port: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        self.calls.append(host)
        if host not in self.answers:
            raise AssertionError(f"unexpected lookup of {host!r} (no real DNS in tests)")
        addrs = self.answers[host]
        if addrs is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM,
                 socket.IPPROTO_TCP, "", (a, 0)) for a in addrs]


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    dns = FakeDNS()

    async def getaddrinfo(loop: asyncio.AbstractEventLoop, host: str, port: Any,
                          **kwargs: Any) -> list[tuple[Any, ...]]:
        return await dns.getaddrinfo(host, port, **kwargs)

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)
    return dns


def test_literal_addresses_are_not_looked_up(fake_dns: FakeDNS) -> None:
    resolver = Resolver()
    assert run(resolver.addresses("127.0.0.1")) == ("127.0.0.1",)
    assert run(resolver.addresses("[::1]")) == ("::1",)
    assert run(resolver.addresses("8.8.8.8")) == ("8.8.8.8",)
    assert fake_dns.calls == []


def test_refusal_of_literal_addresses() -> None:
    resolver = Resolver()
    assert run(resolver.refusal("127.0.0.1")) == "127.0.0.1 resolves to 127.0.0.1 (loopback)"
    assert run(resolver.refusal("[::1]")) == "[::1] resolves to ::1 (loopback)"
    assert run(resolver.refusal("10.0.0.7")) == "10.0.0.7 resolves to 10.0.0.7 (private)"
    assert run(resolver.refusal("8.8.8.8")) is None


def test_localhost_resolves_locally_and_is_refused() -> None:
    resolver = Resolver()
    addrs = run(resolver.addresses("localhost"))
    assert addrs, "localhost did not resolve"
    assert all(non_public(a) == "loopback" for a in addrs), addrs
    why = run(resolver.refusal("localhost"))
    assert why is not None
    assert why.startswith("localhost resolves to ") and why.endswith("(loopback)")


def test_any_private_answer_refuses_the_host(fake_dns: FakeDNS) -> None:
    fake_dns.answers["mixed.example"] = ["93.184.216.34", "10.0.0.5"]
    fake_dns.answers["public.example"] = ["93.184.216.34"]
    resolver = Resolver()
    assert run(resolver.addresses("mixed.example")) == ("10.0.0.5", "93.184.216.34")
    assert run(resolver.refusal("mixed.example")) == (
        "mixed.example resolves to 10.0.0.5 (private)"
    )
    assert run(resolver.refusal("public.example")) is None


def test_rebinding_style_ipv4_mapped_answer_is_refused(fake_dns: FakeDNS) -> None:
    fake_dns.answers["sneaky.example"] = ["::ffff:127.0.0.1"]
    why = run(Resolver().refusal("sneaky.example"))
    assert why == "sneaky.example resolves to ::ffff:127.0.0.1 (loopback)"


def test_unresolvable_host_is_left_to_the_download(fake_dns: FakeDNS) -> None:
    fake_dns.answers["gone.example"] = None
    resolver = Resolver()
    assert run(resolver.addresses("gone.example")) == ()
    assert run(resolver.refusal("gone.example")) is None


def test_answers_are_cached_per_host(fake_dns: FakeDNS) -> None:
    fake_dns.answers["once.example"] = ["10.0.0.1"]
    resolver = Resolver()
    first = run(resolver.addresses("once.example"))
    fake_dns.answers["once.example"] = ["93.184.216.34"]  # a rebinding answer is never asked for
    assert run(resolver.addresses("once.example")) == first
    assert run(resolver.refusal("once.example")) is not None
    assert fake_dns.calls == ["once.example"]
