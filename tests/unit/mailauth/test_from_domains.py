"""The author domains DMARC checks (RFC 7489 §6.6.1): read from the From field, never a crash."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from postroom.mailauth.dmarc import from_domains, organizational_domain


def test_one_author() -> None:
    assert from_domains(b"From: Alice <alice@Example.TEST.>\r\n\r\nbody") == ["example.test"]


def test_several_authors_and_fields_give_each_domain_once() -> None:
    raw = b"From: a@one.test, b@two.test\r\nFrom: c@one.test\r\n\r\n"
    assert from_domains(raw) == ["one.test", "two.test"]


def test_folded_field() -> None:
    assert from_domains(b"From: Alice\r\n <alice@example.test>\r\n\r\n") == ["example.test"]


def test_no_from_or_no_domain_leaves_nothing_to_check() -> None:
    assert from_domains(b"Subject: x\r\n\r\nFrom: a@b.test\r\n") is None
    assert from_domains(b"From: undisclosed\r\n\r\n") is None


def test_a_from_field_seen_before_gives_the_same_domains_to_each_caller() -> None:
    raw = b"From: a@one.test, b@two.test\r\n\r\n"
    first = from_domains(raw)
    assert first == ["one.test", "two.test"]
    first.append("changed.test")  # the answer is the caller's own list
    assert from_domains(raw) == ["one.test", "two.test"]
    assert from_domains(b"From: undisclosed\r\n\r\n") is None
    assert from_domains(b"From: undisclosed\r\n\r\n") is None


def test_international_domain_in_a_label_form() -> None:
    assert from_domains("From: a@bücher.test\r\n\r\n".encode()) == ["xn--bcher-kva.test"]


def test_organizational_domain_from_the_public_suffix_list() -> None:
    assert organizational_domain("mail.example.co.uk") == "example.co.uk"
    assert organizational_domain("a.b.example.test") == "example.test"
    assert organizational_domain("co.uk") == "co.uk"


@given(st.binary(max_size=300))
def test_any_header_bytes_give_domains_or_none(head: bytes) -> None:
    result = from_domains(b"From: " + head + b"\r\n\r\nbody")
    assert result is None or all(isinstance(d, str) and d for d in result)
