"""DKIM keys (RFC 6376, RFC 8463): made, encoded for the signer and published as DNS TXT."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from postroom.errors import InvalidInput

Algorithm = Literal["rsa", "ed25519"]
ALGORITHMS: tuple[Algorithm, ...] = get_args(Algorithm)
KeyState = Literal["pending", "active", "retired"]

# RFC 8301 §3.2: at least 1024 bits, and 2048 is what the large receivers expect.
RSA_BITS = 2048

# RFC 6376 §3.1: a selector is a sub-domain name; one label is what anyone uses.
_SELECTOR = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class KeyPair:
    """``private`` as the signer takes it (dkimpy: PEM for RSA, base64 seed for Ed25519);
    ``public`` as the p= tag of the key record."""

    algorithm: Algorithm
    private: bytes
    public: str


@dataclass(frozen=True, slots=True)
class DkimKey:
    """A stored key without its private half."""

    domain: str
    selector: str
    algorithm: Algorithm
    state: KeyState
    public_key: str
    created_at: datetime
    changed_at: datetime

    @property
    def record_name(self) -> str:
        return record_name(self.selector, self.domain)

    @property
    def record(self) -> str:
        return key_record(self.algorithm, self.public_key)


def check_algorithm(value: str) -> Algorithm:
    if value not in ALGORITHMS:
        raise InvalidInput(f"unknown DKIM algorithm {value!r}: use rsa or ed25519")
    return value


def check_selector(value: str) -> str:
    selector = value.strip().lower()
    if not _SELECTOR.match(selector):
        raise InvalidInput(
            f"bad DKIM selector {value!r}: one DNS label of letters, digits and hyphens"
        )
    return selector


def generate(algorithm: Algorithm) -> KeyPair:
    if algorithm == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        # RFC 6376 §3.6.1: p= is the base64 of the DER SubjectPublicKeyInfo.
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return KeyPair(algorithm, private, base64.b64encode(der).decode())
    ed = ed25519.Ed25519PrivateKey.generate()
    seed = ed.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    # RFC 8463 §4.2: p= is the base64 of the raw 32-byte public key.
    raw = ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return KeyPair(algorithm, base64.b64encode(seed), base64.b64encode(raw).decode())


def record_name(selector: str, domain: str) -> str:
    # RFC 6376 §3.6.2.1: the key record lives at <selector>._domainkey.<domain>.
    return f"{selector}._domainkey.{domain}"


def key_record(algorithm: Algorithm, public_key: str) -> str:
    # RFC 6376 §3.6.1, RFC 8463 §4.2: k=rsa or k=ed25519.
    return f"v=DKIM1; k={algorithm}; p={public_key}"


def default_selector(algorithm: Algorithm, now: datetime) -> str:
    """``rsa202612`` / ``ed202612``: the algorithm and the month, as many sites name them."""
    return f"{'rsa' if algorithm == 'rsa' else 'ed'}{now:%Y%m}"
