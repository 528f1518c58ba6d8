"""DKIM verification (RFC 6376; RSA, and Ed25519 per RFC 8463) by dkimpy, keys from postroom.dns."""

from __future__ import annotations

import re
from typing import Any

import dkim
import dkim.crypto
import dkim.util
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from dkim import canonicalization

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
# What dkimpy's verify_headerprep gives: the tags, the signed field names, the signatures.
Prep = tuple[dict[bytes, bytes], list[bytes], list[tuple[bytes, bytes]]]


# rsa-sha1 never gets here (ACCEPTED_ALGORITHMS); anything else takes dkimpy's own path.
_PREHASHED: dict[str, hashes.HashAlgorithm] = {"sha256": hashes.SHA256()}


# Parsed public keys by key record text (dkimpy's evaluate_pk: tags, base64, ASN.1), and
# OpenSSL's key objects by modulus and exponent: a key is parsed once, not for every message
# (the record text changes when the key does; the DNS answer itself is cached for its TTL).
KEY_CACHE_SIZE = 1024
_parsed_keys: dict[bytes, tuple[Any, Any, Any, bool]] = {}
_openssl_keys: dict[tuple[int, int], rsa.RSAPublicKey] = {}


def _bounded_put(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= KEY_CACHE_SIZE:
        cache.pop(next(iter(cache)))  # the oldest entry
    cache[key] = value


def _load_pk(name: bytes, dnsfunc: Any, timeout: float = 5) -> tuple[Any, Any, Any, bool]:
    """dkimpy's load_pk_from_dns, its parsing remembered by record text."""
    record = dnsfunc(name, timeout=timeout)
    if not record:
        parsed: tuple[Any, Any, Any, bool] = dkim.evaluate_pk(name, record)  # raises
        return parsed
    key = record if isinstance(record, bytes) else str(record).encode("ascii")
    parsed = _parsed_keys.get(key)  # type: ignore[assignment]
    if parsed is None:
        parsed = dkim.evaluate_pk(name, record)
        _bounded_put(_parsed_keys, key, parsed)
    return parsed


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
        numbers = (public_key["publicExponent"], public_key["modulus"])
        key = _openssl_keys.get(numbers)
        if key is None:
            key = rsa.RSAPublicNumbers(*numbers).public_key()
            _bounded_put(_openssl_keys, numbers, key)
        key.verify(signature, digest.digest(), padding.PKCS1v15(), utils.Prehashed(algorithm))
    except (InvalidSignature, ValueError):
        return False
    return True


# dkimpy looks these functions up in its module at each verification (DKIM and ARC alike).
dkim.RSASSA_PKCS1_v1_5_verify = _rsa_verify
dkim.load_pk_from_dns = _load_pk


# dkimpy's canonicalisation (RFC 6376 §3.4) and b= removal (§3.7) by regular expressions that
# visit every space of the text; the same results with a test first whether there is anything
# to change (tests/unit/mailauth/test_dkim_canonicalization.py checks them against dkimpy's).
DKIMPY_STRIP_TRAILING_WHITESPACE = canonicalization.strip_trailing_whitespace
DKIMPY_COMPRESS_WHITESPACE = canonicalization.compress_whitespace
DKIMPY_UNFOLD_HEADER_VALUE = canonicalization.unfold_header_value
DKIMPY_RE_BTAG = dkim.RE_BTAG
DKIMPY_RFC822_PARSE = dkim.rfc822_parse
DKIMPY_PARSE_TAG_VALUE = dkim.util.parse_tag_value

# A single space stays as it is: only tabs and longer runs need replacing.
_WSP_RUN = re.compile(rb"[\t ]{2,}|\t")


def _strip_trailing_whitespace(content: bytes) -> bytes:
    """RFC 6376 §3.4.4 a: whitespace at the end of a line (before CRLF) is removed."""
    if b" \r\n" not in content and b"\t\r\n" not in content:
        return content
    lines = content.split(b"\r\n")
    last = lines.pop()  # not followed by CRLF: kept as it is
    return b"\r\n".join([line.rstrip(b" \t") for line in lines] + [last])


def _compress_whitespace(content: bytes) -> bytes:
    """RFC 6376 §3.4.2, §3.4.4 b: a run of spaces and tabs becomes one space."""
    if b"\t" not in content and b"  " not in content:
        return content
    return _WSP_RUN.sub(b" ", content)


def _unfold_header_value(content: bytes) -> bytes:
    """RFC 6376 §3.4.2: every line break (CRLF, or a bare LF) is removed."""
    return content.replace(b"\r\n", b"").replace(b"\n", b"")


_FIELD_NAME = re.compile(rb"([\x21-\x7e]+?):")


def _rfc822_parse(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """dkimpy's message parsing (header fields as [name, value + CRLF], the body), without a
    regular expression to split lines and one looked up by pattern text per field."""
    if message.count(b"\n") != message.count(b"\r\n"):
        result: tuple[list[list[bytes]], bytes] = DKIMPY_RFC822_PARSE(message)  # bare LFs
        return result
    headers: list[list[bytes]] = []
    lines = message.split(b"\r\n")
    match = _FIELD_NAME.match
    i = 0
    count = len(lines)
    while i < count:
        line = lines[i]
        if not line:
            i += 1  # the end of the header section: the body follows the empty line
            break
        if line[0] in (0x09, 0x20):
            headers[-1][1] += line + b"\r\n"
        else:
            m = match(line)
            if m is not None:
                headers.append([m.group(1), line[m.end(0) :] + b"\r\n"])
            elif not line.startswith(b"From "):
                raise dkim.MessageFormatError(
                    "Unexpected characters in RFC822 header: %r" % line  # noqa: UP031
                )
        i += 1
    return headers, b"\r\n".join(lines[i:])


_TAG_NAME = re.compile(rb"^[a-zA-Z](\w)*")


def _parse_tag_value(tag_list: bytes) -> dict[bytes, bytes]:
    """dkimpy's tag=value list parsing (RFC 6376 §3.2), its tag name pattern compiled once
    instead of looked up by its text for every tag."""
    tags: dict[bytes, bytes] = {}
    tag_specs = tag_list.strip().split(b";")
    if not tag_specs[-1]:
        tag_specs.pop()  # trailing semicolons are valid
    match = _TAG_NAME.match
    for tag_spec in tag_specs:
        try:
            key, value = [x.strip() for x in tag_spec.split(b"=", 1)]
        except ValueError:
            raise dkim.util.InvalidTagSpec(tag_spec) from None
        if match(key) is None:
            raise dkim.util.InvalidTagSpec(tag_spec)
        if key in tags:
            raise dkim.util.DuplicateTag(key)
        tags[key] = value
    return tags


dkim.rfc822_parse = _rfc822_parse
dkim.parse_tag_value = _parse_tag_value
dkim.util.parse_tag_value = _parse_tag_value
# dkimpy asks logging for its logger at each DKIM(); it is the same one every time.
_LOGGER = dkim.util.get_default_logger()
canonicalization.strip_trailing_whitespace = _strip_trailing_whitespace
canonicalization.compress_whitespace = _compress_whitespace
canonicalization.unfold_header_value = _unfold_header_value
# FWS (``(?:(?:\s*\r?\n)?\s+)?``) matches what ``\s*`` matches; runs of base64 at a time.
dkim.RE_BTAG = re.compile(rb"([;\s]b\s*=)(?:\s*[a-zA-Z0-9+/=]+)*(?:\r?\n\Z)?")


class _Temporary(Exception):
    """The key could not be fetched now (RFC 6376 §6.1.2: TEMPFAIL)."""


async def verify_signatures(
    message: bytes, resolver: Resolver, *, max_signatures: int, in_thread: bool = False
) -> tuple[DKIMResult, ...]:
    """A result for each DKIM-Signature, top first, at most ``max_signatures`` of them."""
    try:
        verifier = dkim.DKIM(message, logger=_LOGGER, minkey=MIN_RSA_BITS)
    except dkim.DKIMException as exc:
        return (DKIMResult("permerror", "", "", "", "", f"unparsable message: {exc}"),)
    count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    # RFC 6376 §6.1: a verifier MAY limit the signatures it tries; the rest are ignored.
    count = min(count, max_signatures)
    keys: dict[int, bytes] = {}
    preps: dict[int, Prep] = {}
    results: dict[int, DKIMResult] = {}
    for index in range(count):
        try:
            prep = verifier.verify_headerprep(index)
        except dkim.DKIMException as exc:
            results[index] = DKIMResult("permerror", "", "", "", "", str(exc))
            continue
        assert prep
        preps[index] = prep
        sig = prep[0]
        keys[index] = (sig[b"s"] + b"._domainkey." + sig[b"d"]).lower()

    async def fetch(name: bytes) -> KeyReply:
        return await _key(resolver, name)

    def verify_all(answers: Answers[bytes, KeyReply]) -> dict[int, DKIMResult]:
        return {index: _verify_one(verifier, index, prep, answers) for index, prep in preps.items()}

    results |= await replay(
        verify_all, fetch, prefetch=keys.values(), max_runs=count + 2, in_thread=in_thread
    )
    return tuple(results[i] for i in range(count))


def _verify_one(
    verifier: dkim.DKIM, index: int, prep: Prep, answers: Answers[bytes, KeyReply]
) -> DKIMResult:
    sig, include_headers, sigheaders = prep
    # verify_sig appends to the list; a run again (after a key lookup) must start afresh.
    include_headers = list(include_headers)
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
