"""Messages: UIDs, flags, expunge, copy and move, blobs, and change notification."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from postroom import store
from postroom.db import Conn, connect
from postroom.errors import InvalidInput
from postroom.imap_encoding import body_bytes, envelope_bytes
from postroom.store.messages import _FLAG_TEXT
from tests.support import Tenant


def message(n: int = 0, size: int = 0) -> bytes:
    body = (b"x" * 76 + b"\r\n") * (size // 78)
    return (
        f"From: sender@example.test\r\nTo: alice@example.test\r\nSubject: test {n}\r\n"
        f"Message-ID: <{n}.{secrets.token_hex(6)}@example.test>\r\n\r\nhello {n}\r\n"
    ).encode() + body


async def inbox_of(tenant: Tenant, local: str = "alice") -> store.Mailbox:
    account = await tenant.account(local)
    box = await store.get_mailbox(tenant.conn, account.id, "INBOX")
    assert box is not None
    return box


async def test_append_returns_ascending_uids(tenant: Tenant) -> None:
    inbox = await inbox_of(tenant)
    uids = [(await store.append_message(tenant.conn, inbox.id, message(i))).uid for i in range(3)]
    assert uids == sorted(uids)
    assert len(set(uids)) == 3


async def test_raw_bytes_come_back_unchanged(tenant: Tenant) -> None:
    inbox = await inbox_of(tenant)
    raw = message(1, size=10_000) + b"\xff\x00 binary tail\r\n"
    m = await store.append_message(tenant.conn, inbox.id, raw)
    assert await store.fetch_raw(tenant.conn, inbox.id, m.uid) == raw
    assert m.size == len(raw)


async def test_header_prefix_is_prepended_and_counted(tenant: Tenant) -> None:
    inbox = await inbox_of(tenant)
    prefix = b"Return-Path: <s@example.test>\r\n"
    raw = message(1)
    m = await store.append_message(tenant.conn, inbox.id, raw, header_prefix=prefix)
    assert await store.fetch_raw(tenant.conn, inbox.id, m.uid) == prefix + raw
    assert m.size == len(prefix) + len(raw)


async def test_fetch_raw_many_gives_the_messages_there_with_their_prefixes(
    tenant: Tenant,
) -> None:
    inbox = await inbox_of(tenant)
    plain = await store.append_message(tenant.conn, inbox.id, b"Subject: a\r\n\r\none\r\n")
    prefixed = await store.append_message(
        tenant.conn, inbox.id, b"Subject: b\r\n\r\ntwo\r\n", header_prefix=b"X-P: 1\r\n"
    )
    gone = await store.append_message(tenant.conn, inbox.id, b"Subject: c\r\n\r\n3\r\n")
    await store.delete_messages(tenant.conn, inbox.id, [gone.uid])

    found = await store.fetch_raw_many(
        tenant.conn, inbox.id, [prefixed.uid, gone.uid, plain.uid, 999]
    )

    assert found == {
        plain.uid: b"Subject: a\r\n\r\none\r\n",
        prefixed.uid: b"X-P: 1\r\nSubject: b\r\n\r\ntwo\r\n",
    }


async def test_envelope_and_bodystructure_are_kept_as_imap_writes_them(tenant: Tenant) -> None:
    inbox = await inbox_of(tenant)
    m = await store.append_message(tenant.conn, inbox.id, message(1))
    [content] = await store.fetch_content(tenant.conn, inbox.id, [m.uid])
    assert content.imap_envelope == envelope_bytes(content.parsed["envelope"])
    assert content.imap_bodystructure == body_bytes(content.parsed["body"], extensible=True)


async def test_structure_only_reads_leave_the_parse_out_when_its_forms_are_kept(
    tenant: Tenant,
) -> None:
    inbox = await inbox_of(tenant)
    m = await store.append_message(tenant.conn, inbox.id, message(1))
    [content] = await store.fetch_content(tenant.conn, inbox.id, [m.uid], parsed=False)
    assert content.parsed == {}
    assert content.imap_envelope is not None


async def test_large_message_streams_in_chunks(tenant: Tenant) -> None:
    inbox = await inbox_of(tenant)
    raw = message(2, size=1_000_000)
    m = await store.append_message(tenant.conn, inbox.id, raw, header_prefix=b"X-A: 1\r\n")
    chunks = [
        c async for c in store.read_raw_chunks(tenant.conn, inbox.id, m.uid, chunk_size=65536)
    ]
    assert b"".join(chunks) == b"X-A: 1\r\n" + raw
    assert max(len(c) for c in chunks) <= 65536


async def test_uids_stay_monotonic_under_concurrent_appends(
    tenant: Tenant, database_url: str
) -> None:
    inbox = await inbox_of(tenant)
    conns = [await connect(database_url, autocommit=True) for _ in range(2)]
    try:

        async def writer(c: Conn, start: int) -> list[int]:
            return [
                (await store.append_message(c, inbox.id, message(start + i))).uid for i in range(25)
            ]

        a, b = await asyncio.gather(writer(conns[0], 0), writer(conns[1], 100))
    finally:
        for c in conns:
            await c.close()
    assert a == sorted(a)
    assert b == sorted(b)
    assert len(set(a) | set(b)) == 50
    assert await store.list_uids(tenant.conn, inbox.id) == sorted(a + b)


async def test_flags_set_add_remove(tenant: Tenant) -> None:
    inbox = await inbox_of(tenant)
    m = await store.append_message(tenant.conn, inbox.id, message(1), flags=["\\Draft"])
    await store.store_flags(tenant.conn, inbox.id, [m.uid], ["\\Seen", "$Work"], "add")
    got = await store.get_message(tenant.conn, inbox.id, m.uid)
    assert got is not None
    assert got.flags == {"\\Draft", "\\Seen", "$Work"}
    await store.store_flags(tenant.conn, inbox.id, [m.uid], ["\\Draft", "$Work"], "remove")
    got = await store.get_message(tenant.conn, inbox.id, m.uid)
    assert got is not None
    assert got.flags == {"\\Seen"}
    await store.store_flags(tenant.conn, inbox.id, [m.uid], ["\\Flagged"], "set")
    got = await store.get_message(tenant.conn, inbox.id, m.uid)
    assert got is not None
    assert got.flags == {"\\Flagged"}


async def test_flag_change_bumps_modseq_only_when_something_changes(tenant: Tenant) -> None:
    inbox = await inbox_of(tenant)
    m = await store.append_message(tenant.conn, inbox.id, message(1))
    changed = await store.store_flags(tenant.conn, inbox.id, [m.uid], ["\\Seen"], "add")
    again = await store.store_flags(tenant.conn, inbox.id, [m.uid], ["\\Seen"], "add")
    assert [c.uid for c in changed] == [m.uid]
    assert changed[0].modseq > m.modseq
    assert again == []


@pytest.mark.parametrize("flag", ["\\Recent", "\\Bogus", "has space", "paren(", ""])
async def test_unstorable_flags_are_refused(tenant: Tenant, flag: str) -> None:
    inbox = await inbox_of(tenant)
    m = await store.append_message(tenant.conn, inbox.id, message(1))
    with pytest.raises(InvalidInput):
        await store.store_flags(tenant.conn, inbox.id, [m.uid], [flag], "add")


async def test_expunge_removes_only_deleted_messages(tenant: Tenant) -> None:
    inbox = await inbox_of(tenant)
    keep = await store.append_message(tenant.conn, inbox.id, message(1))
    drop = await store.append_message(tenant.conn, inbox.id, message(2), flags=["\\Deleted"])
    assert await store.expunge(tenant.conn, inbox.id) == [drop.uid]
    assert await store.list_uids(tenant.conn, inbox.id) == [keep.uid]


async def test_uid_expunge_is_limited_to_the_given_uids(tenant: Tenant) -> None:
    inbox = await inbox_of(tenant)
    a = await store.append_message(tenant.conn, inbox.id, message(1), flags=["\\Deleted"])
    b = await store.append_message(tenant.conn, inbox.id, message(2), flags=["\\Deleted"])
    assert await store.expunge(tenant.conn, inbox.id, [b.uid]) == [b.uid]
    assert await store.list_uids(tenant.conn, inbox.id) == [a.uid]


async def test_uids_are_never_reused_after_expunge(tenant: Tenant) -> None:
    inbox = await inbox_of(tenant)
    m = await store.append_message(tenant.conn, inbox.id, message(1), flags=["\\Deleted"])
    await store.expunge(tenant.conn, inbox.id)
    n = await store.append_message(tenant.conn, inbox.id, message(2))
    assert n.uid > m.uid


async def test_move_keeps_content_and_flags(tenant: Tenant) -> None:
    inbox = await inbox_of(tenant)
    archive = await store.get_mailbox(tenant.conn, inbox.account_id, "Archive")
    assert archive is not None
    raw = message(7)
    m = await store.append_message(tenant.conn, inbox.id, raw, flags=["\\Seen", "$Label"])
    pairs = await store.move_messages(tenant.conn, inbox.id, [m.uid], archive.id)
    assert [old for old, _ in pairs] == [m.uid]
    new_uid = pairs[0][1]
    assert await store.list_uids(tenant.conn, inbox.id) == []
    moved = await store.get_message(tenant.conn, archive.id, new_uid)
    assert moved is not None
    assert moved.flags == {"\\Seen", "$Label"}
    assert moved.internal_date == m.internal_date
    assert await store.fetch_raw(tenant.conn, archive.id, new_uid) == raw


async def test_copy_leaves_the_source_and_shares_the_blob(tenant: Tenant) -> None:
    inbox = await inbox_of(tenant)
    sent = await store.get_mailbox(tenant.conn, inbox.account_id, "Sent")
    assert sent is not None
    m = await store.append_message(tenant.conn, inbox.id, message(3))
    [(_, new_uid)] = await store.copy_messages(tenant.conn, inbox.id, [m.uid], sent.id)
    copy = await store.get_message(tenant.conn, sent.id, new_uid)
    assert copy is not None
    assert copy.blob_id == m.blob_id
    assert await store.list_uids(tenant.conn, inbox.id) == [m.uid]


async def test_one_blob_for_a_message_to_many_recipients(tenant: Tenant) -> None:
    raw = message(9, size=5000)
    boxes = [await inbox_of(tenant, f"user{i}") for i in range(5)]
    entries = [await store.append_message(tenant.conn, b.id, raw) for b in boxes]
    assert len({e.blob_id for e in entries}) == 1
    cur = await tenant.conn.execute(
        "SELECT count(*) AS n FROM blobs WHERE id = %s", (entries[0].blob_id,)
    )
    row = await cur.fetchone()
    assert row is not None
    assert row["n"] == 1


async def test_delivery_key_makes_a_retried_append_a_no_op(tenant: Tenant) -> None:
    inbox = await inbox_of(tenant)
    key = f"delivery-{secrets.token_hex(4)}"
    first = await store.append_message(tenant.conn, inbox.id, message(1), delivery_key=key)
    second = await store.append_message(tenant.conn, inbox.id, message(1), delivery_key=key)
    assert second.id == first.id
    assert await store.list_uids(tenant.conn, inbox.id) == [first.uid]


async def test_changes_since_reports_new_flagged_and_expunged(tenant: Tenant) -> None:
    inbox = await inbox_of(tenant)
    a = await store.append_message(tenant.conn, inbox.id, message(1))
    b = await store.append_message(tenant.conn, inbox.id, message(2))
    mark = (await store.get_mailbox_by_id(tenant.conn, inbox.id)).highest_modseq  # type: ignore[union-attr]
    c = await store.append_message(tenant.conn, inbox.id, message(3))
    await store.store_flags(tenant.conn, inbox.id, [a.uid], ["\\Seen"], "add")
    await store.delete_messages(tenant.conn, inbox.id, [b.uid])
    changes = await store.changes_since(tenant.conn, inbox.id, mark)
    assert [m.uid for m in changes.changed] == [a.uid, c.uid]
    assert changes.expunged == (b.uid,)
    assert changes.highest_modseq > mark


async def test_append_notifies_a_listener(tenant: Tenant, database_url: str) -> None:
    inbox = await inbox_of(tenant)
    changes = store.listen(database_url)
    waiter = asyncio.ensure_future(anext(changes))
    await asyncio.sleep(0.2)  # let LISTEN take effect before the append
    try:
        m = await store.append_message(tenant.conn, inbox.id, message(1))
        while True:
            change = await asyncio.wait_for(waiter, timeout=1.0)
            if change.mailbox_id == inbox.id:
                break
            waiter = asyncio.ensure_future(anext(changes))
    finally:
        await changes.aclose()
    assert change.account_id == inbox.account_id
    assert change.modseq == m.modseq


async def test_fetch_content_gives_parsed_structure_without_reparsing(tenant: Tenant) -> None:
    inbox = await inbox_of(tenant)
    raw = message(5)
    m = await store.append_message(tenant.conn, inbox.id, raw, header_prefix=b"X-P: 1\r\n")
    [content] = await store.fetch_content(tenant.conn, inbox.id, [m.uid])
    assert content.message.uid == m.uid
    assert content.header_prefix == b"X-P: 1\r\n"
    assert content.blob_size == len(raw)
    assert isinstance(content.parsed, dict)
    assert content.parsed


def test_sequence_numbers_map_to_uids() -> None:
    uids = [3, 7, 8, 20]
    assert store.uid_to_seq(uids, 8) == 3
    assert store.uid_to_seq(uids, 9) is None
    assert store.seq_to_uid(uids, 4) == 20
    assert store.seq_to_uid(uids, 5) is None


async def test_change_hub_wakes_the_accounts_subscriber_only(
    tenant: Tenant, database_url: str
) -> None:
    alice_inbox = await inbox_of(tenant, "alice")
    bob_inbox = await inbox_of(tenant, "bob")
    hub = store.ChangeHub(database_url)
    await hub.start()
    try:
        await asyncio.wait_for(hub.listening.wait(), 5)
        with (
            hub.subscribe(alice_inbox.account_id) as alice,
            hub.subscribe(bob_inbox.account_id) as bob,
        ):
            await store.append_message(tenant.conn, alice_inbox.id, message(1))
            assert await alice.wait(timeout=1.0)
            assert alice.take() == (frozenset({alice_inbox.id}), False)
            assert not await bob.wait(timeout=0.3)
    finally:
        await hub.stop()


async def test_list_flags_gives_each_uids_flags_as_one_string(tenant: Tenant) -> None:
    inbox = await inbox_of(tenant)
    a = await store.append_message(tenant.conn, inbox.id, message(1), flags=["$Zeta", "\\Seen"])
    b = await store.append_message(tenant.conn, inbox.id, message(2))
    c = await store.append_message(
        tenant.conn, inbox.id, message(3), flags=["\\Draft", "\\Answered", "$Alpha"]
    )
    assert await store.list_flags(tenant.conn, inbox.id) == [
        (a.uid, "\\Seen $Zeta"),
        (b.uid, ""),
        (c.uid, "\\Answered \\Draft $Alpha"),
    ]
    assert await store.list_flags(tenant.conn, inbox.id, uid_min=b.uid, uid_max=b.uid) == [
        (b.uid, "")
    ]


async def test_read_blob_chunks_stops_at_the_given_end(tenant: Tenant) -> None:
    inbox = await inbox_of(tenant)
    raw = message(1, size=50_000)
    stored = await store.append_message(tenant.conn, inbox.id, raw)
    chunks = [
        chunk
        async for chunk in store.read_blob_chunks(
            tenant.conn, stored.blob_id, 30_000, chunk_size=4096, start=100
        )
    ]
    assert b"".join(chunks) == raw[100:30_000]
    assert all(len(chunk) <= 4096 for chunk in chunks)


async def test_list_flags_reads_the_index_alone(tenant: Tenant) -> None:
    inbox = await inbox_of(tenant)
    for n in range(3):
        await store.append_message(tenant.conn, inbox.id, message(n))
    await tenant.conn.execute("VACUUM messages")  # index-only scans need the visibility map
    await tenant.conn.execute("SET enable_seqscan = off")
    try:
        cur = await tenant.conn.execute(
            f"""EXPLAIN SELECT uid, {_FLAG_TEXT} FROM messages
                WHERE mailbox_id = %s AND uid >= 1 AND uid <= 100 ORDER BY uid""",
            (inbox.id,),
        )
        plan = "\n".join(row["QUERY PLAN"] for row in await cur.fetchall())
    finally:
        await tenant.conn.execute("RESET enable_seqscan")
    assert "Index Only Scan using messages_flags" in plan
