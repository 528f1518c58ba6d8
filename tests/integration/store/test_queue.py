"""The delivery queue: atomic spool, leases with SKIP LOCKED, attempts, defer, finish."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

import pytest

from postroom import store
from postroom.db import Conn, connect
from postroom.errors import InvalidInput
from postroom.store import queue
from postroom.store.search import Header, search_uids
from postroom.store.types import Arrival, DeliveryId, RecipientSpec
from tests.support import Tenant

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
ARRIVAL = Arrival(source="smtp", client_address="192.0.2.7", helo_name="client.example")


def raw() -> bytes:
    return (
        f"From: a@example.test\r\nMessage-ID: <{secrets.token_hex(8)}@example.test>\r\n"
        "Subject: queued\r\n\r\nbody\r\n"
    ).encode()


async def test_spool_creates_one_delivery_per_recipient(conn: Conn) -> None:
    spooled = await queue.spool(
        conn,
        raw(),
        reverse_path="a@example.test",
        recipients=["x@remote.test", RecipientSpec("y@remote.test", notify="FAILURE")],
        arrival=ARRIVAL,
        now=NOW,
    )
    assert [d.recipient for d in spooled.deliveries] == ["x@remote.test", "y@remote.test"]
    assert all(d.state == "queued" and d.next_attempt_at == NOW for d in spooled.deliveries)
    assert spooled.deliveries[1].notify == "FAILURE"
    assert spooled.message.client_address == "192.0.2.7"
    assert spooled.message.message_id is not None


async def test_the_same_content_spooled_twice_is_stored_once(conn: Conn) -> None:
    content = raw()
    first, second = [
        await queue.spool(
            conn, content, reverse_path="", recipients=["x@remote.test"], arrival=ARRIVAL, now=NOW
        )
        for _ in range(2)
    ]
    assert first.message.id != second.message.id
    assert first.message.blob_id == second.message.blob_id
    assert second.message.size == len(content)


async def test_concurrent_spools_of_the_same_content_both_commit(database_url: str) -> None:
    """The second waits for the first's blob row and then uses it: neither is lost."""
    content = raw()
    conns = [await connect(database_url, autocommit=True) for _ in range(4)]
    try:
        spooled = await asyncio.gather(
            *(
                queue.spool(
                    c,
                    content,
                    reverse_path="",
                    recipients=["x@remote.test"],
                    arrival=ARRIVAL,
                    now=NOW,
                )
                for c in conns
            )
        )
    finally:
        for c in conns:
            await c.close()
    assert len({s.message.id for s in spooled}) == 4
    assert len({s.message.blob_id for s in spooled}) == 1


async def test_spool_without_recipients_is_refused(conn: Conn) -> None:
    with pytest.raises(InvalidInput):
        await queue.spool(conn, raw(), reverse_path="", recipients=[], arrival=ARRIVAL, now=NOW)


async def test_a_claimed_delivery_is_not_claimed_twice(conn: Conn, database_url: str) -> None:
    spooled = await queue.spool(
        conn, raw(), reverse_path="", recipients=["z@remote.test"], arrival=ARRIVAL, now=NOW
    )
    ids = [d.id for d in spooled.deliveries]
    first = await queue.claim(conn, owner="w1", lease=LEASE, now=NOW, ids=ids)
    second = await queue.claim(conn, owner="w2", lease=LEASE, now=NOW, ids=ids)
    assert [c.delivery.id for c in first] == ids
    assert first[0].delivery.lease_owner == "w1"
    assert first[0].message.id == spooled.message.id
    assert second == []


async def test_an_expired_lease_can_be_claimed_again(conn: Conn) -> None:
    spooled = await queue.spool(
        conn, raw(), reverse_path="", recipients=["z@remote.test"], arrival=ARRIVAL, now=NOW
    )
    ids = [d.id for d in spooled.deliveries]
    await queue.claim(conn, owner="dead-worker", lease=LEASE, now=NOW, ids=ids)
    later = NOW + LEASE + timedelta(seconds=1)
    again = await queue.claim(conn, owner="w2", lease=LEASE, now=later, ids=ids)
    assert [c.delivery.lease_owner for c in again] == ["w2"]


async def test_concurrent_claims_split_the_work(conn: Conn, database_url: str) -> None:
    spooled = await queue.spool(
        conn,
        raw(),
        reverse_path="",
        recipients=[f"r{i}@remote.test" for i in range(40)],
        arrival=ARRIVAL,
        now=NOW,
    )
    ids = [d.id for d in spooled.deliveries]
    workers = [await connect(database_url, autocommit=True) for _ in range(4)]
    try:
        results = await asyncio.gather(
            *(
                queue.claim(c, owner=f"w{i}", lease=LEASE, now=NOW, ids=ids, limit=15)
                for i, c in enumerate(workers)
            )
        )
    finally:
        for c in workers:
            await c.close()
    claimed = [c.delivery.id for batch in results for c in batch]
    assert sorted(claimed) == sorted(ids)  # each exactly once


