"""MTA-STS (RFC 8461) for outbound mail: the destination's policy discovered, fetched over
verified HTTPS, cached, and which MX hosts it allows.

The policy host is resolved through ``postroom.dns`` like everything else; HTTP/1.1 is spoken
with h11 over an asyncio TLS stream whose certificate is checked against
``mta-sts.<domain>`` (system CAs plus POSTROOM_OUTBOUND_CA_FILE).
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import h11
import structlog
from cryptography import x509
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from postroom.config import Settings
from postroom.dns import DNSError, Resolver, get_resolver

log = structlog.get_logger("postroom.delivery.mta_sts")

Mode = Literal["enforce", "testing", "none"]

# RFC 8461 §3.2: max_age is at most 31557600 seconds; §3.3: a policy body of 64 KiB at most
# is plenty (a few lines), and a fetch that takes longer than this is not worth waiting for.
MAX_AGE_LIMIT = 31557600
MAX_POLICY_BYTES = 64 * 1024
FETCH_SECONDS = 10.0


class PolicyError(ValueError):
    """A policy that cannot be fetched or parsed: the domain is treated as having none."""


@dataclass(frozen=True, slots=True)
class Policy:
    mode: Mode
    mx: tuple[str, ...]
    max_age: int
    id: str = ""

    def allows(self, host: str) -> bool:
        return any(mx_matches(pattern, host) for pattern in self.mx)


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 §4.1: an exact name, or "*." matching exactly one leftmost label."""
    pattern = pattern.lower().rstrip(".")
    host = host.lower().rstrip(".")
    if pattern.startswith("*."):
        label, dot, rest = host.partition(".")
        return bool(label) and bool(dot) and rest == pattern[2:]
    return host == pattern


def parse_policy(text: str) -> Policy:
    """RFC 8461 §3.2: "key: value" lines (CRLF or LF); version STSv1, mode, max_age, mx."""
    fields: dict[str, str] = {}
    mx: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        key, colon, value = line.partition(":")
        if not colon:
            raise PolicyError(f"policy line without a colon: {line[:60]!r}")
        key, value = key.strip().lower(), value.strip()
        if key == "mx":
            mx.append(value)
        else:
            fields.setdefault(key, value)  # §3.2: later duplicates are ignored
    if fields.get("version") != "STSv1":
        raise PolicyError("policy version is not STSv1")
    mode = fields.get("mode")
    if mode not in ("enforce", "testing", "none"):
        raise PolicyError(f"bad policy mode {mode!r}")
    age = fields.get("max_age", "")
    if not age.isdigit() or len(age) > 10:
        raise PolicyError(f"bad max_age {age!r}")
    if mode != "none" and not mx:
        raise PolicyError("a policy in enforce or testing mode names no mx")
    return Policy(mode, tuple(mx), min(int(age), MAX_AGE_LIMIT))  # type: ignore[arg-type]


def record_id(texts: list[bytes]) -> str | None:
    """RFC 8461 §3.1: the id of the one "v=STSv1" TXT record; None without exactly one."""
    ids = []
    for raw in texts:
        text = raw.decode("ascii", "replace")
        tags = {}
        for part in text.split(";"):
            key, eq, value = part.strip().partition("=")
            if eq:
                tags[key.strip()] = value.strip()
        if text.startswith("v=STSv1") and tags.get("v") == "STSv1" and tags.get("id"):
            ids.append(tags["id"])
    return ids[0] if len(ids) == 1 else None


@lru_cache(maxsize=4)
def _context(ca_file: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@lru_cache(maxsize=4)
def _trust_store(ca_file: Path | None) -> Store:
    """The system's CA certificates and POSTROOM_OUTBOUND_CA_FILE's, for `certificate_problem`."""
    certificates: list[x509.Certificate] = []
    for path in (ssl.get_default_verify_paths().cafile, ca_file):
        if path is None:
            continue
        try:
            text = Path(path).read_bytes()
        except OSError as exc:
            log.warning("delivery.mta_sts.ca_file_unreadable", path=str(path), error=str(exc))
            continue
        # One by one: a CA certificate that cryptography refuses (the system bundle has old
        # ones with a negative serial number) costs only itself, not the whole bundle.
        for block in _PEM.findall(text):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    certificates.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                continue
    return Store(certificates)


_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def certificate_problem(chain: Sequence[bytes], host: str, settings: Settings) -> str | None:
    """What would make enforce mode refuse this chain (DER, leaf first) for the MX ``host``
    (RFC 8461 §4.2: valid for the name, chaining to a trusted CA, within its dates); None
    when it would pass. For testing mode, which reports and delivers anyway."""
    if not chain:
        return "the server sent no certificate"
    try:
        leaf, *issuers = (x509.load_der_x509_certificate(der) for der in chain)
        verifier = (
            PolicyBuilder()
            .store(_trust_store(settings.outbound_ca_file))
            # As OpenSSL checks it in enforce mode: the chain and the name, not every detail
            # of the CA/Browser Forum's profile of the leaf.
            .extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                ee_policy=ExtensionPolicy.permit_all().require_present(
                    x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
                ),
            )
            .build_server_verifier(x509.DNSName(host))
        )
        verifier.verify(leaf, issuers)
    except (ValueError, VerificationError) as exc:
        return str(exc)[:300]
    return None


