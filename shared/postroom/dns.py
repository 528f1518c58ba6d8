"""DNS for every Postroom process: one cached asynchronous stub resolver (dnspython)."""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.name
import dns.nameserver
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.ANY.TXT import TXT

from postroom.config import Settings, get_settings


class DNSError(Exception):
    """A lookup that gave no answer, neither records nor a definite "no such records"."""


class TemporaryDNSError(DNSError):
    """Timeout, SERVFAIL, REFUSED or no server reachable: try again later (SPF's temperror)."""


class InvalidName(DNSError):
    """The name cannot be a DNS name (empty or over-long label, over 255 octets)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """The outcome of one question: records, none of that type (NODATA), or no such name."""

    name: str
    """The canonical name the records were found under (after any CNAME), without final dot."""
    records: tuple[dns.rdata.Rdata, ...]
    exists: bool
    """False when the name does not exist (NXDOMAIN); then ``records`` is empty."""
    authentic: bool = False
    """The resolver set AD: it validated the answer with DNSSEC (RFC 4035 §3.2.3)."""
    expires: float = field(default=math.inf, compare=False)
    """When the answer's TTL (or the negative TTL, RFC 2308 §5) runs out (``time.time()``)."""

    @property
    def void(self) -> bool:
        """No records: NXDOMAIN or NODATA (RFC 7208 §4.6.4 counts these as void lookups)."""
        return not self.records


