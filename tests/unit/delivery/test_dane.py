"""DANE matching (RFC 7672 §3, RFC 6698 §2.1): which records are usable, and which
certificate chains satisfy them."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from postroom.delivery.dane import Tlsa, matches, verify

NOW = dt.datetime.now(dt.UTC)
CA = trustme.CA()
ISSUER = CA.create_child_ca()
LEAF = ISSUER.issue_cert("mx.example.test")


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


CHAIN = [_der(p.bytes()) for p in LEAF.cert_chain_pems]  # leaf, ISSUER (as a server sends)


def _selected(der: bytes, selector: int) -> bytes:
    if selector == 0:
        return der
    key = x509.load_der_x509_certificate(der).public_key()
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _record(usage: int, selector: int, mtype: int, der: bytes) -> Tlsa:
    data = _selected(der, selector)
    if mtype == 1:
        data = hashlib.sha256(data).digest()
    elif mtype == 2:
        data = hashlib.sha512(data).digest()
    return Tlsa(usage, selector, mtype, data)


PARAMETERS = [(s, m) for s in (0, 1) for m in (0, 1, 2)]


@pytest.mark.parametrize(("selector", "mtype"), PARAMETERS, ids=lambda v: str(v))
def test_dane_ee_matches_the_leaf_by_every_selector_and_matching_type(
    selector: int, mtype: int
) -> None:
    verdict = verify([_record(3, selector, mtype, CHAIN[0])], CHAIN, ["x.test"], now=NOW)
    assert (verdict.matched, verdict.how) == (True, "DANE-EE")


def test_dane_ee_ignores_the_name_and_the_dates() -> None:
    # RFC 7672 §3.1.1: the key is what the domain vouches for.
    later = NOW + dt.timedelta(days=20 * 365)
    verdict = verify([_record(3, 1, 1, CHAIN[0])], CHAIN, ["other.test"], now=later)
    assert verdict.matched


@pytest.mark.parametrize(("selector", "mtype"), PARAMETERS, ids=lambda v: str(v))
def test_dane_ta_matches_the_issuer_sent_in_the_chain(selector: int, mtype: int) -> None:
    verdict = verify([_record(2, selector, mtype, CHAIN[1])], CHAIN, ["mx.example.test"], now=NOW)
    assert (verdict.matched, verdict.how) == (True, "DANE-TA")


def test_dane_ta_needs_a_leaf_that_names_a_reference_identifier() -> None:
    verdict = verify([_record(2, 0, 1, CHAIN[1])], CHAIN, ["other.test"], now=NOW)
    assert not verdict.matched


def test_dane_ta_accepts_the_destination_domain_as_a_name() -> None:
    # RFC 7672 §3.2.2: the MX host name or the next-hop domain.
    verdict = verify(
        [_record(2, 0, 1, CHAIN[1])], CHAIN, ["other.test", "mx.example.test"], now=NOW
    )
    assert verdict.matched


def test_dane_ta_needs_the_leaf_within_its_dates() -> None:
    short = ISSUER.issue_cert("mx.example.test", not_after=NOW + dt.timedelta(days=1))
    chain = [_der(p.bytes()) for p in short.cert_chain_pems]
    record = _record(2, 0, 1, chain[1])
    assert verify([record], chain, ["mx.example.test"], now=NOW).matched
    later = NOW + dt.timedelta(days=2)
    assert not verify([record], chain, ["mx.example.test"], now=later).matched


def test_dane_ta_does_not_match_the_leaf_itself() -> None:
    verdict = verify([_record(2, 0, 1, CHAIN[0])], CHAIN, ["mx.example.test"], now=NOW)
    assert not verdict.matched


def test_dane_ta_of_a_leaf_not_signed_by_it_does_not_match() -> None:
    stranger = _der(trustme.CA().issue_cert("mx.example.test").cert_chain_pems[0].bytes())
    chain = [stranger, CHAIN[1]]  # a leaf of another CA, sent beside the TA
    verdict = verify([_record(2, 0, 1, CHAIN[1])], chain, ["mx.example.test"], now=NOW)
    assert not verdict.matched


def test_a_record_of_another_key_does_not_match() -> None:
    other = _der(ISSUER.issue_cert("mx.example.test").cert_chain_pems[0].bytes())
    verdict = verify([_record(3, 1, 1, other)], CHAIN, ["mx.example.test"], now=NOW)
    assert (verdict.matched, verdict.how) == (
        False,
        "no TLSA record (3 1 1) matches the certificate chain",
    )


@pytest.mark.parametrize(
    ("usage", "selector", "mtype"),
    [(0, 0, 1), (1, 1, 1), (4, 1, 1), (3, 2, 1), (3, 1, 3)],
    ids=["pkix-ta", "pkix-ee", "usage-4", "selector-2", "mtype-3"],
)
def test_records_outside_dane_ta_and_dane_ee_are_unusable(
    usage: int, selector: int, mtype: int
) -> None:
    # RFC 7672 §3.1.3; unknown parameters per RFC 6698 §4.1.
    record = Tlsa(usage, selector, mtype, b"")
    assert not record.usable
    assert not verify([record], CHAIN, ["mx.example.test"], now=NOW).matched


def test_an_empty_chain_matches_nothing() -> None:
    verdict = verify([_record(3, 1, 1, CHAIN[0])], [], ["mx.example.test"], now=NOW)
    assert (verdict.matched, verdict.how) == (False, "the server sent no certificate")


@given(st.binary(max_size=64))
def test_random_data_never_matches_the_leaf(data: bytes) -> None:
    leaf = x509.load_der_x509_certificate(CHAIN[0])
    for mtype in (0, 1, 2):
        assert not matches(Tlsa(3, 1, mtype, data), leaf)
