"""BINARY (RFC 3516): FETCH BINARY[part]<partial>, BINARY.PEEK, BINARY.SIZE, APPEND with a
literal8, [UNKNOWN-CTE], by transcript on the real store."""

from __future__ import annotations

import base64

import pytest

from postroom import store
from postroom.db import Conn
from postroom.store.types import Account
from tests.integration.access.imap_support import Transcript
from tests.support import Tenant

PAYLOAD = b"\x00\x01binary\r\n\xff\n"
MULTIPART = (
    b"From: a@example.test\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    b"--b1\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"caf=C3=A9 au =\r\nlait  \r\nnext\r\n"
    b"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes(PAYLOAD).replace(b"\n", b"\r\n")
    + b"--b1\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
    b"begin 644 x\r\n`\r\nend\r\n"
    b"--b1--\r\n"
)


@pytest.fixture
async def alice(tenant: Tenant) -> Account:
    return await tenant.account("alice", "pw")


@pytest.fixture
async def t(conn: Conn, alice: Account) -> Transcript:
    box = await store.get_mailbox(conn, alice.id, "INBOX")
    assert box is not None
    await store.append_message(conn, box.id, MULTIPART)
    transcript = Transcript(conn)
    await transcript.send(f"a LOGIN {alice.address} pw")
    await transcript.send("b SELECT INBOX")
    return transcript


async def test_capability_names_binary(t: Transcript) -> None:
    assert "BINARY" in (await t.lines("a CAPABILITY"))[0].split()


async def test_binary_undoes_quoted_printable(t: Transcript) -> None:
    # RFC 3516 §4.2; RFC 2045 §6.7: soft line breaks joined, trailing white space dropped.
    text = "café au lait\r\nnext".encode()
    assert (
        await t.send("c FETCH 1 (BINARY.PEEK[1])")
        == (
            b"* 1 FETCH (BINARY[1] {%d}\r\n" % len(text) + text + b")\r\nc OK FETCH completed\r\n"
        ).decode()
    )


async def test_binary_of_octets_that_are_not_text_is_a_literal8(t: Transcript) -> None:
    assert await t.send("c FETCH 1 (BINARY.PEEK[2])") == (
        b"* 1 FETCH (BINARY[2] ~{%d}\r\n" % len(PAYLOAD)
        + PAYLOAD
        + b")\r\nc OK FETCH completed\r\n"
    ).decode("utf-8", "replace")


async def test_binary_size_is_the_decoded_size(t: Transcript) -> None:
    assert await t.lines("c FETCH 1 (BINARY.SIZE[2] BINARY.SIZE[1])") == [
        f"* 1 FETCH (BINARY.SIZE[2] {len(PAYLOAD)} BINARY.SIZE[1] 19)",
        "c OK FETCH completed",
    ]


async def test_a_partial_binary_counts_decoded_octets(t: Transcript) -> None:
    assert await t.send("c FETCH 1 (BINARY.PEEK[2]<2.6>)") == (
        "* 1 FETCH (BINARY[2]<2> ~{6}\r\nbinary)\r\nc OK FETCH completed\r\n"
    )


async def test_binary_without_peek_sets_seen(t: Transcript) -> None:
    lines = await t.lines("c FETCH 1 (BINARY[1])")
    assert lines[0].startswith("* 1 FETCH (FLAGS (\\Seen \\Recent) BINARY[1] {")


async def test_an_unknown_encoding_is_no_unknown_cte(t: Transcript) -> None:
    # RFC 3516 §4.3.
    assert await t.lines("c FETCH 1 (BINARY.PEEK[3])") == [
        "c NO [UNKNOWN-CTE] Unknown Content-Transfer-Encoding X-UUENCODE"
    ]


async def test_a_missing_part_is_nil(t: Transcript) -> None:
    assert await t.lines("c FETCH 1 (BINARY.PEEK[9])") == [
        "* 1 FETCH (BINARY[9] NIL)",
        "c OK FETCH completed",
    ]


async def test_append_of_a_literal8_stores_binary_parts_as_base64(
    conn: Conn, alice: Account, t: Transcript
) -> None:
    # RFC 3516 §4.4: BODY[1] is then text, BINARY[1] gives the octets back.
    message = (
        b"From: a@example.test\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: binary\r\n\r\n" + PAYLOAD
    )
    lines = await t.lines(b"c APPEND Drafts ~{%d+}\r\n" % len(message) + message + b"\r\n")
    assert lines[-1].startswith("c OK [APPENDUID ")
    await t.send("d SELECT Drafts")
    encoded = base64.encodebytes(PAYLOAD).replace(b"\n", b"\r\n").decode()
    assert encoded == "AAFiaW5hcnkNCv8K\r\n"
    assert await t.lines("e FETCH 1 (BODY.PEEK[1] BINARY.SIZE[1])") == [
        "* 1 FETCH (BODY[1] {18}",
        "AAFiaW5hcnkNCv8K",
        f" BINARY.SIZE[1] {len(PAYLOAD)})",
        "e OK FETCH completed",
    ]
