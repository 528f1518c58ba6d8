"""What a revocation announcement says: an account (all its sessions) or an account and one
of its app passwords (the sessions that app password opened)."""

from __future__ import annotations

import pytest

from postroom.store.revocation import parse_payload


@pytest.mark.parametrize(
    ("payload", "expected"),
    [("42", (42, None)), ("42:7", (42, 7))],
    ids=["account", "app-password"],
)
def test_an_announcement_names_an_account_and_maybe_an_app_password(
    payload: str, expected: tuple[int, int | None]
) -> None:
    assert parse_payload(payload) == expected


@pytest.mark.parametrize("payload", ["", "x", "42:", ":7", "42:7:1", "42:x", "-1", " 42"])
def test_anything_else_is_ignored(payload: str) -> None:
    assert parse_payload(payload) is None
