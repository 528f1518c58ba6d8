"""Conversations of the message list: the thread id each message gets when it is stored
(migration 0085), and a folder listed one row per conversation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from postroom import store
from postroom.db import Conn
from postroom.store import search
from postroom.store.types import Mailbox
from tests.support import Tenant

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def mail(mid: str, *, refs: str = "", reply_to: str = "", subject: str = "Plan") -> bytes:
    links = (f"References: {refs}\r\n" if refs else "") + (
        f"In-Reply-To: {reply_to}\r\n" if reply_to else ""
    )
    return (
        f"From: a@remote.test\r\nSubject: {subject}\r\nMessage-ID: {mid}\r\n{links}\r\nbody\r\n"
    ).encode()


async def inbox(conn: Conn, tenant: Tenant) -> Mailbox:
    account = await tenant.account("alice")
    box = await store.get_mailbox(conn, account.id, "INBOX")
    assert box is not None
    return box


async def thread(conn: Conn, box: Mailbox, uid: int) -> int:
    cur = await conn.execute(
        "SELECT thread_id FROM messages WHERE mailbox_id = %s AND uid = %s", (box.id, uid)
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["thread_id"])


async def put(conn: Conn, box: Mailbox, raw: bytes, minutes: int = 0, **kw: object) -> int:
    message = await store.append_message(
        conn,
        box.id,
        raw,
        internal_date=T0 + timedelta(minutes=minutes),
        **kw,  # type: ignore[arg-type]
    )
    return message.uid


async def test_a_reply_joins_the_conversation_of_what_it_answers(
    conn: Conn, tenant: Tenant
) -> None:
    box = await inbox(conn, tenant)
    first = await put(conn, box, mail("<r1@x>"))
    reply = await put(conn, box, mail("<r2@x>", reply_to="<r1@x>"))
    other = await put(conn, box, mail("<o1@x>"))
    assert await thread(conn, box, reply) == await thread(conn, box, first)
    assert await thread(conn, box, other) != await thread(conn, box, first)


async def test_a_reply_stored_first_is_joined_by_what_it_answers(
    conn: Conn, tenant: Tenant
) -> None:
    box = await inbox(conn, tenant)
    reply = await put(conn, box, mail("<late2@x>", refs="<late1@x>"))
    original = await put(conn, box, mail("<late1@x>"))
    assert await thread(conn, box, original) == await thread(conn, box, reply)


async def test_a_copy_keeps_its_conversation(conn: Conn, tenant: Tenant) -> None:
    box = await inbox(conn, tenant)
    uid = await put(conn, box, mail("<c1@x>"))
    archive = await store.create_mailbox(conn, box.account_id, "Kept")
    [(_, copied)] = await store.copy_messages(conn, box.id, [uid], archive.id)
    assert await thread(conn, archive, copied) == await thread(conn, box, uid)


async def test_another_accounts_message_is_never_in_the_conversation(
    conn: Conn, tenant: Tenant
) -> None:
    box = await inbox(conn, tenant)
    uid = await put(conn, box, mail("<shared1@x>"))
    bob = await tenant.account("bob")
    bobs = await store.get_mailbox(conn, bob.id, "INBOX")
    assert bobs is not None
    reply = await put(conn, bobs, mail("<shared2@x>", reply_to="<shared1@x>"))
    assert await thread(conn, bobs, reply) != await thread(conn, box, uid)


async def test_the_folder_lists_one_row_per_conversation_newest_first(
    conn: Conn, tenant: Tenant
) -> None:
    box = await inbox(conn, tenant)
    await put(conn, box, mail("<a1@x>", subject="A"), 0, flags=["\\Seen"])
    await put(conn, box, mail("<b1@x>", subject="B"), 1, flags=["\\Seen"])
    await put(conn, box, mail("<a2@x>", refs="<a1@x>", subject="Re: A"), 2)
    await put(conn, box, mail("<a3@x>", refs="<a1@x> <a2@x>", subject="Re: A"), 3, flags=["\\Seen"])
    page = await search.list_conversations(conn, box.id, limit=10)
    assert page.total == 2
    rows = [(c.latest.subject, c.messages, c.unread, c.newest) for c in page.items]
    assert rows == [
        ("Re: A", 3, 1, T0 + timedelta(minutes=3)),
        ("B", 1, 0, T0 + timedelta(minutes=1)),
    ]


async def test_conversations_are_paged(conn: Conn, tenant: Tenant) -> None:
    box = await inbox(conn, tenant)
    for i in range(5):
        await put(conn, box, mail(f"<p{i}@x>", subject=f"S{i}"), i)
        await put(conn, box, mail(f"<q{i}@x>", refs=f"<p{i}@x>", subject=f"S{i}"), 10 + i)
    second = await search.list_conversations(conn, box.id, offset=2, limit=2)
    assert (second.total, [c.latest.subject for c in second.items]) == (5, ["S2", "S1"])
    past = await search.list_conversations(conn, box.id, offset=9, limit=2)
    assert (past.total, past.items) == (5, ())


async def test_a_search_groups_only_the_messages_that_match(conn: Conn, tenant: Tenant) -> None:
    box = await inbox(conn, tenant)
    await put(conn, box, mail("<m1@x>", subject="Budget"), 0, flags=["\\Seen"])
    await put(conn, box, mail("<m2@x>", refs="<m1@x>", subject="Re: Budget"), 1)
    page = await search.list_conversations(
        conn, box.id, criteria=search.Flag("\\Seen", present=False)
    )
    assert [(c.latest.subject, c.messages) for c in page.items] == [("Re: Budget", 1)]


async def test_thread_uids_are_the_folders_messages_of_those_conversations(
    conn: Conn, tenant: Tenant
) -> None:
    box = await inbox(conn, tenant)
    a = await put(conn, box, mail("<u1@x>"))
    b = await put(conn, box, mail("<u2@x>", reply_to="<u1@x>"))
    await put(conn, box, mail("<u3@x>"))
    assert await search.thread_uids(conn, box.id, [await thread(conn, box, a)]) == [a, b]
