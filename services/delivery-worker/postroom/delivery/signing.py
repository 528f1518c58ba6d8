"""DKIM signatures (RFC 6376) on mail leaving for another server, made just before hand-off.

The signing domain is the From: domain when it (or a parent of it, which DMARC's relaxed
alignment accepts) is a local domain with active keys, else the envelope sender's domain
likewise (forwarded mail whose reverse path was rewritten to ours). Every active key of that
domain signs, so RSA and Ed25519 (RFC 8463) signatures travel together.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from typing import Any

import dkim
import dkim.crypto
import structlog
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from postroom import keyring
from postroom.config import Settings
from postroom.db import Conn
from postroom.errors import ConfigError
from postroom.store import dkim as dkim_store
from postroom.store.dkim import SigningKey

log = structlog.get_logger("postroom.delivery.signing")

# RFC 6376 §3.4: relaxed/relaxed survives the re-folding and whitespace changes that relays
# commonly make.
CANONICALIZATION = (b"relaxed", b"relaxed")
_ALGORITHMS = {"rsa": b"rsa-sha256", "ed25519": b"ed25519-sha256"}

# The header block is parsed for From: only; a longer one is not a message we sign.
MAX_HEADER_BYTES = 256 * 1024


# dkimpy signs RSA in Python (the private key's ASN.1 parsed and two 1024-bit modular
# exponentiations for every signature: some 10-20 ms of CPU a message). RSASSA-PKCS1-v1_5
# (RFC 8017 §8.2.1) is deterministic, so OpenSSL (cryptography) gives the same octets in a
# fraction of the time; the key object is built once per PEM text. dkimpy looks both names up
# in its module at each signature (DKIM and ARC alike), as it does the verifier that
# postroom.mailauth.dkim replaces.
DKIMPY_PARSE_PRIVATE = dkim.parse_pem_private_key
DKIMPY_RSA_SIGN = dkim.RSASSA_PKCS1_v1_5_sign
# Postroom signs rsa-sha256 only (RFC 8301 §3.1); any other digest (a test's rsa-sha1, to
# see it refused) takes dkimpy's own path with the same PEM text.
_DIGESTS: dict[str, hashes.HashAlgorithm] = {"sha256": hashes.SHA256()}
PRIVATE_KEY_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class _PrivateKey:
    """What dkimpy holds between parsing a key and signing with it."""

    pem: bytes
    openssl: rsa.RSAPrivateKey


_private_keys: dict[bytes, _PrivateKey] = {}


def _parse_private(data: bytes) -> _PrivateKey:
    """An RSA private key in PEM (PKCS#1 or PKCS#8), with OpenSSL's key object."""
    key = _private_keys.get(data)
    if key is None:
        try:
            loaded = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise dkim.crypto.UnparsableKeyError(str(exc)) from None
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise dkim.crypto.UnparsableKeyError("not an RSA private key")
        if len(_private_keys) >= PRIVATE_KEY_CACHE_SIZE:
            _private_keys.pop(next(iter(_private_keys)))  # the oldest
        _private_keys[data] = key = _PrivateKey(data, loaded)
    return key


def _rsa_sign(digest: Any, private_key: Any) -> bytes:
    """RSASSA-PKCS1-v1_5 signature of dkimpy's hash object by OpenSSL."""
    algorithm = _DIGESTS.get(digest.name)
    if not isinstance(private_key, _PrivateKey) or algorithm is None:
        pem = private_key.pem if isinstance(private_key, _PrivateKey) else None
        signature: bytes = DKIMPY_RSA_SIGN(
            digest, DKIMPY_PARSE_PRIVATE(pem) if pem is not None else private_key
        )
        return signature
    return private_key.openssl.sign(digest.digest(), padding.PKCS1v15(), utils.Prehashed(algorithm))


dkim.parse_pem_private_key = _parse_private
dkim.RSASSA_PKCS1_v1_5_sign = _rsa_sign


def parent_domains(domain: str) -> list[str]:
    """``a.b.example.org`` → itself, ``b.example.org``, ``example.org`` (not the TLD)."""
    labels = domain.lower().rstrip(".").split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)] or [domain.lower()]


def _domain_of(address: str) -> str | None:
    local, at, domain = address.strip().rpartition("@")
    return domain.strip().strip("<>").lower() or None if at and local else None


def candidate_domains(content: bytes, reverse_path: str) -> list[str]:
    """Signing domains to try, best first: From: and its parents, then the reverse path's."""
    end = content.find(b"\r\n\r\n", 0, MAX_HEADER_BYTES)
    if end < 0:
        end = content.find(b"\n\n", 0, MAX_HEADER_BYTES)
    head = content[: end + 2] if end >= 0 else content[:MAX_HEADER_BYTES]
    headers = BytesHeaderParser().parsebytes(head)
    found: list[str] = []
    for _, address in getaddresses([str(v) for v in headers.get_all("From", [])]):
        if domain := _domain_of(address):
            found += parent_domains(domain)
            break  # RFC 7489 §6.6.1: one author domain; more than one From is not aligned
    if domain := _domain_of(reverse_path):
        found += parent_domains(domain)
    return list(dict.fromkeys(found))


def sign_with(content: bytes, keys: Sequence[tuple[SigningKey, bytes]]) -> bytes:
    """The DKIM-Signature fields of each key, prepended to the content (newest outermost)."""
    fields = b""
    for key, private in keys:
        # dkimpy's default header list is RFC 6376 §5.4.1's recommended fields that the
        # message has, with From signed once more than it occurs (§8.15: no From can be
        # added without breaking the signature).
        field = dkim.sign(
            content,
            key.selector.encode(),
            key.domain.encode(),
            private,
            canonicalize=CANONICALIZATION,
            signature_algorithm=_ALGORITHMS[key.algorithm],
            linesep=b"\r\n",
        )
        fields = field + fields
    return fields + content


@dataclass
class Signer:
    """Signs outbound mail; keys are read from the store and kept for ``ttl`` seconds."""

    ttl: float = 30.0
    _cache: dict[tuple[str, ...], tuple[float, list[tuple[SigningKey, bytes]]]] = field(
        default_factory=dict
    )

    async def keys_for(
        self, conn: Conn, settings: Settings, domains: list[str]
    ) -> list[tuple[SigningKey, bytes]]:
        cache_key = tuple(domains)
        cached = self._cache.get(cache_key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        found = await dkim_store.signing_keys(conn, domains)
        keys: list[tuple[SigningKey, bytes]] = []
        for domain in domains:  # the first candidate with keys signs
            mine = [k for k in found if k.domain == domain]
            if mine:
                try:
                    keys = [(k, keyring.unseal(settings, k.sealed_key)) for k in mine]
                except ConfigError as exc:
                    log.error("dkim.key_unusable", domain=domain, error=str(exc))
                break
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[cache_key] = (time.monotonic() + self.ttl, keys)
        return keys

    async def sign(
        self, conn: Conn, settings: Settings, content: bytes, reverse_path: str
    ) -> bytes:
        """The content with DKIM-Signature fields, or unchanged when no local domain signs."""
        domains = candidate_domains(content, reverse_path)
        if not domains:
            return content
        keys = await self.keys_for(conn, settings, domains)
        if not keys:
            return content
        try:
            # Hashing a large body takes a while: off the event loop.
            return await asyncio.to_thread(sign_with, content, keys)
        except dkim.DKIMException as exc:
            # A message dkimpy cannot sign (no From:, say) goes out unsigned, as it came.
            log.warning("dkim.not_signed", domain=keys[0][0].domain, error=str(exc))
            return content
