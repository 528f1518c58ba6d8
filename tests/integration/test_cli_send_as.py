"""`postroom user send-as`, run as a real process against the test database."""

from __future__ import annotations

import secrets

import pytest

from tests.integration.test_cli import add_domain, cli


@pytest.fixture
def alice(database_url: str) -> str:
    domain = f"sa{secrets.token_hex(4)}.test"
    address = f"alice@{domain}"
    add_domain(database_url, domain, address)
    return address


def test_allow_adds_entries_normalised_and_list_prints_them(database_url: str, alice: str) -> None:
    result = cli(
        "user", "send-as", alice, "--allow", "Boss@Example.TEST", "--allow", "*@Lists.Example.",
        database_url=database_url,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (
        0,
        f"{alice} may send as: *@lists.example, boss@example.test\n",
    )
    listed = cli("user", "send-as", alice, "--list", database_url=database_url)
    assert listed.stdout == f"{alice} may send as: *@lists.example, boss@example.test\n"


def test_remove_takes_an_entry_off(database_url: str, alice: str) -> None:
    cli("user", "send-as", alice, "--allow", "boss@example.test", database_url=database_url)
    result = cli(
        "user", "send-as", alice, "--remove", "BOSS@example.test", database_url=database_url
    )
    assert (result.returncode, result.stdout) == (0, f"{alice} may send as: (its own only)\n")


def test_removing_an_entry_not_listed_is_an_error(database_url: str, alice: str) -> None:
    result = cli("user", "send-as", alice, "--remove", "x@example.test", database_url=database_url)
    assert result.returncode == 1
    assert result.stderr == f"postroom: error: x@example.test is not in {alice}'s send-as list\n"


@pytest.mark.parametrize("entry", ["not-an-address", "a*b@example.test", "*@", "x@bad_domain"])
def test_an_entry_that_is_no_address_or_domain_is_refused(
    database_url: str, alice: str, entry: str
) -> None:
    result = cli("user", "send-as", alice, "--allow", entry, database_url=database_url)
    assert result.returncode == 1
    assert result.stderr.startswith("postroom: error: ")
    assert cli("user", "send-as", alice, "--list", database_url=database_url).stdout == (
        f"{alice} may send as: (its own only)\n"
    )


def test_an_unknown_account_is_an_error(database_url: str) -> None:
    result = cli("user", "send-as", "nobody@example.test", "--list", database_url=database_url)
    assert (result.returncode, result.stderr) == (
        1,
        "postroom: error: no account nobody@example.test\n",
    )


def test_nothing_to_do_is_refused(database_url: str, alice: str) -> None:
    result = cli("user", "send-as", alice, database_url=database_url)
    assert (result.returncode, result.stderr) == (
        1,
        "postroom: error: give --allow ADDRESS, --remove ADDRESS or --list\n",
    )


def test_list_with_changes_is_refused(database_url: str, alice: str) -> None:
    result = cli(
        "user", "send-as", alice, "--list", "--allow", "b@example.test", database_url=database_url
    )
    assert result.returncode == 1
    assert "not both" in result.stderr
