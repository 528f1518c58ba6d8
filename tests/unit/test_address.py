"""Address syntax (RFC 5321 §4.1.2) and the canonical form accounts are keyed by."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.address import canonical, normalize_domain, parse_address, without_tag
from postroom.errors import InvalidInput


def test_domain_is_lowercased_local_part_kept() -> None:
    assert str(parse_address("John.Doe@Example.ORG")) == "John.Doe@example.org"


def test_canonical_form_lowercases_everything() -> None:
    assert canonical("<John.Doe@Example.ORG>") == "john.doe@example.org"


def test_unicode_domain_becomes_a_label() -> None:
    assert normalize_domain("Bücher.example") == "xn--bcher-kva.example"


def test_quoted_local_part_is_accepted() -> None:
    assert parse_address('"john doe"@example.org').local_part == '"john doe"'


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain",
        "@example.org",
        "a@",
        "a..b@example.org",
        ".a@example.org",
        "a b@example.org",
        "a@ex ample.org",
        "a@-x.org",
        "a@x-.org",
        "a@x..org",
        "x" * 65 + "@example.org",
        "a@" + "b" * 64 + ".org",
    ],
)
def test_malformed_addresses_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_address(text)


def test_plus_tag_is_stripped() -> None:
    assert without_tag("alice+lists") == "alice"
    assert without_tag("alice") is None
    assert without_tag("+only") is None


@given(st.text(max_size=300))
def test_parse_address_raises_only_invalid_input(text: str) -> None:
    with contextlib.suppress(InvalidInput):
        parse_address(text)
