"""The SSRF guard: outgoing deliveries go to public internet addresses only.

Integration URLs are chosen by admins over the API, so without this guard the service
could be made to POST into its own network (cloud metadata at 169.254.169.254, an admin
port on 127.0.0.1, a database on 10.x). ``FEEDBACK_ALLOW_PRIVATE_TARGETS=true`` lifts the
address check for deployments whose helpdesk or webhook receiver is on the same network
(and for tests against 127.0.0.1).

Remaining window (DNS rebinding): the name is resolved here and then again by httpx
when it connects, so a name whose DNS answer changes between the two lookups (a very
short TTL, an attacker's resolver) can still reach a private address. Closing it
needs connecting to the exact address checked here (a custom transport that pins the IP
while keeping the host name for TLS); until then the guard stops literal addresses,
names of internal hosts and stable DNS records, and the adapters never follow redirects.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import httpx

from app.integrations.base import PermanentDeliveryError, RetryableDeliveryError

ALLOWED_SCHEMES = frozenset({"http", "https"})
RESOLVE_TIMEOUT_S = 10.0

IPAddress = IPv4Address | IPv6Address

# RFC 6598 shared address space (carrier-grade NAT): not private per Python, not public.
_SHARED_ADDRESS_SPACE = IPv4Network("100.64.0.0/10")
# RFC 6052 well-known NAT64 prefix: the last 32 bits are the IPv4 address reached.
_NAT64_WELL_KNOWN = IPv6Network("64:ff9b::/96")


class UnsafeTargetError(PermanentDeliveryError):
    """The target URL is not an http(s) URL of a public address."""


def non_public_reason(address: IPAddress) -> str | None:
    """Why ``address`` must not be a delivery target, or None when it is public."""
    if isinstance(address, IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = non_public_reason(embedded)
            if reason is not None:
                return f"{reason} (embedded in an IPv6 address)"
        if address.is_site_local:
            return "site-local"
    # Most specific first, so that the message names the real category.
    checks: tuple[tuple[bool, str], ...] = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (
            isinstance(address, IPv4Address) and address in _SHARED_ADDRESS_SPACE,
            "in the shared (carrier-grade NAT) range",
        ),
        (address.is_reserved, "reserved"),
        (address.is_private, "private"),
        (not address.is_global, "not globally routable"),
    )
    for applies, reason in checks:
        if applies:
            return reason
    return None


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv4-mapped, 6to4 or NAT64 IPv6 address leads to."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64_WELL_KNOWN:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


async def ensure_public_target(url: str, *, allow_private: bool) -> None:
    """Raise :class:`UnsafeTargetError` unless ``url`` is http(s) and its host, a literal
    address or every address its name resolves to, is public (or ``allow_private``).

    A name that cannot be resolved right now raises RetryableDeliveryError: DNS outages
    pass, and a permanently unknown name shows up as repeated failures in the outbox."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise UnsafeTargetError("target URL is not a valid URL") from None
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise UnsafeTargetError("target URL must use http or https")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise UnsafeTargetError("target URL has no host")
    if allow_private:
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    for address in await _addresses_of(host, port):
        reason = non_public_reason(address)
        if reason is not None:
            raise UnsafeTargetError(
                f"target address is {reason}; private targets need "
                "FEEDBACK_ALLOW_PRIVATE_TARGETS=true"
            )


async def _addresses_of(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass  # a name, not a literal address
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError) as exc:  # socket.gaierror is an OSError
        raise RetryableDeliveryError(
            f"could not resolve the target host ({type(exc).__name__})"
        ) from None
    addresses: list[IPAddress] = []
    for family, _type, _proto, _canonname, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            # An IPv6 link-local answer may carry a zone ("fe80::1%eth0"); the zone does
            # not change what the address is.
            addresses.append(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
    if not addresses:
        raise RetryableDeliveryError("could not resolve the target host (no addresses)")
    return addresses
