"""postroom.dns against a real authoritative server (dnsmasq): answers, negative answers, the
cache honouring TTLs, server failures and timeouts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from postroom.config import load_settings
from postroom.dns import InvalidName, Resolver, TemporaryDNSError, mx_records
from tests.dns_server import DnsServer, Record, silent_port, start_dns_server, txt

pytestmark = pytest.mark.peer

DKIM_LIKE = "v=DKIM1; k=rsa; p=" + "A" * 600

RECORDS = [
    txt("example.test", "v=spf1 ip4:192.0.2.1 -all"),
    txt("sel._domainkey.example.test", DKIM_LIKE),
    Record("example.test", "MX", "10 mx1.example.test."),
    Record("example.test", "MX", "20 mx2.example.test."),
    Record("mx1.example.test", "A", "127.0.0.10"),
    Record("mx1.example.test", "AAAA", "::10"),
    Record("alias.example.test", "CNAME", "example.test."),
]


@pytest.fixture
def server(dns_server: Callable[..., DnsServer]) -> DnsServer:
    return dns_server(RECORDS)


async def test_txt_record_is_answered(server: DnsServer) -> None:
    resolver = Resolver(server.servers)
    assert await resolver.txt("example.test") == [b"v=spf1 ip4:192.0.2.1 -all"]


async def test_long_txt_record_parts_are_joined(server: DnsServer) -> None:
    # RFC 7208 §3.3 and RFC 6376 §3.6.2.2: the strings of one TXT record are concatenated.
    resolver = Resolver(server.servers)
    assert await resolver.txt("sel._domainkey.example.test") == [DKIM_LIKE.encode()]


async def test_mx_records_with_preferences(server: DnsServer) -> None:
    resolver = Resolver(server.servers)
    answer = await resolver.mx("Example.Test.")
    assert sorted(mx_records(answer)) == [(10, "mx1.example.test"), (20, "mx2.example.test")]


async def test_addresses_ipv4_then_ipv6(server: DnsServer) -> None:
    resolver = Resolver(server.servers)
    assert await resolver.addresses("mx1.example.test") == ["127.0.0.10", "::10"]


async def test_nxdomain_is_an_answer_that_the_name_does_not_exist(server: DnsServer) -> None:
    answer = await Resolver(server.servers).lookup("nowhere.example.test", "TXT")
    assert (answer.exists, answer.records, answer.void) == (False, (), True)


async def test_nodata_is_an_existing_name_without_records(server: DnsServer) -> None:
    answer = await Resolver(server.servers).lookup("mx1.example.test", "TXT")
    assert (answer.exists, answer.records, answer.void) == (True, (), True)


async def test_cname_is_followed_to_the_canonical_name(server: DnsServer) -> None:
    answer = await Resolver(server.servers).lookup("alias.example.test", "TXT")
    assert answer.name == "example.test"
    assert len(answer.records) == 1


async def test_answers_stay_cached_for_their_ttl(tmp_path: Path) -> None:
    with start_dns_server(RECORDS, tmp_path, ttl=300) as server:
        resolver = Resolver(server.servers, timeout=0.5)
        assert await resolver.txt("example.test") == [b"v=spf1 ip4:192.0.2.1 -all"]
        nx = await resolver.lookup("nowhere.example.test", "A")
    # The server is gone; within the TTL both answers come from the cache.
    assert await resolver.txt("example.test") == [b"v=spf1 ip4:192.0.2.1 -all"]
    assert await resolver.lookup("nowhere.example.test", "A") == nx


async def test_answers_expire_after_their_ttl(tmp_path: Path) -> None:
    with start_dns_server(RECORDS, tmp_path, ttl=1) as server:
        resolver = Resolver(server.servers, timeout=0.5)
        await resolver.txt("example.test")
        await resolver.lookup("nowhere.example.test", "A")
    await asyncio.sleep(1.1)  # one TTL
    with pytest.raises(TemporaryDNSError):
        await resolver.txt("example.test")
    with pytest.raises(TemporaryDNSError):
        await resolver.lookup("nowhere.example.test", "A")


async def test_answers_tell_when_their_ttl_runs_out(tmp_path: Path) -> None:
    with start_dns_server(RECORDS, tmp_path, ttl=300) as server:
        resolver = Resolver(server.servers)
        found = await resolver.lookup("example.test", "TXT")
        missing = await resolver.lookup("nowhere.example.test", "A")
    now = time.time()
    assert now + 200 < found.expires <= now + 300
    assert now + 200 < missing.expires <= now + 300


async def test_flush_forgets_cached_answers(tmp_path: Path) -> None:
    with start_dns_server(RECORDS, tmp_path) as server:
        resolver = Resolver(server.servers, timeout=0.5)
        await resolver.txt("example.test")
    resolver.flush()
    with pytest.raises(TemporaryDNSError):
        await resolver.txt("example.test")


async def test_refused_question_is_a_temporary_error(server: DnsServer) -> None:
    with pytest.raises(TemporaryDNSError, match="failed"):
        await Resolver(server.servers).txt("example.org")


async def test_silent_server_is_a_timeout() -> None:
    with silent_port() as port:
        resolver = Resolver([("127.0.0.1", port)], timeout=0.3)
        with pytest.raises(TemporaryDNSError, match="timed out"):
            await resolver.txt("example.test")


async def test_next_server_answers_when_the_first_is_silent(server: DnsServer) -> None:
    with silent_port() as port:
        resolver = Resolver([("127.0.0.1", port), *server.servers], timeout=3)
        assert await resolver.txt("example.test") == [b"v=spf1 ip4:192.0.2.1 -all"]


@pytest.mark.parametrize("name", ["a..b.test", "x" * 64 + ".test", ".".join(["abcdefgh"] * 40)])
async def test_impossible_name_is_invalid(server: DnsServer, name: str) -> None:
    with pytest.raises(InvalidName):
        await Resolver(server.servers).txt(name)


async def test_resolvers_come_from_the_setting(server: DnsServer) -> None:
    settings = load_settings({"POSTROOM_DNS_RESOLVERS": server.resolvers})
    resolver = Resolver.from_settings(settings)
    assert await resolver.txt("example.test") == [b"v=spf1 ip4:192.0.2.1 -all"]
