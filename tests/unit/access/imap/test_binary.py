"""BINARY (RFC 3516): the FETCH items' grammar, the decoders and the literal8 rewrite."""

from __future__ import annotations

import base64
import quopri

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.access.imap import binary
from postroom.access.imap.parser import (
    Append,
    Command,
    CommandReader,
    Fetch,
    FetchBinary,
    ParseError,
    Partial,
    SequenceSet,
)
from postroom.message import parse_message


def parse(line: bytes) -> Command | ParseError:
    reader = CommandReader()
    reader.feed(line + b"\r\n")
    event = reader.next_event()
    assert isinstance(event, Command | ParseError), event
    return event


@pytest.mark.parametrize(
    ("item", "parsed"),
    [
        ("BINARY[1.2]", FetchBinary((1, 2))),
        ("binary.peek[]", FetchBinary((), peek=True)),
        ("BINARY.PEEK[3]<5.10>", FetchBinary((3,), peek=True, partial=Partial(5, 10))),
        ("BINARY.SIZE[2]", FetchBinary((2,), size_only=True)),
    ],
    ids=["binary", "peek-whole", "partial", "size"],
)
def test_binary_fetch_items(item: str, parsed: FetchBinary) -> None:
    # RFC 3516 §6: "BINARY" [".PEEK"] section-binary [partial] / "BINARY.SIZE" section-binary
    assert parse(f"A1 FETCH 1 ({item})".encode()) == Command(
        "A1", "FETCH", Fetch(SequenceSet.of(1), (parsed,))
    )


@pytest.mark.parametrize(
    "item", ["BINARY[1.TEXT]", "BINARY[HEADER]", "BINARY", "BINARY.SIZE[1]<0.5>", "BINARY[0]"]
)
def test_binary_takes_only_part_numbers(item: str) -> None:
    assert isinstance(parse(f"A1 FETCH 1 ({item})".encode()), ParseError)


def test_labels_name_binary_without_peek_and_the_partial_origin() -> None:
    assert FetchBinary((1,), peek=True, partial=Partial(4, 9)).label() == "BINARY[1]<4>"
    assert FetchBinary((2, 1), size_only=True).label() == "BINARY.SIZE[2.1]"


def test_append_with_a_literal8_is_marked_binary() -> None:
    command = parse(b"A1 APPEND INBOX ~{3+}\r\n\x00\x01\x02")
    assert isinstance(command, Command)
    assert isinstance(command.args, Append)
    assert command.args.binary
    assert command.args.message == b"\x00\x01\x02"


def test_a_literal8_is_only_for_a_message() -> None:
    assert isinstance(parse(b"A1 LOGIN ~{3+}\r\nbob pw"), ParseError)


def test_an_unknown_encoding_raises_unknown_cte() -> None:
    with pytest.raises(binary.UnknownCte):
        binary.decode(b"begin 644 x", "x-uuencode")


@given(st.binary(max_size=500))
def test_base64_decodes_to_the_octets(data: bytes) -> None:
    assert binary.decode(base64.encodebytes(data).replace(b"\n", b"\r\n"), "base64") == data


@given(st.lists(st.binary(max_size=80).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))))
def test_quoted_printable_decodes_to_the_octets(lines: list[bytes]) -> None:
    # RFC 2045 §6.7: quopri writes soft breaks and escapes white space; lines end in CRLF.
    encoded = quopri.encodestring(b"\n".join(lines)).replace(b"\n", b"\r\n")
    assert binary.decode(encoded, "Quoted-Printable") == b"\r\n".join(lines)


@pytest.mark.parametrize(
    ("data", "needs"),
    [(b"hello\r\nworld", False), (b"a\x00b", True), (b"a\rb", True), (b"a\nb", True)],
)
def test_literal8_only_when_the_octets_are_not_text(data: bytes, needs: bool) -> None:
    assert binary.is_binary(data) is needs


@given(st.binary(max_size=300))
def test_a_binary_part_is_stored_as_base64_and_decodes_back(payload: bytes) -> None:
    raw = (
        b"From: a@example.test\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: binary\r\n\r\n" + payload + b"\r\n--b--\r\n"
    )
    stored = binary.to_seven_bit(raw)
    assert b"\x00" not in stored
    body = parse_message(stored).body
    text, octets = body.children
    assert stored[text.body_start : text.end] == b"hello"
    assert octets.encoding.upper() == "BASE64"
    assert binary.decode(stored[octets.body_start : octets.end], octets.encoding) == payload
