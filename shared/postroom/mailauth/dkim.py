"""DKIM verification (RFC 6376; RSA, and Ed25519 per RFC 8463) by dkimpy, keys from postroom.dns."""

from __future__ import annotations

from typing import Any

import dkim
import dkim.crypto
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from postroom.dns import DNSError, InvalidName, Resolver
from postroom.mailauth.replay import Answers, replay
from postroom.mailauth.results import DKIMResult

# RFC 8301 §3.2: RSA keys under 1024 bits MUST NOT be accepted.
MIN_RSA_BITS = 1024
# RFC 8301 §3.1: rsa-sha1 signatures MUST NOT be considered valid.
ACCEPTED_ALGORITHMS = {b"rsa-sha256", b"ed25519-sha256"}
B_PREFIX = 8

# A key lookup: the record's text, None when there is none, or a temporary error text.
KeyReply = bytes | None | str


# rsa-sha1 never gets here (ACCEPTED_ALGORITHMS); anything else takes dkimpy's own path.
_PREHASHED: dict[str, hashes.HashAlgorithm] = {"sha256": hashes.SHA256()}


def _rsa_verify(digest: Any, signature: bytes, public_key: dict[str, int]) -> bool:
    """RFC 8017 RSASSA-PKCS1-v1_5 verification by OpenSSL (cryptography).

    dkimpy's own does the RSA arithmetic in Python (about a millisecond per signature, the
    largest cost of checking a message); this keeps its interface: a hash object, the
    signature, and the key as dkimpy parsed it.
    """
    algorithm = _PREHASHED.get(digest.name)
    if algorithm is None:
        result: bool = dkim.crypto.RSASSA_PKCS1_v1_5_verify(digest, signature, public_key)
        return result
    try:
        key = rsa.RSAPublicNumbers(public_key["publicExponent"], public_key["modulus"])
        key.public_key().verify(
            signature, digest.digest(), padding.PKCS1v15(), utils.Prehashed(algorithm)
        )
    except (InvalidSignature, ValueError):
        return False
    return True


# dkimpy looks the function up in its module at each verification (DKIM and ARC alike).
dkim.RSASSA_PKCS1_v1_5_verify = _rsa_verify


class _Temporary(Exception):
    """The key could not be fetched now (RFC 6376 §6.1.2: TEMPFAIL)."""


async def verify_signatures(
    message: bytes, resolver: Resolver, *, max_signatures: int, in_thread: bool = False
) -> tuple[DKIMResult, ...]:
    """A result for each DKIM-Signature, top first, at most ``max_signatures`` of them."""
    try:
        verifier = dkim.DKIM(message, minkey=MIN_RSA_BITS)
    except dkim.DKIMException as exc:
        return (DKIMResult("permerror", "", "", "", "", f"unparsable message: {exc}"),)
    count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    # RFC 6376 §6.1: a verifier MAY limit the signatures it tries; the rest are ignored.
    count = min(count, max_signatures)
    keys: dict[int, bytes] = {}
    results: dict[int, DKIMResult] = {}
    for index in range(count):
        try:
            prep = verifier.verify_headerprep(index)
        except dkim.DKIMException as exc:
            results[index] = DKIMResult("permerror", "", "", "", "", str(exc))
            continue
        assert prep
        sig = prep[0]
        keys[index] = (sig[b"s"] + b"._domainkey." + sig[b"d"]).lower()

    async def fetch(name: bytes) -> KeyReply:
        return await _key(resolver, name)

    def verify_all(answers: Answers[bytes, KeyReply]) -> dict[int, DKIMResult]:
        return {
            index: _verify_one(verifier, index, answers)
            for index in range(count)
            if index not in results
        }

    results |= await replay(
        verify_all, fetch, prefetch=keys.values(), max_runs=count + 2, in_thread=in_thread
    )
    return tuple(results[i] for i in range(count))


def _verify_one(verifier: dkim.DKIM, index: int, answers: Answers[bytes, KeyReply]) -> DKIMResult:
    prep = verifier.verify_headerprep(index)
    assert prep
    sig, include_headers, sigheaders = prep
    domain = _text(sig[b"d"])
    selector = _text(sig[b"s"])
    algorithm = sig[b"a"].lower()
    b = _text(b"".join(sig[b"b"].split()))[:B_PREFIX]

    def result(value: str, reason: str = "") -> DKIMResult:
        return DKIMResult(value, domain, selector, _text(algorithm), b, reason)

    if algorithm not in ACCEPTED_ALGORITHMS:
        return result("policy", f"algorithm {_text(algorithm)} not accepted (RFC 8301)")

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        reply = answers.need(name.lower().rstrip(b"."))
        if isinstance(reply, str):
            raise _Temporary(reply)
        return reply

    try:
        valid = verifier.verify_sig(sig, include_headers, sigheaders[index], dnsfunc)
    except _Temporary as exc:
        return result("temperror", str(exc))
    except dkim.ValidationError as exc:
        return result("fail", str(exc))  # body hash mismatch and the like
    except dkim.KeyFormatError as exc:
        if "too small" in str(exc):
            return result("policy", str(exc))
        return result("permerror", str(exc))
    except dkim.DKIMException as exc:
        return result("permerror", str(exc))
    except Exception as exc:  # dkimpy on hostile input: any other surprise is a bad signature
        return result("permerror", f"{type(exc).__name__}: {exc}")
    if valid:
        return result("pass")
    # verify_sig answers False both for a key it could not use and a bad signature.
    key = answers.get(sig[b"s"].lower() + b"._domainkey." + sig[b"d"].lower())
    if not key:
        return result("permerror", "no key")  # RFC 6376 §6.1.2: PERMFAIL (no key)
    try:
        dkim.evaluate_pk(b"", key)
    except dkim.DKIMException as exc:
        return result("permerror", f"unusable key: {exc}")
    except Exception as exc:  # a malformed key record can upset its parser in other ways
        return result("permerror", f"unusable key: {exc}")
    return result("fail", "signature did not verify")


async def _key(resolver: Resolver, name: bytes) -> KeyReply:
    try:
        records = await resolver.txt(name.decode("ascii", "replace"))
    except InvalidName:
        return None
    except DNSError as exc:
        return f"key lookup: {exc}"
    # RFC 6376 §3.6.2.2: a key record is one TXT record; with several, use the first.
    return records[0] if records else None


def _text(value: bytes) -> str:
    return value.decode("ascii", "replace")