class Resolver:
    """Asynchronous lookups through the configured servers, answers cached for their TTL.

    The cache is dnspython's LRU cache: positive answers live for the smallest TTL of their
    records, negative ones (NXDOMAIN, NODATA) for the SOA's negative TTL (RFC 2308 §5).
    """

    def __init__(
        self,
        servers: Sequence[tuple[str, int]] = (),
        *,
        timeout: float = 5.0,
        cache_size: int = 10_000,
    ) -> None:
        try:
            resolver = dns.asyncresolver.Resolver(configure=not servers)
        except dns.resolver.NoResolverConfiguration:
            # No /etc/resolv.conf (or no server in it): a resolver on this host, as libc does.
            resolver = dns.asyncresolver.Resolver(configure=False)
            servers = servers or [("127.0.0.1", 53)]
        if servers:
            resolver.nameservers = [
                dns.nameserver.Do53Nameserver(host, port) for host, port in servers
            ]
        # The whole question may take ``timeout`` seconds; one server try at most 2 of them.
        resolver.lifetime = timeout
        resolver.timeout = min(2.0, timeout)
        # Ask whether a validating resolver checked the answer; DANE trusts only those.
        resolver.flags = dns.flags.RD | dns.flags.AD
        resolver.cache = dns.resolver.LRUCache(cache_size)
        self._resolver = resolver
        # Answers by question, until their expiry (names that do not exist too, for the
        # negative TTL): a hit costs a dict lookup instead of a pass through dnspython's
        # resolution (a third of a check's DNS time).
        self._answers: dict[tuple[str, str], tuple[float, Answer]] = {}
        self._derived: dict[Hashable, tuple[float, object]] = {}
        self._cache_size = cache_size

    @classmethod
    def from_settings(cls, settings: Settings) -> Resolver:
        return cls(
            settings.dns_resolvers,
            timeout=settings.dns_timeout,
            cache_size=settings.dns_cache_size,
        )

    def flush(self) -> None:
        """Forget every cached answer."""
        self._resolver.cache.flush()
        self._answers.clear()
        self._derived.clear()

    def recall(self, key: Hashable) -> object | None:
        """What ``keep`` was given under ``key``, until it expires; else None."""
        kept = self._derived.get(key)
        if kept is None:
            return None
        if kept[0] > time.time():
            return kept[1]
        del self._derived[key]
        return None

    def keep(self, key: Hashable, value: object, expires: float) -> None:
        """Remember a result computed from this resolver's answers until ``expires`` (the
        earliest expiry of those answers), so that it changes when they may."""
        if len(self._derived) >= self._cache_size:
            self._derived.pop(next(iter(self._derived)))  # the oldest entry
        self._derived[key] = (expires, value)

    def cached(self, name: str, rdtype: str) -> Answer | None:
        """The answer ``lookup`` would give at once from the quick cache, or None."""
        cached = self._answers.get((name.lower().rstrip("."), rdtype))
        if cached is not None and cached[0] > time.time():
            return cached[1]
        return None

    async def lookup(self, name: str, rdtype: str | dns.rdatatype.RdataType) -> Answer:
        """Records of ``rdtype`` at ``name``; raises TemporaryDNSError or InvalidName."""
        key = (name.lower().rstrip("."), rdtype if isinstance(rdtype, str) else rdtype.name)
        cached = self._answers.get(key)
        if cached is not None:
            if cached[0] > time.time():
                return cached[1]
            del self._answers[key]
        try:
            qname = dns.name.from_text(name)
        except dns.exception.DNSException as exc:
            raise InvalidName(f"{name!r} is not a DNS name: {exc}") from None
        try:
            answer = await self._resolver.resolve(qname, rdtype, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            # dnspython cached it under ANY with the negative TTL (RFC 2308 §5); reuse that.
            negative = self._resolver.cache.get((qname, dns.rdatatype.ANY, dns.rdataclass.IN))
            if negative is None:
                return Answer(_text(qname), (), exists=False)
            missing = Answer(_text(qname), (), exists=False, expires=negative.expiration)
            self._remember(key, missing)
            return missing
        except dns.resolver.LifetimeTimeout:
            raise TemporaryDNSError(f"{rdtype} lookup of {_text(qname)} timed out") from None
        except dns.resolver.NoNameservers as exc:
            # Every server answered SERVFAIL or REFUSED, or could not be reached.
            raise TemporaryDNSError(f"{rdtype} lookup of {_text(qname)} failed: {exc}") from None
        except (dns.name.NameTooLong, dns.name.LabelTooLong, dns.name.EmptyLabel) as exc:
            raise InvalidName(f"{name!r} is not a DNS name: {exc}") from None
        except dns.exception.DNSException as exc:
            raise TemporaryDNSError(f"{rdtype} lookup of {_text(qname)} failed: {exc}") from None
        records = tuple(answer.rrset) if answer.rrset is not None else ()
        result = Answer(
            _text(answer.canonical_name),
            records,
            exists=True,
            authentic=bool(answer.response.flags & dns.flags.AD),
            expires=answer.expiration,
        )
        self._remember(key, result)
        return result

    def _remember(self, key: tuple[str, str], answer: Answer) -> None:
        if len(self._answers) >= self._cache_size:
            self._answers.pop(next(iter(self._answers)))  # the oldest entry
        self._answers[key] = (answer.expires, answer)

    async def txt(self, name: str) -> list[bytes]:
        """Each TXT record at ``name`` as one string, its parts concatenated (RFC 7208 §3.3)."""
        answer = await self.lookup(name, dns.rdatatype.TXT)
        return [b"".join(r.strings) for r in answer.records if isinstance(r, TXT)]

    async def mx(self, name: str) -> Answer:
        """The MX records at ``name`` (``Answer.exists`` tells NXDOMAIN from none)."""
        return await self.lookup(name, dns.rdatatype.MX)

    async def addresses(self, name: str) -> list[str]:
        """The IPv4 then IPv6 addresses of ``name``; empty when it has none or does not exist."""
        found: list[str] = []
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            answer = await self.lookup(name, rdtype)
            found += [r.to_text() for r in answer.records]
        return found


def mx_records(answer: Answer) -> list[tuple[int, str]]:
    """(preference, exchange) pairs of an MX answer, exchanges without the final dot."""
    return [
        (int(r.preference), r.exchange.to_text(omit_final_dot=True))
        for r in answer.records
        if isinstance(r, MX)
    ]


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True)


def get_resolver(settings: Settings | None = None) -> Resolver:
    """The process-wide resolver of ``settings`` (default: the process's), one per setting."""
    settings = settings or get_settings()
    return _shared(tuple(settings.dns_resolvers), settings.dns_timeout, settings.dns_cache_size)


@lru_cache(maxsize=8)
def _shared(servers: tuple[tuple[str, int], ...], timeout: float, cache_size: int) -> Resolver:
    return Resolver(servers, timeout=timeout, cache_size=cache_size)
