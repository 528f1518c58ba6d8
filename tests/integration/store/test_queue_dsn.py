"""The queue's DSN bookkeeping: which bounces owe a DSN, locking the debt, paying it once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from postroom.db import Conn, connect
from postroom.store import queue as queue_store
from postroom.store.types import Arrival, RecipientSpec, Spooled

RAW = b"From: a@example.test\r\nSubject: x\r\n\r\nbody\r\n"


async def bounced(conn: Conn, sender: str, notify: str | None = None) -> Spooled:
    now = datetime.now(UTC)
    spooled = await queue_store.spool(
        conn,
        RAW,
        reverse_path=sender,
        recipients=[RecipientSpec("r@remote.test", notify=notify)],
        arrival=Arrival(source="smtp"),
        now=now,
    )
    for d in spooled.deliveries:
        await queue_store.record_outcome(conn, d.id, "bounced", now=now, reply_code=550)
    return spooled


@pytest.mark.parametrize(
    ("sender", "notify", "owed"),
    [
        ("a@example.test", None, 1),
        ("a@example.test", "FAILURE,DELAY", 1),
        ("a@example.test", "NEVER", 0),
        ("a@example.test", "DELAY", 0),
        ("", None, 0),
    ],
    ids=["default", "notify-failure", "notify-never", "notify-delay-only", "null-sender"],
)
async def test_request_dsn_only_where_one_is_due(
    conn: Conn, sender: str, notify: str | None, owed: int
) -> None:
    spooled = await bounced(conn, sender, notify)
    assert await queue_store.request_dsn(conn, [d.id for d in spooled.deliveries]) == owed


async def test_owed_dsn_is_locked_for_one_payer_and_paid_once(
    conn: Conn, database_url: str
) -> None:
    spooled = await bounced(conn, "a@example.test")
    ids = [d.id for d in spooled.deliveries]
    await queue_store.request_dsn(conn, ids)
    assert spooled.message.id in await queue_store.dsn_due_messages(conn, limit=10_000)
    other = await connect(database_url, autocommit=True)
    try:
        async with conn.transaction():
            locked = await queue_store.lock_dsn_due(conn, spooled.message.id)
            assert [d.id for d in locked] == ids
            async with other.transaction():
                assert await queue_store.lock_dsn_due(other, spooled.message.id) == []
            await queue_store.mark_dsn_sent(conn, ids, spooled.message.id)
    finally:
        await other.close()
    assert spooled.message.id not in await queue_store.dsn_due_messages(conn, limit=10_000)
    entry = await queue_store.get_queue_entry(conn, spooled.message.id)
    assert entry.deliveries[0].dsn_queue_message_id == spooled.message.id


async def test_delay_warning_candidates_are_old_deferred_and_unwarned(conn: Conn) -> None:
    now = datetime.now(UTC)
    spooled = await queue_store.spool(
        conn,
        RAW,
        reverse_path="a@example.test",
        recipients=["r@remote.test"],
        arrival=Arrival(source="smtp"),
        now=now,
    )
    [d] = spooled.deliveries
    await queue_store.record_outcome(
        conn, d.id, "deferred", now=now, reply_code=451, next_attempt_at=now + timedelta(hours=1)
    )
    later = now + timedelta(hours=5)
    found = await queue_store.delay_warning_messages(
        conn, received_before=later - timedelta(hours=4), now=later, limit=10_000
    )
    assert spooled.message.id in found
    await queue_store.mark_delay_warned(conn, [d.id], now=later)
    found = await queue_store.delay_warning_messages(
        conn, received_before=later - timedelta(hours=4), now=later, limit=10_000
    )
    assert spooled.message.id not in found


async def test_bounce_queue_entry_bounces_pending_deliveries_and_owes_a_dsn(conn: Conn) -> None:
    now = datetime.now(UTC)
    spooled = await queue_store.spool(
        conn,
        RAW,
        reverse_path="a@example.test",
        recipients=["r@remote.test", "s@remote.test"],
        arrival=Arrival(source="smtp"),
        now=now,
    )
    bounced_ids = await queue_store.bounce_queue_entry(
        conn, spooled.message.id, now=now, reason="5.0.0 deleted"
    )
    assert bounced_ids == [d.id for d in spooled.deliveries]
    entry = await queue_store.get_queue_entry(conn, spooled.message.id)
    assert [d.state for d in entry.deliveries] == ["bounced", "bounced"]
    assert [a.reply_text for a in entry.attempts] == ["5.0.0 deleted", "5.0.0 deleted"]
    assert spooled.message.id in await queue_store.dsn_due_messages(conn, limit=10_000)
