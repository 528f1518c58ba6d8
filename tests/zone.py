"""The records `postroom dns show` prints, served by the test DNS server, and a lookup for
dkimpy's verifier that asks that server."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import dns.resolver

from postroom import dns_records
from tests.dns_server import DnsServer, Record


def served(records: Iterable[dns_records.Record]) -> list[Record]:
    """The test server's records for these (TXT as its text, the others as zone data)."""
    return [Record(r.name, r.type, r.value) for r in records]


def dkim_lookup(server: DnsServer) -> Callable[..., bytes | None]:
    """dkimpy's ``dnsfunc``: the TXT record at a name, as the test DNS server answers it."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server.address]
    resolver.port = server.port

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        try:
            answer = resolver.resolve(name.decode(), "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        return b"".join(b"".join(r.strings) for r in answer)

    return lookup