def verified_context(settings: Settings) -> ssl.SSLContext:
    """Certificates checked against the name: for the policy host and an MTA-STS MX."""
    return _context(settings.outbound_ca_file)


async def fetch_policy(domain: str, settings: Settings, resolver: Resolver) -> Policy:
    """GET https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461 §3.3): no redirects,
    a 200 with text/plain, the certificate valid for the host."""
    host = f"mta-sts.{domain}"
    addresses = await resolver.addresses(host)
    if not addresses:
        raise PolicyError(f"{host} has no address")
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(
            addresses[0],
            settings.mta_sts_policy_port,
            ssl=verified_context(settings),
            server_hostname=host,
        ),
        FETCH_SECONDS,
    )
    try:
        connection = h11.Connection(h11.CLIENT)
        request = h11.Request(
            method="GET",
            target="/.well-known/mta-sts.txt",
            headers=[("Host", host), ("User-Agent", "Postroom"), ("Connection", "close")],
        )
        writer.write(connection.send(request) + connection.send(h11.EndOfMessage()))
        await writer.drain()
        body = b""
        status = 0
        content_type = ""
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await asyncio.wait_for(reader.read(16384), FETCH_SECONDS)
                connection.receive_data(data)
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                content_type = dict(event.headers).get(b"content-type", b"").decode("latin-1")
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_POLICY_BYTES:
                    raise PolicyError("the policy is larger than 64 KiB")
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
    finally:
        writer.close()
    if status != 200:
        raise PolicyError(f"the policy host answered {status}")  # §3.3: no redirects either
    if not content_type.lower().startswith("text/plain"):
        raise PolicyError(f"the policy is served as {content_type!r}, not text/plain")
    return parse_policy(body.decode("utf-8", "replace"))


def applies(domain: str, settings: Settings) -> bool:
    """Policies govern mail routed by the destination's MX records: not an address literal,
    a transport map entry naming a host, or the relay host (as in Postfix)."""
    if domain.startswith("["):
        return False
    entry = settings.transport_map.get(domain)
    if entry is not None:
        return entry.mx_lookup and entry.host == domain
    return settings.relayhost is None


@dataclass
class PolicyCache:
    """Policies per destination domain, kept for their max_age (RFC 8461 §5.1: refetched when
    the TXT id changes); a fetch that fails keeps a cached policy in force."""

    _cache: dict[str, tuple[float, Policy]] = field(default_factory=dict)

    async def policy_for(
        self, domain: str, settings: Settings, resolver: Resolver | None = None
    ) -> Policy | None:
        resolver = resolver or get_resolver(settings)
        cached = self._cache.get(domain)
        now = time.monotonic()
        try:
            current_id = record_id(await resolver.txt(f"_mta-sts.{domain}"))
        except DNSError:
            current_id = None
        if cached is not None and cached[0] > now and (current_id in (None, cached[1].id)):
            return cached[1]
        if current_id is None:
            return cached[1] if cached is not None and cached[0] > now else None
        try:
            fetched = await fetch_policy(domain, settings, resolver)
        except (
            PolicyError,
            OSError,
            TimeoutError,
            ssl.SSLError,
            h11.ProtocolError,
            DNSError,
        ) as exc:
            log.info("delivery.mta_sts.fetch_failed", domain=domain, error=str(exc))
            # §5.1: a policy still within its max_age stays in force.
            return cached[1] if cached is not None and cached[0] > now else None
        policy = Policy(fetched.mode, fetched.mx, fetched.max_age, current_id)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[domain] = (now + policy.max_age, policy)
        return policy