async def test_deferral_logs_the_attempt_and_sets_next_attempt(conn: Conn) -> None:
    spooled = await queue.spool(
        conn, raw(), reverse_path="", recipients=["z@remote.test"], arrival=ARRIVAL, now=NOW
    )
    d = spooled.deliveries[0]
    await queue.claim(conn, owner="w", lease=LEASE, now=NOW, ids=[d.id])
    later = NOW + timedelta(minutes=30)
    deferred = await queue.record_outcome(
        conn,
        d.id,
        "deferred",
        now=NOW,
        host="[127.0.0.1]:2526",
        reply_code=451,
        reply_text="4.3.0 try later",
        next_attempt_at=later,
    )
    assert deferred is not None
    assert (deferred.state, deferred.attempts, deferred.next_attempt_at) == ("deferred", 1, later)
    assert deferred.last_error == "451 4.3.0 try later"
    assert deferred.lease_owner is None
    assert await queue.claim(conn, owner="w", lease=LEASE, now=NOW, ids=[d.id]) == []
    assert len(await queue.claim(conn, owner="w", lease=LEASE, now=later, ids=[d.id])) == 1
    entry = await queue.get_queue_entry(conn, spooled.message.id)
    assert [(a.outcome, a.reply_code, a.host) for a in entry.attempts] == [
        ("deferred", 451, "[127.0.0.1]:2526")
    ]


async def test_a_finished_delivery_ignores_a_late_duplicate_outcome(conn: Conn) -> None:
    spooled = await queue.spool(
        conn, raw(), reverse_path="", recipients=["z@remote.test"], arrival=ARRIVAL, now=NOW
    )
    d = spooled.deliveries[0]
    done = await queue.record_outcome(conn, d.id, "delivered", now=NOW, reply_code=250)
    late = await queue.record_outcome(conn, d.id, "bounced", now=NOW, reply_code=550)
    assert done is not None
    assert done.state == "delivered"
    assert done.finished_at == NOW
    assert late is None


async def test_retry_now_makes_deferred_mail_due(conn: Conn) -> None:
    spooled = await queue.spool(
        conn, raw(), reverse_path="", recipients=["z@remote.test"], arrival=ARRIVAL, now=NOW
    )
    d = spooled.deliveries[0]
    await queue.record_outcome(
        conn, d.id, "deferred", now=NOW, next_attempt_at=NOW + timedelta(hours=1)
    )
    assert d.id not in await queue.due_ids(conn, now=NOW + timedelta(minutes=1))
    assert await queue.retry_now(conn, now=NOW, queue_id=spooled.message.id) == 1
    assert d.id in await queue.due_ids(conn, now=NOW + timedelta(minutes=1))


async def test_list_queue_shows_pending_entries(conn: Conn) -> None:
    spooled = await queue.spool(
        conn,
        raw(),
        reverse_path="s@example.test",
        recipients=["p@remote.test"],
        arrival=ARRIVAL,
        now=NOW - timedelta(days=3650),
    )
    entries = await queue.list_queue(conn)
    mine = [e for e in entries if e.message.id == spooled.message.id]
    assert len(mine) == 1
    assert mine[0].deliveries[0].recipient == "p@remote.test"
    await queue.record_outcome(conn, DeliveryId(spooled.deliveries[0].id), "delivered", now=NOW)
    assert spooled.message.id not in [e.message.id for e in await queue.list_queue(conn)]


async def test_delete_removes_the_entry(conn: Conn) -> None:
    spooled = await queue.spool(
        conn, raw(), reverse_path="", recipients=["z@remote.test"], arrival=ARRIVAL, now=NOW
    )
    await queue.delete_queue_entry(conn, spooled.message.id)
    assert spooled.deliveries[0].id not in await queue.due_ids(conn, now=NOW)


async def test_spooled_content_is_parsed_when_it_first_enters_a_mailbox(
    conn: Conn, tenant: Tenant
) -> None:
    content = raw()
    spooled = await queue.spool(
        conn,
        content,
        reverse_path="",
        recipients=[tenant.address("alice")],
        arrival=ARRIVAL,
        now=NOW,
    )
    cur = await conn.execute(
        "SELECT parsed IS NULL AS unparsed FROM blobs WHERE id = %s", (spooled.message.blob_id,)
    )
    assert (await cur.fetchone()) == {"unparsed": True}
    alice = await tenant.account("alice")
    inbox = await store.get_mailbox(conn, alice.id, "INBOX")
    assert inbox is not None
    m = await store.append_message(conn, inbox.id, blob_id=spooled.message.blob_id)
    [fetched] = await store.fetch_content(conn, inbox.id, [m.uid])
    assert fetched.parsed
    assert fetched.header_size > 0
    assert await store.fetch_raw(conn, inbox.id, m.uid) == content


async def test_appending_the_bytes_of_spooled_content_fills_in_its_parse(
    conn: Conn, tenant: Tenant
) -> None:
    """The web client's Sent copy is the very content it spooled: one blob, parsed once."""
    content = raw()
    spooled = await queue.spool(
        conn, content, reverse_path="", recipients=["x@remote.test"], arrival=ARRIVAL, now=NOW
    )
    alice = await tenant.account("alice")
    sent = await store.get_mailbox(conn, alice.id, "Sent")
    assert sent is not None
    m = await store.append_message(conn, sent.id, content)
    assert m.blob_id == spooled.message.blob_id
    [fetched] = await store.fetch_content(conn, sent.id, [m.uid])
    assert fetched.parsed
    assert await search_uids(conn, sent.id, Header("subject", "queued")) == [m.uid]


def test_message_id_is_read_from_the_header_without_parsing() -> None:
    content = b"Subject: x\r\nMessage-ID:\r\n <abc@example.test>\r\n\r\nMessage-ID: <body>\r\n"
    assert queue.header_message_id(content) == "<abc@example.test>"
    assert queue.header_message_id(b"Subject: none\r\n\r\n") is None
