"""DANE for outbound SMTP (RFC 7672): the TLSA records of an MX host, believed only from
answers a validating resolver vouched for (the AD bit), and the server's certificate chain
matched against them.

The AD bit is only as good as the path to the resolver that set it: POSTROOM_DNS_RESOLVERS
(or /etc/resolv.conf) must name a validating resolver we trust, on this host or reached over
a trusted network (RFC 4035 §4.9.3, RFC 6698 §4.1). The matching is pure code here; the
STARTTLS that feeds it the chain is in ``remote``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)
from dns.rdtypes.ANY.TLSA import TLSA

from postroom.delivery.mx import Hop
from postroom.dns import DNSError, Resolver

log = structlog.get_logger("postroom.delivery.dane")

# RFC 7218 §2: the mnemonics of the three TLSA fields.
DANE_TA, DANE_EE = 2, 3
CERT, SPKI = 0, 1
FULL, SHA2_256, SHA2_512 = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Tlsa:
    """One TLSA record (RFC 6698 §2.1)."""

    usage: int
    selector: int
    mtype: int
    data: bytes

    @property
    def usable(self) -> bool:
        """RFC 7672 §3.1.3: PKIX-TA(0) and PKIX-EE(1) are not for SMTP; a selector or
        matching type this code does not know makes the record unusable (RFC 6698 §4.1)."""
        return (
            self.usage in (DANE_TA, DANE_EE)
            and self.selector in (CERT, SPKI)
            and self.mtype in (FULL, SHA2_256, SHA2_512)
        )

    def __str__(self) -> str:
        return f"{self.usage} {self.selector} {self.mtype}"


@dataclass(frozen=True, slots=True)
class HostTlsa:
    """What DNS said about one MX host: its TLSA records (secure), or that looking them up
    failed (``failed``: the host cannot be used, RFC 7672 §2.2)."""

    records: tuple[Tlsa, ...] = ()
    failed: str | None = None

    @property
    def usable(self) -> tuple[Tlsa, ...]:
        return tuple(r for r in self.records if r.usable)


@dataclass(frozen=True, slots=True)
class Verdict:
    matched: bool
    how: str  # "DANE-EE", "DANE-TA", or why nothing matched


def _selected(certificate: x509.Certificate, selector: int) -> bytes:
    if selector == CERT:
        return certificate.public_bytes(Encoding.DER)
    return certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def matches(record: Tlsa, certificate: x509.Certificate) -> bool:
    """RFC 6698 §2.1.2-2.1.3: the selected part, hashed as the matching type says, equals
    the record's data."""
    selected = _selected(certificate, record.selector)
    if record.mtype == SHA2_256:
        selected = hashlib.sha256(selected).digest()
    elif record.mtype == SHA2_512:
        selected = hashlib.sha512(selected).digest()
    return hmac.compare_digest(selected, record.data)


def verify(
    records: Iterable[Tlsa],
    chain: Sequence[bytes],
    names: Sequence[str],
    *,
    now: dt.datetime,
) -> Verdict:
    """Whether the server's chain (DER, leaf first) satisfies one usable record.

    RFC 7672 §3.1.1: DANE-EE(3) matches the leaf alone; its names and dates are not checked.
    §3.1.2: DANE-TA(2) matches a CA certificate the server sent; the leaf must chain to it,
    be within its dates, and name one of ``names`` (§3.2.2: the MX host, the destination).
    """
    if not chain:
        return Verdict(False, "the server sent no certificate")
    try:
        certificates = [x509.load_der_x509_certificate(der) for der in chain]
    except ValueError as exc:
        return Verdict(False, f"the server's certificate does not parse: {exc}")
    leaf, issuers = certificates[0], certificates[1:]
    usable = [r for r in records if r.usable]
    for record in usable:
        if record.usage == DANE_EE and matches(record, leaf):
            return Verdict(True, "DANE-EE")
    for record in usable:
        if record.usage != DANE_TA:
            continue
        for anchor in issuers:
            if matches(record, anchor) and _chains_to(leaf, issuers, anchor, names, now):
                return Verdict(True, "DANE-TA")
    listed = ", ".join(sorted({str(r) for r in usable}))
    return Verdict(False, f"no TLSA record ({listed}) matches the certificate chain")


def _chains_to(
    leaf: x509.Certificate,
    issuers: list[x509.Certificate],
    anchor: x509.Certificate,
    names: Sequence[str],
    now: dt.datetime,
) -> bool:
    """The leaf is signed (through ``issuers``) by ``anchor``, valid now and for a name."""
    store = Store([anchor])
    # The anchor is vouched for by DNSSEC, not by the web PKI: its CAs must still be CAs,
    # but the leaf need only name the host (RFC 7672 §3.2.3), whatever else it carries.
    leaf_policy = ExtensionPolicy.permit_all().require_present(
        x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
    )
    for name in names:
        verifier = (
            PolicyBuilder()
            .store(store)
            .time(now)
            .extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=leaf_policy
            )
            .build_server_verifier(x509.DNSName(name))
        )
        try:
            verifier.verify(leaf, issuers)
        except VerificationError:
            continue
        return True
    return False


def peer_chain(ssl_object: Any) -> list[bytes]:
    """The chain the server sent (DER, leaf first), whether or not anything verified it."""
    unverified = getattr(ssl_object, "get_unverified_chain", None)  # Python 3.13
    if unverified is None:
        # Python 3.10-3.12 have it on the C object only.
        unverified = ssl_object._sslobj.get_unverified_chain
    chain = unverified() or []
    return [
        c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
        for c in chain
    ]


async def lookup(hops: Sequence[Hop], resolver: Resolver) -> dict[str, HostTlsa]:
    """The TLSA records of each MX host that may have them: one whose MX and address
    answers were secure (RFC 7672 §2.2.1-2.2.2). A host absent from the result has no
    DANE (no records, or an insecure answer): TLS stays opportunistic there."""
    found: dict[str, HostTlsa] = {}
    for hop in hops:
        key = f"{hop.name}:{hop.port}"
        if not hop.secure or hop.relay or key in found:
            continue
        # RFC 7672 §3.2.1 / RFC 6698 §3: _port._tcp.<host>.
        name = f"_{hop.port}._tcp.{hop.name}"
        try:
            answer = await resolver.lookup(name, "TLSA")
        except DNSError as exc:
            # §2.2: a secure host whose TLSA lookup fails (SERVFAIL, also what a validating
            # resolver says of a bogus answer) is not used.
            found[key] = HostTlsa(failed=f"TLSA lookup of {name} failed: {exc}")
            continue
        if not answer.authentic or not answer.records:
            # §2.2: TLSA records in an insecure answer are ignored; none: no DANE here.
            if answer.records:
                log.info("delivery.dane.insecure_tlsa", host=hop.name)
            continue
        found[key] = HostTlsa(
            tuple(
                Tlsa(int(r.usage), int(r.selector), int(r.mtype), bytes(r.cert))
                for r in answer.records
                if isinstance(r, TLSA)
            )
        )
    return found
