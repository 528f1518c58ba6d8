"""SASL PLAIN and LOGIN decoding, one module for every protocol (RFC 4616, RFC 4954 §4)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom import sasl


def problem(data: bytes | str, *, plain: bool = True) -> str | None:
    try:
        decoded = sasl.decode_response(data)
        if plain:
            sasl.decode_plain(decoded)
    except sasl.SaslError as exc:
        return exc.problem
    return None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_responses_decode_strictly() -> None:
    assert sasl.decode_response(b64(b"abc")) == b"abc"
    assert sasl.decode_response("=") == b""
    assert problem("YW*J", plain=False) == "malformed"
    assert problem("*", plain=False) == "cancelled"


@pytest.mark.parametrize(
    ("authzid", "expected"),
    [
        (b"", None),
        (b"alice@example.test", None),
        (b"ALICE@Example.Test.", None),
        (b"<alice@example.test>", None),
        (b"bob@example.test", "authzid"),
        (b"not an address", "authzid"),
    ],
    ids=["empty", "same", "same-other-spelling", "same-bracketed", "someone-else", "garbage"],
)
def test_one_authzid_rule(authzid: bytes, expected: str | None) -> None:
    """The authzid is empty or the authcid's own account however spelt; nobody else."""
    assert problem(b64(authzid + b"\0alice@example.test\0pw")) == expected


@pytest.mark.parametrize(
    "data", [b"\0\0pw", b"\0alice@example.test\0", b"alice@example.test\0pw", b"a\0b\0c\0d"]
)
def test_an_empty_authcid_or_password_or_a_wrong_shape_is_malformed(data: bytes) -> None:
    assert problem(b64(data)) == "malformed"


def test_credentials_do_not_show_the_secret() -> None:
    credentials = sasl.decode_plain(b"\0alice@x.example\0hunter2")
    assert credentials.secret == "hunter2"
    assert "hunter2" not in repr(credentials)


@given(st.binary(max_size=300))
def test_any_response_decodes_or_is_a_sasl_error(data: bytes) -> None:
    """Nothing but SaslError escapes, whatever the client sends."""
    assert problem(data) in (None, "cancelled", "malformed", "authzid")
    assert problem(b64(data)) in (None, "malformed", "authzid")
