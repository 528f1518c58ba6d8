"""DKIM signing (RFC 6376, RFC 8463): every signature verifies with dkimpy's verifier."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from unittest.mock import patch

import dkim
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom import dkim as dkim_keys
from postroom import dns_records
from postroom.delivery import signing as signing_module
from postroom.delivery.signing import candidate_domains, parent_domains, sign_with
from postroom.dkim import Algorithm, DkimKey
from postroom.store.dkim import SigningKey

MESSAGE = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: bob@remote.test\r\n"
    b"Subject: greetings\r\n"
    b"Date: Thu, 26 Nov 2026 12:00:00 +0000\r\n"
    b"Message-ID: <m1@example.org>\r\n"
    b"Received: from somewhere\r\n"
    b"\r\n"
    b"Hello.\r\n"
)

_KEYS: dict[Algorithm, dkim_keys.KeyPair] = {}


def pair(algorithm: Algorithm) -> dkim_keys.KeyPair:
    if algorithm not in _KEYS:  # an RSA key takes a moment: one per run
        _KEYS[algorithm] = dkim_keys.generate(algorithm)
    return _KEYS[algorithm]


def signing(algorithm: Algorithm, selector: str, domain: str = "example.org") -> SigningKey:
    return SigningKey(domain, selector, algorithm, b"")


def published(*keys: tuple[str, Algorithm]) -> Callable[..., bytes | None]:
    """dkimpy's DNS lookup, answered from the records `dns show` prints."""
    now = datetime.now(UTC)
    zone = {}
    for selector, algorithm in keys:
        key = DkimKey(
            "example.org", selector, algorithm, "active", pair(algorithm).public, now, now
        )
        record = dns_records.Record("dkim", key.record_name, "TXT", key.record, "")
        # What a resolver hands back: the character-strings of the zone line, joined.
        strings = re.findall(r'"((?:[^"\\]|\\.)*)"', record.zone_line())
        zone[f"{key.record_name}."] = "".join(strings).encode()

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return zone.get(name.decode())

    return lookup


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_a_signed_message_verifies(algorithm: Algorithm) -> None:
    signed = sign_with(MESSAGE, [(signing(algorithm, "s1"), pair(algorithm).private)])
    assert signed.endswith(MESSAGE)
    assert dkim.verify(signed, dnsfunc=published(("s1", algorithm)))


def test_rsa_and_ed25519_sign_together_and_both_verify() -> None:
    keys = [
        (signing("ed25519", "ed1"), pair("ed25519").private),
        (signing("rsa", "rsa1"), pair("rsa").private),
    ]
    signed = sign_with(MESSAGE, keys)
    assert signed.count(b"DKIM-Signature:") == 2
    lookup = published(("ed1", "ed25519"), ("rsa1", "rsa"))
    verifier = dkim.DKIM(signed)
    assert verifier.verify(idx=0, dnsfunc=lookup)
    assert verifier.verify(idx=1, dnsfunc=lookup)
    assert {b"ed25519-sha256", b"rsa-sha256"} == set(re.findall(rb"a=([a-z0-9-]+);", signed))


def test_signature_is_relaxed_relaxed_and_names_domain_and_selector() -> None:
    signed = sign_with(MESSAGE, [(signing("ed25519", "ed1"), pair("ed25519").private)])
    header = signed.split(b"\r\n\r\n")[0].decode()
    assert "c=relaxed/relaxed" in header
    assert "d=example.org" in header
    assert "s=ed1" in header


def test_recommended_headers_are_signed_and_received_is_not() -> None:
    signed = sign_with(MESSAGE, [(signing("ed25519", "ed1"), pair("ed25519").private)])
    h = re.search(rb"h=([^;]+);", signed.replace(b"\r\n", b"")).group(1)  # type: ignore[union-attr]
    signed_fields = [f.strip().lower() for f in h.decode().replace(" ", "").split(":")]
    # RFC 6376 §5.4.1: From, To, Subject, Date, Message-ID ...; §5.4: never Received.
    assert {"from", "to", "subject", "date", "message-id"} <= set(signed_fields)
    assert "received" not in signed_fields


def test_from_is_oversigned_so_an_added_from_breaks_the_signature() -> None:
    signed = sign_with(MESSAGE, [(signing("rsa", "rsa1"), pair("rsa").private)])
    h = re.search(rb"h=([^;]+);", signed.replace(b"\r\n", b"")).group(1)  # type: ignore[union-attr]
    assert h.replace(b" ", b"").lower().split(b":").count(b"from") == 2
    lookup = published(("rsa1", "rsa"))
    assert dkim.verify(signed, dnsfunc=lookup)
    head, _, body = signed.partition(b"\r\n\r\n")
    forged = head + b"\r\nFrom: Mallory <ceo@example.org>\r\n\r\n" + body
    assert not dkim.verify(forged, dnsfunc=lookup)


