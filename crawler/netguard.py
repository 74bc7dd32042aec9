"""Address checks: refuse private, loopback, link-local and other non-public destinations.

A name is resolved once per crawl (cached) and refused if *any* address it resolves to is not
public, so a host that answers with both a public and a private address cannot be used to reach
the private one. The peer address of every response is checked again (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def non_public(ip: str | IPAddress) -> str | None:
    """Why an address is not public ("loopback", "private", ...), or None if it is public."""
    try:
        addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    except ValueError:
        return "unparseable address"
    if isinstance(addr, ipaddress.IPv6Address):
        mapped = addr.ipv4_mapped or addr.sixtofour
        if mapped is not None:
            return non_public(mapped)
    for attr in ("is_loopback", "is_link_local", "is_private", "is_multicast", "is_reserved",
                 "is_unspecified"):
        if getattr(addr, attr):
            return attr[3:].replace("_", "-")
    if isinstance(addr, ipaddress.IPv4Address) and addr in _CGNAT:
        return "shared (CGNAT)"
    return None


_CGNAT = ipaddress.ip_network("100.64.0.0/10")


class Resolver:
    """Caches host -> addresses for the crawl; resolution happens off the event loop."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[str, ...]] = {}

    async def addresses(self, host: str) -> tuple[str, ...]:
        if host in self._cache:
            return self._cache[host]
        try:
            ipaddress.ip_address(host.strip("[]"))
            result: tuple[str, ...] = (host.strip("[]"),)
        except ValueError:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
            except OSError:
                infos = []
            result = tuple(sorted({str(info[4][0]) for info in infos}))
        self._cache[host] = result
        return result

    async def refusal(self, host: str) -> str | None:
        """Why `host` must not be contacted without allow_private_network, else None."""
        addrs = await self.addresses(host)
        if not addrs:
            return None  # unresolvable: the download fails on its own and is recorded then
        for addr in addrs:
            why = non_public(addr)
            if why:
                return f"{host} resolves to {addr} ({why})"
        return None
