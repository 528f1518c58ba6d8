"""MULTIAPPEND (RFC 3502) with APPENDUID uid sets (RFC 4315 §3), by transcript and with a
real client over a socket."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from postroom import store
from postroom.db import Conn
from postroom.store.types import Account, Mailbox
from tests.integration.access.imap_support import Transcript, message, running_imap
from tests.support import Tenant


@pytest.fixture
async def alice(tenant: Tenant) -> Account:
    return await tenant.account("alice", "pw")


@pytest.fixture
async def t(conn: Conn, alice: Account) -> Transcript:
    transcript = Transcript(conn)
    await transcript.send(f"a LOGIN {alice.address} pw")
    return transcript


async def drafts(conn: Conn, account: Account) -> Mailbox:
    box = await store.get_mailbox(conn, account.id, "Drafts")
    assert box is not None
    return box


def literal(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


async def test_capability_names_multiappend(t: Transcript) -> None:
    assert "MULTIAPPEND" in (await t.lines("a CAPABILITY"))[0].split()


async def test_several_messages_in_one_append_get_a_uid_set(
    conn: Conn, alice: Account, t: Transcript
) -> None:
    # RFC 3502 §6.3.11, RFC 4315 §3: APPENDUID uidvalidity 1:3, in the order sent.
    box = await drafts(conn, alice)
    command = (
        b"b APPEND Drafts "
        + literal(message("one"))
        + b" (\\Seen) "
        + literal(message("two"))
        + b' " 7-Feb-1994 21:52:25 -0800" '
        + literal(message("three"))
        + b"\r\n"
    )
    assert await t.lines(command) == [f"b OK [APPENDUID {box.uid_validity} 1:3] APPEND completed"]
    stored = await store.list_messages(conn, box.id)
    assert [m.flags for m in stored] == [set(), {"\\Seen"}, set()]
    assert stored[2].internal_date.isoformat() == "1994-02-08T05:52:25+00:00"
    assert [await store.fetch_raw(conn, box.id, m.uid) for m in stored] == [
        message("one"),
        message("two"),
        message("three"),
    ]


async def test_synchronizing_literals_each_get_a_continuation(t: Transcript) -> None:
    one, two = message("one"), message("two")
    lines = await t.lines(
        b"b APPEND Drafts {%d}\r\n" % len(one) + one + b" {%d}\r\n" % len(two) + two + b"\r\n"
    )
    assert lines[:2] == ["+ Ready for literal data", "+ Ready for literal data"]
    assert lines[2].startswith("b OK [APPENDUID ")
    assert lines[2].endswith(" 1:2] APPEND completed")


async def test_an_empty_message_cancels_the_whole_append(
    conn: Conn, alice: Account, t: Transcript
) -> None:
    # RFC 3502 §6.3.11: a zero-length literal cancels the command; nothing is appended.
    command = b"b APPEND Drafts " + literal(message("one")) + b" {0+}\r\n\r\n"
    assert await t.lines(command) == ["b NO APPEND cancelled by an empty message"]
    assert await store.list_uids(conn, (await drafts(conn, alice)).id) == []


async def test_past_the_quota_nothing_is_appended(conn: Conn, tenant: Tenant) -> None:
    # RFC 3502 §6.3.11: all or nothing; the second message does not fit.
    bob = await tenant.account("bob", "pw", quota_bytes=3000)
    t = Transcript(conn)
    await t.send(f"a LOGIN {bob.address} pw")
    small, big = message("small"), message("big", body="x" * 2900 + "\r\n")
    command = b"b APPEND Drafts " + literal(small) + b" " + literal(big) + b"\r\n"
    assert await t.lines(command) == ["b NO [OVERQUOTA] the mailbox is full (over its quota)"]
    assert await store.list_uids(conn, (await drafts(conn, bob)).id) == []


async def test_a_bad_second_message_is_bad_and_appends_nothing(
    conn: Conn, alice: Account, t: Transcript
) -> None:
    command = b"b APPEND Drafts " + literal(message("one")) + b" (\\Bogus) " + literal(b"x")
    assert await t.lines(command + b"\r\n") == ["b BAD Invalid system flag \\Bogus"]
    assert await store.list_uids(conn, (await drafts(conn, alice)).id) == []


async def test_a_real_client_appends_two_messages_at_once(
    conn: Conn, alice: Account, database_url: str, tmp_path: Path
) -> None:
    one, two = message("one"), message("two")
    async with running_imap(database_url, tmp_path) as imap:
        reader, writer = await asyncio.open_connection(imap.host, imap.port)
        await reader.readline()
        writer.write(f"a LOGIN {alice.address} pw\r\n".encode())
        await writer.drain()
        assert (await reader.readline()).startswith(b"a OK")
        writer.write(b"b APPEND Drafts {%d}\r\n" % len(one))
        await writer.drain()
        assert await reader.readline() == b"+ Ready for literal data\r\n"
        writer.write(one + b" (\\Flagged) {%d}\r\n" % len(two))
        await writer.drain()
        assert await reader.readline() == b"+ Ready for literal data\r\n"
        writer.write(two + b"\r\n")
        await writer.drain()
        done = await reader.readline()
        writer.close()
    box = await drafts(conn, alice)
    assert done == b"b OK [APPENDUID %d 1:2] APPEND completed\r\n" % box.uid_validity
    assert [m.flags for m in await store.list_messages(conn, box.id)] == [set(), {"\\Flagged"}]
