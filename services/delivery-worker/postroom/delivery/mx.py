"""Where mail for a domain goes: the transport map, else MX records (RFC 5321 §5.1, RFC 7505)."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Sequence
from dataclasses import dataclass

from postroom.config import Settings
from postroom.dns import DNSError, InvalidName, Resolver, get_resolver, mx_records

# Addresses tried per destination, over all its MX hosts (Postfix's smtp_mx_address_limit is 5).
MAX_ADDRESSES = 5


@dataclass(frozen=True, slots=True)
class Hop:
    """One address to try, with the name it was found under (for logs and Remote-MTA)."""

    name: str
    address: str
    port: int
    # The relay host (POSTROOM_RELAYHOST): TLS and AUTH required (postroom.delivery.relay).
    relay: bool = False
    # The MX answer and the address answers that led here were DNSSEC-validated (AD):
    # only then are the host's TLSA records sought (RFC 7672 §2.2.1-2.2.2).
    secure: bool = False

    def __str__(self) -> str:
        address = f"[{self.address}]" if self.name != self.address else ""
        return f"{self.name}{address}:{self.port}"


class DestinationError(Exception):
    """No address to try: permanent (no such domain, null MX) or transient (DNS trouble)."""

    def __init__(self, text: str, *, permanent: bool) -> None:
        super().__init__(text)
        self.text = text
        self.permanent = permanent


def order_mx(records: Sequence[tuple[int, str]], rng: random.Random | None = None) -> list[str]:
    """MX host names by preference, in random order among equal preferences (RFC 5321 §5.1)."""
    rng = rng or random.Random()  # noqa: S311 - load spreading, not security
    shuffled = list(records)
    rng.shuffle(shuffled)
    return [name for _, name in sorted(shuffled, key=lambda r: r[0])]


def is_null_mx(records: Sequence[tuple[int, str]]) -> bool:
    """RFC 7505 §3: a single MX of preference 0 whose exchange is the root, ".", or ""."""
    return any(name in ("", ".") for _, name in records)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_internal(address: str) -> bool:
    """Loopback, link-local, private (RFC 1918, RFC 4193), unspecified, multicast or reserved:
    an address no public mail server has."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast or ip.is_reserved


async def next_hops(domain: str, settings: Settings, resolver: Resolver | None = None) -> list[Hop]:
    """The addresses to try for ``domain``, best first; raises DestinationError.

    Addresses found in DNS or given as an address literal are public ones only: anyone may
    send to any domain, and an MX record pointing at 127.0.0.1 or 10.0.0.5 would otherwise
    let a stranger reach internal port-25 services. A next hop the administrator named (the
    transport map, the relay host) may be anywhere, and POSTROOM_ALLOW_INTERNAL_DESTINATIONS
    lifts the rule for networks whose mail servers are all internal.
    """
    domain = domain.lower().rstrip(".")
    hops = await _next_hops(domain, settings, resolver)
    named = domain in settings.transport_map or settings.relayhost is not None
    if named or settings.allow_internal_destinations:
        return hops
    public = [h for h in hops if not is_internal(h.address)]
    if not public:
        raise DestinationError(
            f"5.4.4 {domain} resolves only to internal addresses"
            f" ({', '.join(sorted({h.address for h in hops}))}); not delivered there",
            permanent=True,
        )
    return public


async def _next_hops(domain: str, settings: Settings, resolver: Resolver | None) -> list[Hop]:
    resolver = resolver or get_resolver(settings)
    domain = domain.lower().rstrip(".")
    if domain.startswith("[") and domain.endswith("]"):  # RFC 5321 §4.1.3 address literal
        literal = domain[1:-1].removeprefix("ipv6:")
        if not _is_ip(literal):
            raise DestinationError(f"5.1.2 bad address literal {domain}", permanent=True)
        return [Hop(literal, literal, 25)]
    hop = settings.transport_map.get(domain)
    port = 25
    target = domain
    if hop is not None:
        port = hop.port
        if not hop.mx_lookup:
            if _is_ip(hop.host):
                return [Hop(hop.host, hop.host, port)]
            return (await _addresses(hop.host, port, resolver))[:MAX_ADDRESSES]
        target = hop.host
    elif settings.relayhost is not None:
        return await _relay_hops(settings, resolver)
    names, secure = await _mx_names(target, resolver)
    hops: list[Hop] = []
    last_error: DestinationError | None = None
    for name in names:
        try:
            hops += await _addresses(name, port, resolver, mx_secure=secure)
        except DestinationError as exc:
            last_error = exc
        if len(hops) >= MAX_ADDRESSES:
            break
    if not hops:
        raise last_error or DestinationError(f"4.4.4 no address for {target}", permanent=False)
    return hops[:MAX_ADDRESSES]


async def _mx_names(domain: str, resolver: Resolver) -> tuple[list[str], bool]:
    """The MX host names by preference, and whether the answer was DNSSEC-validated."""
    try:
        answer = await resolver.mx(domain)
    except InvalidName:
        raise DestinationError(f"5.1.2 bad domain name {domain}", permanent=True) from None
    except DNSError as exc:
        raise DestinationError(
            f"4.4.3 MX lookup for {domain} failed: {exc}", permanent=False
        ) from None
    if not answer.exists:
        raise DestinationError(f"5.1.2 domain {domain} does not exist", permanent=True)
    records = mx_records(answer)
    if not records:
        # RFC 5321 §5.1: no MX, the domain itself is the implicit MX
        return [domain], answer.authentic
    if is_null_mx(records):
        raise DestinationError(
            f"5.1.10 domain {domain} does not accept mail (null MX, RFC 7505)", permanent=True
        )
    return order_mx(records), answer.authentic


async def _addresses(
    name: str, port: int, resolver: Resolver, *, mx_secure: bool = False
) -> list[Hop]:
    found: list[Hop] = []
    nxdomain = True
    secure = mx_secure
    for rdtype in ("A", "AAAA"):
        try:
            answer = await resolver.lookup(name, rdtype)
        except InvalidName:
            raise DestinationError(f"5.1.2 bad host name {name}", permanent=True) from None
        except DNSError as exc:
            raise DestinationError(
                f"4.4.3 address lookup for {name} failed: {exc}", permanent=False
            ) from None
        nxdomain = nxdomain and not answer.exists
        secure = secure and answer.authentic
        found += [Hop(name, r.to_text(), port) for r in answer.records]
    if not found:
        if nxdomain:
            raise DestinationError(f"5.1.2 host {name} does not exist", permanent=True)
        raise DestinationError(f"5.1.2 host {name} has no address", permanent=True)
    return [Hop(h.name, h.address, h.port, secure=secure) for h in found]


async def _relay_hops(settings: Settings, resolver: Resolver) -> list[Hop]:
    """The relay host's addresses (its MX hosts' when given without brackets)."""
    relay = settings.relayhost
    assert relay is not None
    if not relay.mx_lookup:
        if _is_ip(relay.host):
            hops = [Hop(relay.host, relay.host, relay.port)]
        else:
            hops = await _addresses(relay.host, relay.port, resolver)
    else:
        hops = []
        for name in (await _mx_names(relay.host, resolver))[0]:
            hops += await _addresses(name, relay.port, resolver)
    return [Hop(h.name, h.address, h.port, relay=True) for h in hops[:MAX_ADDRESSES]]
