"""Test zones for sender authentication: SPF, DKIM (RSA and Ed25519 keys), DMARC and ARC
records, and helpers that sign messages with those keys (dkimpy)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import cached_property

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from tests.dns_server import Record, txt

# The address smtp-in sees the tests' clients coming from.
CLIENT_IP = "127.0.0.1"


@dataclass
class SigningKey:
    """A DKIM key pair: the private part for dkimpy, the public one as its DNS record."""

    algorithm: str  # "rsa" or "ed25519"
    private: bytes
    record: str

    @classmethod
    def rsa(cls, bits: int = 2048) -> SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls("rsa", private, f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}")

    @classmethod
    def ed25519(cls) -> SigningKey:
        # RFC 8463 §4: the public key is the raw 32 octets, base64; dkimpy signs with the seed.
        key = ed25519.Ed25519PrivateKey.generate()
        seed = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return cls(
            "ed25519",
            base64.b64encode(seed),
            f"v=DKIM1; k=ed25519; p={base64.b64encode(public).decode()}",
        )

    def sign(self, message: bytes, domain: str, selector: str) -> bytes:
        """``message`` with a DKIM-Signature of ``domain`` on top."""
        algorithm = b"ed25519-sha256" if self.algorithm == "ed25519" else b"rsa-sha256"
        header = dkim.sign(
            message,
            selector.encode(),
            domain.encode(),
            self.private,
            canonicalize=(b"relaxed", b"relaxed"),
            signature_algorithm=algorithm,
            include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
        )
        return bytes(header) + message

    def arc_seal(self, message: bytes, domain: str, selector: str, authserv_id: str) -> bytes:
        """``message`` with the next ARC set of a forwarder at ``domain`` on top."""
        headers = dkim.arc_sign(
            message,
            selector.encode(),
            domain.encode(),
            self.private,
            authserv_id.encode(),
            include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
        )
        assert headers, "arc_sign found no Authentication-Results of the forwarder"
        return b"".join(headers) + message


class Keys:
    """The test keys, made once per test process."""

    @cached_property
    def rsa(self) -> SigningKey:
        return SigningKey.rsa()

    @cached_property
    def ed25519(self) -> SigningKey:
        return SigningKey.ed25519()

    @cached_property
    def forwarder(self) -> SigningKey:
        return SigningKey.rsa()


KEYS = Keys()


def zone_records() -> list[Record]:
    """Every record the sender-authentication tests use, under the zone ``test``."""
    ip = CLIENT_IP
    return [
        # SPF (RFC 7208 §2.6): one domain per result.
        txt("pass.test", f"v=spf1 ip4:{ip} -all"),
        txt("fail.test", "v=spf1 ip4:192.0.2.1 -all"),
        txt("softfail.test", "v=spf1 ip4:192.0.2.1 ~all"),
        txt("neutral.test", "v=spf1 ?all"),
        Record("none.test", "A", "192.0.2.2"),
        txt("permerror.test", "v=spf1 ip4:192.0.2.1 frobnicate -all"),
        txt("temperror.test", "v=spf1 include:broken.invalid -all"),
        txt("mx.pass.test", f"v=spf1 ip4:{ip} -all"),
        txt("mx.fail.test", "v=spf1 -all"),
        # RFC 7208 §4.6.4: three void lookups, and eleven DNS-querying terms.
        txt("voids.test", "v=spf1 a:nx1.voids.test a:nx2.voids.test a:nx3.voids.test -all"),
        txt(
            "lookups.test",
            "v=spf1 " + " ".join(f"include:l{i}.lookups.test" for i in range(11)) + " -all",
        ),
        *(txt(f"l{i}.lookups.test", "v=spf1 -all") for i in range(11)),
        # DKIM keys.
        txt("rsa._domainkey.signed.test", KEYS.rsa.record),
        txt("ed._domainkey.signed.test", KEYS.ed25519.record),
        txt("revoked._domainkey.signed.test", "v=DKIM1; k=rsa; p="),
        txt("rsa._domainkey.mail.aligned.test", KEYS.rsa.record),
        txt("rsa._domainkey.mail.strict.test", KEYS.rsa.record),
        txt("rsa._domainkey.reject.test", KEYS.rsa.record),
        txt("arc._domainkey.forwarder.test", KEYS.forwarder.record),
        # DMARC (RFC 7489 §6.3).
        txt("_dmarc.reject.test", "v=DMARC1; p=reject"),
        txt("_dmarc.quarantine.test", "v=DMARC1; p=quarantine"),
        txt("_dmarc.monitor.test", "v=DMARC1; p=none"),
        txt("_dmarc.aligned.test", "v=DMARC1; p=reject; sp=quarantine"),
        txt("_dmarc.strict.test", "v=DMARC1; p=reject; adkim=s; aspf=s"),
        txt("_dmarc.signed.test", "v=DMARC1; p=reject"),
        txt("_dmarc.pass.test", "v=DMARC1; p=reject"),
        txt("_dmarc.broken.test", "v=DMARC1; p=banish"),
        txt("mail.aligned.test", f"v=spf1 ip4:{ip} -all"),
        txt("mail.strict.test", f"v=spf1 ip4:{ip} -all"),
    ]


def message(
    from_: str = "alice@signed.test",
    subject: str = "Hello",
    body: str = "Hi Bob,\r\nsee you at noon.\r\n",
    to: str = "bob@example.test",
) -> bytes:
    """A small plain message with CRLF line ends."""
    return (
        f"From: {from_}\r\n"
        f"To: {to}\r\n"
        f"Subject: {subject}\r\n"
        "Date: Wed, 02 Dec 2026 08:00:00 +0000\r\n"
        f"Message-ID: <{abs(hash((from_, subject, body)))}@signed.test>\r\n"
        "\r\n"
        f"{body}"
    ).encode()