def test_a_changed_body_fails_verification() -> None:
    signed = sign_with(MESSAGE, [(signing("ed25519", "ed1"), pair("ed25519").private)])
    assert not dkim.verify(
        signed.replace(b"Hello.", b"Hullo."), dnsfunc=published(("ed1", "ed25519"))
    )


def test_the_from_domain_comes_first_then_its_parents_then_the_reverse_path() -> None:
    content = b"From: MAILER-DAEMON@mail.example.org\r\nTo: x@y.test\r\n\r\nbody\r\n"
    assert candidate_domains(content, "srs0=ab@fwd.example.net") == [
        "mail.example.org",
        "example.org",
        "fwd.example.net",
        "example.net",
    ]


def test_a_null_reverse_path_adds_no_candidate() -> None:
    assert candidate_domains(b"From: a@example.org\r\n\r\nx\r\n", "") == ["example.org"]


def test_without_from_only_the_reverse_path_is_a_candidate() -> None:
    assert candidate_domains(b"Subject: x\r\n\r\nx\r\n", "a@example.org") == ["example.org"]


def test_parent_domains_stop_before_the_top_level_domain() -> None:
    assert parent_domains("a.b.example.org") == ["a.b.example.org", "b.example.org", "example.org"]


@given(st.binary(max_size=2000), st.text(max_size=80))
def test_candidate_domains_never_raises(content: bytes, reverse_path: str) -> None:
    for domain in candidate_domains(content, reverse_path):
        assert domain == domain.lower()


@given(st.text(alphabet=st.characters(codec="ascii", exclude_characters='"\\'), max_size=1000))
def test_txt_data_is_split_into_strings_of_at_most_255_octets(text: str) -> None:
    strings = dns_records.txt_strings(text)
    assert "".join(strings) == text
    assert all(len(s) <= 255 for s in strings)


def test_an_rsa_key_record_is_split_for_the_zone_file() -> None:
    now = datetime.now(UTC)
    key = DkimKey("example.org", "rsa1", "rsa", "active", pair("rsa").public, now, now)
    line = dns_records.Record("dkim", key.record_name, "TXT", key.record, "").zone_line()
    assert line.startswith('rsa1._domainkey.example.org. 3600 IN TXT ( "v=DKIM1; k=rsa; p=')
    assert all(len(s) <= 255 for s in re.findall(r'"([^"]*)"', line))


@settings(max_examples=10, deadline=None)  # each example signs once in Python (some 20 ms)
@given(
    body=st.binary(max_size=2000).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"\r\n")),
    subject=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
)
def test_rsa_signature_by_openssl_is_dkimpys_own(body: bytes, subject: str) -> None:
    """RSASSA-PKCS1-v1_5 is deterministic (RFC 8017 §8.2.1): the signature made through
    OpenSSL is, octet for octet, the one dkimpy's own arithmetic makes."""
    message = MESSAGE.replace(b"greetings", subject.encode()).replace(b"Hello.\r\n", body)
    key = signing("rsa", "s1")
    with patch.object(dkim.time, "time", return_value=1_796_000_000.0):  # t= of both
        ours = sign_with(message, [(key, pair("rsa").private)])
    with (
        patch.object(dkim.time, "time", return_value=1_796_000_000.0),
        patch.object(dkim, "parse_pem_private_key", signing_module.DKIMPY_PARSE_PRIVATE),
        patch.object(dkim, "RSASSA_PKCS1_v1_5_sign", signing_module.DKIMPY_RSA_SIGN),
    ):
        theirs = sign_with(message, [(key, pair("rsa").private)])
    assert b" t=1796000000;" in ours
    assert ours == theirs


def test_unparsable_rsa_private_key_is_dkimpys_key_format_error() -> None:
    with pytest.raises(dkim.KeyFormatError):
        sign_with(MESSAGE, [(signing("rsa", "s1"), b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n")])


def test_an_rsa_sha1_signature_is_still_made_by_dkimpy_for_whoever_asks() -> None:
    """Postroom never signs rsa-sha1 (RFC 8301 §3.1), but a caller of dkimpy (a test that
    checks rsa-sha1 is refused) still gets one that verifies as dkimpy's would."""
    field = dkim.sign(
        MESSAGE, b"s1", b"example.org", pair("rsa").private, signature_algorithm=b"rsa-sha1"
    )
    assert b"a=rsa-sha1;" in field
    assert dkim.verify(field + MESSAGE, dnsfunc=published(("s1", "rsa")))
