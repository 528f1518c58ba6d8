"""The send-as entries: how they are written and which addresses they allow."""

from __future__ import annotations

import pytest

from postroom.errors import InvalidInput
from postroom.store.send_as import normalize_send_as, send_as_allows


@pytest.mark.parametrize(
    ("entry", "stored"),
    [
        ("Boss@Example.TEST", "boss@example.test"),
        (" <boss@example.test> ", "boss@example.test"),
        ("*@Lists.Example.", "*@lists.example"),
        ("*@bücher.example", "*@xn--bcher-kva.example"),
    ],
)
def test_an_entry_is_stored_as_accounts_are_keyed(entry: str, stored: str) -> None:
    assert normalize_send_as(entry) == stored


@pytest.mark.parametrize("entry", ["", "boss", "*@", "*", "a*@example.test", "*.x@example.test"])
def test_an_entry_that_is_no_address_or_domain_is_refused(entry: str) -> None:
    with pytest.raises(InvalidInput):
        normalize_send_as(entry)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("boss@example.test", True),
        ("BOSS@EXAMPLE.TEST", True),
        ("other@example.test", False),
        ("anyone@lists.example", True),
        ("anyone@sub.lists.example", False),
        ("anyone@lists.example.evil", False),
        ("not an address", False),
    ],
)
def test_an_address_is_allowed_when_listed_or_in_a_listed_domain(
    address: str, allowed: bool
) -> None:
    assert send_as_allows(["boss@example.test", "*@lists.example"], address) is allowed
