"""Response values on the wire: strings, literals, lists, dates and flags (RFC 3501 §4, §9)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from postroom.access.imap import wire
from postroom.access.imap.wire import Atom, Run

PDT = timezone(timedelta(hours=-7))


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("hello", b'"hello"'),
        ("", b'""'),
        ('say "hi"', b'"say \\"hi\\""'),
        ("back\\slash", b'"back\\\\slash"'),
        ("tab\tand ( ) { } * %", b'"tab\tand ( ) { } * %"'),
        (b"bytes too", b'"bytes too"'),
    ],
    ids=["plain", "empty", "double-quote", "backslash", "specials", "bytes"],
)
def test_quote_writes_a_quoted_string(value: str | bytes, encoded: bytes) -> None:
    assert wire.quote(value) == encoded


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("two\r\nlines", b"{10}\r\ntwo\r\nlines"),
        ("line\nfeed", b"{9}\r\nline\nfeed"),
        ("héllo", b"{6}\r\nh\xc3\xa9llo"),
        (b"\xff", b"{1}\r\n\xff"),
    ],
    ids=["crlf", "lf", "utf-8", "8-bit-bytes"],
)
def test_quote_falls_back_to_a_literal(value: str | bytes, encoded: bytes) -> None:
    assert wire.quote(value) == encoded


def test_quote_refuses_nul() -> None:
    with pytest.raises(ValueError, match="NUL"):
        wire.quote("a\x00b\xff")


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("INBOX", b"INBOX"),
        ("Sent/2024", b"Sent/2024"),
        ("a]b", b"a]b"),
        ("two words", b'"two words"'),
        ("", b'""'),
        ("NIL", b'"NIL"'),
        ("nil", b'"nil"'),
        ("50%", b'"50%"'),
        ("*", b'"*"'),
        ("{5}", b'"{5}"'),
        ("héllo", b"{6}\r\nh\xc3\xa9llo"),
    ],
    ids=[
        "atom",
        "slash",
        "resp-special",
        "space",
        "empty",
        "nil",
        "nil-lower",
        "percent",
        "star",
        "brace",
        "8-bit",
    ],
)
def test_astring_is_bare_only_when_all_chars_are_astring_chars(value: str, encoded: bytes) -> None:
    assert wire.astring(value) == encoded


def test_nstring_of_none_is_nil() -> None:
    assert wire.nstring(None) == b"NIL"


def test_nstring_of_a_string_is_quoted() -> None:
    assert wire.nstring("NIL") == b'"NIL"'


def test_number_is_digits() -> None:
    assert wire.number(4286) == b"4286"


@pytest.mark.parametrize("value", [-1, True], ids=["negative", "bool"])
def test_number_refuses_what_is_not_a_number(value: int) -> None:
    with pytest.raises(ValueError, match="not an IMAP number"):
        wire.number(value)


def test_encode_list_parenthesises_space_separated_items() -> None:
    assert wire.encode_list([b"MESSAGES", b"231", b"UIDNEXT", b"44292"]) == (
        b"(MESSAGES 231 UIDNEXT 44292)"
    )


def test_empty_list_is_a_pair_of_parentheses() -> None:
    assert wire.encode_list([]) == b"()"


@pytest.mark.parametrize(
    ("name", "encoded"),
    [
        ("INBOX", b"INBOX"),
        ("Entwürfe", b"Entw&APw-rfe"),
        ("Tom & Jerry", b'"Tom &- Jerry"'),
        ("~peter/mail/日本語/台北", b"~peter/mail/&ZeVnLIqe-/&U,BTFw-"),
    ],
    ids=["ascii", "umlaut", "ampersand-and-space", "rfc-example"],
)
def test_mailbox_is_sent_as_modified_utf7_astring(name: str, encoded: bytes) -> None:
    assert wire.encode_mailbox(name) == encoded


@pytest.mark.parametrize(
    ("name", "encoded"),
    [
        ("INBOX", b"INBOX"),
        ("Entwürfe", '"Entwürfe"'.encode()),
        ("Tom & Jerry", b'"Tom & Jerry"'),
        ('say "hi"', b'"say \\"hi\\""'),
        ("~peter/mail/日本語/台北", '"~peter/mail/日本語/台北"'.encode()),
    ],
    ids=["ascii", "umlaut", "ampersand-is-itself", "quoted-specials", "rfc-example"],
)
def test_mailbox_is_sent_as_utf8_once_imap4rev2_is_enabled(name: str, encoded: bytes) -> None:
    # RFC 9051 §5.1 and §4.3.1: UTF-8 names, in a quoted string when not an atom.
    assert wire.encode_mailbox(name, utf8=True) == encoded


@pytest.mark.parametrize(
    ("raw", "mailbox"),
    [
        (b"INBOX", "INBOX"),
        (b"inbox", "INBOX"),
        (b"InBoX", "INBOX"),
        (b"inbox/sub", "inbox/sub"),
        (b"INBOX.Drafts", "INBOX.Drafts"),
        (b"Entw&APw-rfe", "Entwürfe"),
        (b"Tom &- Jerry", "Tom & Jerry"),
        (b"~peter/mail/&ZeVnLIqe-/&U,BTFw-", "~peter/mail/日本語/台北"),
    ],
    ids=[
        "inbox",
        "inbox-lower-case",
        "inbox-mixed-case",
        "only-inbox-itself-is-case-insensitive",
        "inbox-child",
        "modified-utf7",
        "ampersand",
        "rfc-example",
    ],
)
def test_mailbox_name_is_decoded_from_modified_utf7(raw: bytes, mailbox: str) -> None:
    assert wire.decode_mailbox(raw, utf8=False) == mailbox


@pytest.mark.parametrize(
    "raw",
    [b"&Jjo", b"&AGE-", "Entwürfe".encode(), b"Tab&AAk"],
    ids=["unterminated", "encoded-ascii", "raw-utf-8", "no-shift-back"],
)
def test_mailbox_name_not_in_modified_utf7_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError, match="not valid modified UTF-7"):
        wire.decode_mailbox(raw, utf8=False)


@pytest.mark.parametrize(
    ("raw", "mailbox"),
    [
        (b"inbox", "INBOX"),
        ("Entwürfe".encode(), "Entwürfe"),
        (b"Entw&APw-rfe", "Entw&APw-rfe"),
        (b"Tom & Jerry", "Tom & Jerry"),
    ],
    ids=["inbox-case", "utf-8", "modified-utf7-is-not-decoded", "ampersand-is-itself"],
)
def test_mailbox_name_is_utf8_once_imap4rev2_is_enabled(raw: bytes, mailbox: str) -> None:
    # RFC 9051 §5.1: "In IMAP4rev2, mailbox names are encoded in Net-Unicode".
    assert wire.decode_mailbox(raw, utf8=True) == mailbox


@pytest.mark.parametrize(
    "raw",
    [b"Entw\xfcrfe", "Entwu\u0308rfe".encode(), b"Tab\there", "C1\u0085".encode()],
    ids=["not-utf-8", "not-nfc", "control", "c1-control"],
)
def test_utf8_mailbox_name_that_is_not_net_unicode_is_refused(raw: bytes) -> None:
    # RFC 9051 §5.1: names that do not comply with Net-Unicode (RFC 5198) are refused.
    with pytest.raises(ValueError, match="not Net-Unicode"):
        wire.decode_mailbox(raw, utf8=True)


def test_list_pattern_keeps_its_wildcards() -> None:
    assert wire.decode_pattern(b"&ZeVnLIqe-/*", utf8=False) == "日本語/*"
    assert wire.decode_pattern("日本語/%".encode(), utf8=True) == "日本語/%"


def test_list_pattern_not_in_modified_utf7_matches_nothing() -> None:
    assert wire.decode_pattern(b"a&b%", utf8=False) is None


def test_flags_are_a_parenthesised_list() -> None:
    assert wire.format_flags(["\\Seen", "\\Deleted", "$Forwarded"]) == (
        b"(\\Seen \\Deleted $Forwarded)"
    )


def test_no_flags_is_an_empty_list() -> None:
    assert wire.format_flags([]) == b"()"


def test_flag_that_cannot_be_written_bare_is_refused() -> None:
    with pytest.raises(ValueError, match="bare"):
        wire.format_flags(["bad\r\nflag"])


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(1996, 7, 17, 2, 44, 25, tzinfo=PDT), "17-Jul-1996 02:44:25 -0700"),
        (
            datetime(1994, 2, 7, 21, 52, 25, tzinfo=timezone(timedelta(hours=-8))),
            " 7-Feb-1994 21:52:25 -0800",
        ),
        (datetime(2024, 12, 1, 0, 0, 0, tzinfo=UTC), " 1-Dec-2024 00:00:00 +0000"),
        (
            datetime(2024, 3, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            "31-Mar-2024 23:59:59 +0530",
        ),
        (
            datetime(2024, 3, 31, 23, 59, 59, tzinfo=timezone(-timedelta(hours=3, minutes=30))),
            "31-Mar-2024 23:59:59 -0330",
        ),
    ],
    ids=["rfc-example", "one-digit-day", "utc", "half-hour-east", "half-hour-west"],
)
def test_internal_date_format(moment: datetime, text: str) -> None:
    assert wire.format_internal_date(moment) == text


def test_internal_date_needs_a_time_zone() -> None:
    with pytest.raises(ValueError, match="time zone"):
        wire.format_internal_date(datetime(2024, 1, 1))


def test_literal_prefix_announces_the_size() -> None:
    assert wire.literal_prefix(4286) == b"{4286}\r\n"


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (None, b"NIL"),
        (0, b"0"),
        (3028, b"3028"),
        ("TEXT", b'"TEXT"'),
        (b"raw", b'"raw"'),
        (Atom("\\Seen"), b"\\Seen"),
        ([], b"()"),
        (["CHARSET", "US-ASCII"], b'("CHARSET" "US-ASCII")'),
        ((1, (2, None)), b"(1 (2 NIL))"),
        (Run([["a"], ["b"]]), b'("a")("b")'),
        ("multi\r\nline", b"{11}\r\nmulti\r\nline"),
    ],
    ids=[
        "nil",
        "zero",
        "number",
        "str",
        "bytes",
        "atom",
        "empty-list",
        "list",
        "nested",
        "run",
        "literal",
    ],
)
def test_encode_value(value: wire.WireValue, encoded: bytes) -> None:
    assert wire.encode_value(value) == encoded


def test_encode_value_refuses_other_types() -> None:
    with pytest.raises(TypeError, match="float"):
        wire.encode_value(1.5)  # type: ignore[arg-type]


def _address(name: str | None, mailbox: str, host: str) -> wire.WireValue:
    return [name, None, mailbox, host]


def test_envelope_of_the_rfc_3501_sample_session() -> None:
    # RFC 3501 §8, the response to "a003 fetch 12 full". Address lists are 1*address
    # with nothing between the addresses.
    gray = [Run([_address("Terry Gray", "gray", "cac.washington.edu")])]
    envelope: wire.WireValue = [
        "Wed, 17 Jul 1996 02:23:25 -0700 (PDT)",
        "IMAP4rev1 WG mtg summary and minutes",
        gray,
        gray,
        gray,
        [Run([_address(None, "imap", "cac.washington.edu")])],
        [
            Run(
                [
                    _address(None, "minutes", "CNRI.Reston.VA.US"),
                    _address("John Klensin", "KLENSIN", "MIT.EDU"),
                ]
            )
        ],
        None,
        None,
        "<B27397-0100000@cac.washington.edu>",
    ]
    assert wire.encode_value(envelope) == (
        b'("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'((NIL NIL "imap" "cac.washington.edu")) '
        b'((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) '
        b'NIL NIL "<B27397-0100000@cac.washington.edu>")'
    )


def test_body_of_the_rfc_3501_sample_session() -> None:
    body: wire.WireValue = ["TEXT", "PLAIN", ["CHARSET", "US-ASCII"], None, None, "7BIT", 3028, 92]
    assert wire.encode_value(body) == (
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)'
    )


def test_multipart_body_puts_its_parts_side_by_side() -> None:
    # RFC 3501 §9: body-type-mpart = 1*body SP media-subtype.
    part: wire.WireValue = ["TEXT", "PLAIN", ["CHARSET", "US-ASCII"], None, None, "7BIT", 10, 1]
    assert wire.encode_value([Run([part, part]), "MIXED"]) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 10 1)'
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 10 1) "MIXED")'
    )
