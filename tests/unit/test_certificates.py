"""When a certificate is renewed, and the ACME settings that decide it."""

from __future__ import annotations

import datetime as dt

import pytest

from postroom.certificates import renewal_due
from postroom.config import load_settings
from postroom.errors import ConfigError
from postroom.store.acme import TOKEN, StoredCertificate

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
DIRECTORY = "https://acme.test/dir"


def _certificate(
    *, not_after: dt.datetime, names: tuple[str, ...] = ("mx.test",), directory: str = DIRECTORY
) -> StoredCertificate:
    return StoredCertificate(
        id=1,
        directory=directory,
        names=names,
        chain_pem="",
        sealed_key=b"",
        not_before=not_after - dt.timedelta(days=90),
        not_after=not_after,
        issued_at=not_after - dt.timedelta(days=90),
    )


def _due(current: StoredCertificate | None, names: list[str]) -> str | None:
    return renewal_due(
        current, names, directory=DIRECTORY, now=NOW, renew_before=dt.timedelta(days=30)
    )


def test_no_certificate_is_due_at_once() -> None:
    assert _due(None, ["mx.test"]) == "no certificate yet"


def test_a_certificate_outside_the_renewal_window_is_kept() -> None:
    assert _due(_certificate(not_after=NOW + dt.timedelta(days=31)), ["mx.test"]) is None


def test_a_certificate_inside_the_renewal_window_is_due() -> None:
    current = _certificate(not_after=NOW + dt.timedelta(days=29))
    assert _due(current, ["mx.test"]) == f"it expires at {current.not_after.isoformat()}"


def test_a_changed_name_list_is_due_whatever_the_expiry() -> None:
    current = _certificate(not_after=NOW + dt.timedelta(days=80))
    assert _due(current, ["mx.test", "mta-sts.example.test"]) == "the names changed"


def test_the_order_of_names_does_not_matter() -> None:
    current = _certificate(not_after=NOW + dt.timedelta(days=80), names=("b.test", "a.test"))
    assert _due(current, ["a.test", "b.test"]) is None


def test_another_directory_is_due() -> None:
    current = _certificate(not_after=NOW + dt.timedelta(days=80), directory="https://old/dir")
    assert _due(current, ["mx.test"]) == "the ACME directory changed"


def test_acme_is_on_only_with_directory_and_contact() -> None:
    assert not load_settings({"POSTROOM_ACME_DIRECTORY": DIRECTORY}).acme_enabled
    both = {"POSTROOM_ACME_DIRECTORY": DIRECTORY, "POSTROOM_ACME_CONTACT": "pm@mx.test"}
    assert load_settings(both).acme_enabled


def test_the_contact_may_be_given_as_a_mailto_url() -> None:
    settings = load_settings({"POSTROOM_ACME_CONTACT": "mailto:pm@mx.test"})
    assert settings.acme_contact == "pm@mx.test"


def test_a_contact_that_is_no_address_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="POSTROOM_ACME_CONTACT"):
        load_settings({"POSTROOM_ACME_CONTACT": "postmaster"})


def test_names_are_a_comma_separated_list_of_host_names() -> None:
    settings = load_settings({"POSTROOM_ACME_NAMES": "MX.test., mta-sts.example.test"})
    assert settings.acme_names == ["mx.test", "mta-sts.example.test"]


@pytest.mark.parametrize("bad", ["localhost", "mx..test", "*.example.test", "a b.test"])
def test_a_name_that_is_no_host_name_names_the_variable(bad: str) -> None:
    with pytest.raises(ConfigError, match="POSTROOM_ACME_NAMES"):
        load_settings({"POSTROOM_ACME_NAMES": bad})


@pytest.mark.parametrize(
    ("token", "valid"),
    [("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0", True), ("a.b", False), ("", False)],
    ids=["base64url", "dot", "empty"],
)
def test_an_http_01_token_is_base64url(token: str, valid: bool) -> None:
    # RFC 8555 §8.3: the token is base64url; nothing else is looked up.
    assert bool(TOKEN.fullmatch(token)) is valid
