"""Modified UTF-7 mailbox names, RFC 3501 §5.1.3."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.access.imap import mutf7

NAMES = [
    ("INBOX", "INBOX"),
    ("", ""),
    ("☺", "&Jjo-"),
    ("&", "&-"),
    ("Tom & Jerry", "Tom &- Jerry"),
    ("Entwürfe", "Entw&APw-rfe"),
    # The example of §5.1.3: English, Japanese and Chinese text.
    ("~peter/mail/日本語/台北", "~peter/mail/&ZeVnLIqe-/&U,BTFw-"),
    ("😀", "&2D3eAA-"),
    ("tab\there", "tab&AAk-here"),
    ("a+b/c\\d~e", "a+b/c\\d~e"),
]


@pytest.mark.parametrize(("name", "wire"), NAMES, ids=[wire or "empty" for _, wire in NAMES])
def test_name_encodes_to_its_canonical_wire_form(name: str, wire: str) -> None:
    assert mutf7.encode(name) == wire


@pytest.mark.parametrize(("name", "wire"), NAMES, ids=[wire or "empty" for _, wire in NAMES])
def test_wire_form_decodes_to_the_name(name: str, wire: str) -> None:
    assert mutf7.decode(wire) == name


def test_printable_ascii_represents_itself() -> None:
    printable = "".join(chr(code) for code in range(0x20, 0x7F) if code != 0x26)
    assert mutf7.encode(printable) == printable


def test_adjacent_non_ascii_characters_share_one_shift() -> None:
    assert mutf7.encode("日本語") == "&ZeVnLIqe-"


MALFORMED = [
    pytest.param("&Jjo", id="unterminated-shift"),
    pytest.param("&Jj!-", id="character-outside-modified-base64"),
    pytest.param("&Jj/-", id="slash-instead-of-comma"),
    pytest.param("&AGE-", id="printable-ascii-encoded"),
    pytest.param("&Jjo-&Jjo-", id="two-adjacent-shifts"),
    pytest.param("&Jjp-", id="non-zero-leftover-bits"),
    pytest.param("&AA-", id="half-a-utf16-unit"),
    pytest.param("&2D0-", id="lone-surrogate"),
    pytest.param("Entwürfe", id="raw-8-bit"),
    pytest.param("a\nb", id="control-character"),
]


@pytest.mark.parametrize("wire", MALFORMED)
def test_malformed_or_non_canonical_wire_form_is_rejected(wire: str) -> None:
    with pytest.raises(ValueError, match="mailbox name"):
        mutf7.decode(wire)


def test_lone_surrogate_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="lone surrogate"):
        mutf7.encode("\ud800")


@given(st.text())
def test_any_name_round_trips(name: str) -> None:
    wire = mutf7.encode(name)
    assert wire.isascii()
    assert mutf7.decode(wire) == name
