"""Next hops from real DNS answers (dnsmasq): MX order, the implicit MX, null MX, failures."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from postroom.config import load_settings
from postroom.delivery.mx import DestinationError, Hop, next_hops
from postroom.dns import Resolver
from tests.dns_server import DnsServer, Record

pytestmark = pytest.mark.peer

# The test zones point at loopback addresses, which are refused unless allowed (L2 below).
INTERNAL = {"POSTROOM_ALLOW_INTERNAL_DESTINATIONS": "true"}

RECORDS = [
    Record("two.test", "MX", "20 b.two.test."),
    Record("two.test", "MX", "10 a.two.test."),
    Record("a.two.test", "A", "127.0.0.21"),
    Record("b.two.test", "A", "127.0.0.22"),
    Record("b.two.test", "AAAA", "::22"),
    Record("bare.test", "A", "127.0.0.30"),
    Record("null.test", "MX", "0 ."),
    Record("null.test", "A", "127.0.0.31"),
    Record("nameless.test", "MX", "10 missing.nameless.test."),
]


@pytest.fixture
def resolver(dns_server: Callable[..., DnsServer]) -> Resolver:
    return Resolver(dns_server(RECORDS).servers)


async def test_mx_hosts_in_preference_order(resolver: Resolver) -> None:
    hops = await next_hops("two.test", load_settings(INTERNAL), resolver)
    assert hops == [
        Hop("a.two.test", "127.0.0.21", 25),
        Hop("b.two.test", "127.0.0.22", 25),
        Hop("b.two.test", "::22", 25),
    ]


async def test_domain_without_mx_is_its_own_mx(resolver: Resolver) -> None:
    # RFC 5321 §5.1: no MX records, the domain's own address is the implicit MX.
    assert await next_hops("bare.test", load_settings(INTERNAL), resolver) == [
        Hop("bare.test", "127.0.0.30", 25)
    ]


async def test_null_mx_is_permanent(resolver: Resolver) -> None:
    with pytest.raises(DestinationError, match=r"^5\.1\.10 .*null MX") as info:
        await next_hops("null.test", load_settings(INTERNAL), resolver)
    assert info.value.permanent


async def test_domain_that_does_not_exist_is_permanent(resolver: Resolver) -> None:
    with pytest.raises(DestinationError, match=r"^5\.1\.2 domain nowhere.test does not exist"):
        await next_hops("nowhere.test", load_settings(INTERNAL), resolver)


async def test_mx_host_without_address_is_permanent(resolver: Resolver) -> None:
    with pytest.raises(DestinationError, match=r"^5\.1\.2 host missing.nameless.test"):
        await next_hops("nameless.test", load_settings(INTERNAL), resolver)


async def test_server_failure_is_transient(resolver: Resolver) -> None:
    with pytest.raises(DestinationError, match=r"^4\.4\.3 MX lookup for example.org") as info:
        await next_hops("example.org", load_settings(INTERNAL), resolver)
    assert not info.value.permanent


async def test_transport_map_host_without_brackets_gets_its_mx_looked_up(
    resolver: Resolver,
) -> None:
    # Named in the transport map: internal addresses allowed without the setting.
    settings = load_settings({"POSTROOM_TRANSPORT_MAP": "elsewhere.example=two.test:2526"})
    hops = await next_hops("elsewhere.example", settings, resolver)
    assert hops[0] == Hop("a.two.test", "127.0.0.21", 2526)


async def test_lookups_go_to_the_resolvers_setting(dns_server: Callable[..., DnsServer]) -> None:
    server = dns_server(RECORDS)
    settings = load_settings({"POSTROOM_DNS_RESOLVERS": server.resolvers, **INTERNAL})
    assert await next_hops("bare.test", settings) == [Hop("bare.test", "127.0.0.30", 25)]


async def test_a_domain_that_resolves_only_to_internal_addresses_is_refused(
    resolver: Resolver,
) -> None:
    with pytest.raises(DestinationError) as info:
        await next_hops("two.test", load_settings({}), resolver)
    assert info.value.text == (
        "5.4.4 two.test resolves only to internal addresses (127.0.0.21, 127.0.0.22, ::22);"
        " not delivered there"
    )
    assert info.value.permanent


@pytest.mark.parametrize("literal", ["[127.0.0.1]", "[10.0.0.5]", "[169.254.1.1]", "[ipv6:::1]"])
async def test_an_internal_address_literal_is_refused(resolver: Resolver, literal: str) -> None:
    with pytest.raises(DestinationError, match=r"^5\.4\.4 .* internal addresses"):
        await next_hops(literal, load_settings({}), resolver)
