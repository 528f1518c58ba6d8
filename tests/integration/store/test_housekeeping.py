"""Housekeeping (`postroom gc`, and hourly in beat): what nothing needs any more goes, what
something still needs stays, and a concurrent spool of the same content never loses it."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.rows import dict_row

from postroom import store
from postroom.db import Conn
from postroom.errors import NotFound
from postroom.store import housekeeping
from postroom.store import queue as queue_store
from postroom.store.sessions import create_session
from postroom.store.types import Arrival, QueueId
from tests.integration.test_cli import cli
from tests.support import Tenant

DAYS_30 = timedelta(days=30)


def content() -> bytes:
    return f"Subject: gc\r\nMessage-ID: <{secrets.token_hex(8)}@x.test>\r\n\r\nbody\r\n".encode()


async def spool(conn: Conn, raw: bytes, now: datetime) -> QueueId:
    spooled = await queue_store.spool(
        conn,
        raw,
        reverse_path="a@example.test",
        recipients=["b@remote.test"],
        arrival=Arrival(source="smtp"),
        now=now,
    )
    return spooled.message.id


async def blob_of(conn: Conn, queue_id: QueueId) -> int:
    cur = await conn.execute("SELECT blob_id FROM queue_messages WHERE id = %s", (queue_id,))
    row = await cur.fetchone()
    assert row is not None
    return int(row["blob_id"])


async def blob_exists(conn: Conn, blob_id: int) -> bool:
    cur = await conn.execute("SELECT 1 FROM blobs WHERE id = %s", (blob_id,))
    return await cur.fetchone() is not None


async def orphan(conn: Conn, raw: bytes, now: datetime) -> int:
    """A blob of ``raw`` that nothing refers to, older than the grace period."""
    qid = await spool(conn, raw, now)
    blob = await blob_of(conn, qid)
    await queue_store.delete_queue_entry(conn, qid)
    await conn.execute(
        "UPDATE blobs SET created_at = %s WHERE id = %s", (now - timedelta(hours=2), blob)
    )
    return blob


async def collect(conn: Conn, now: datetime) -> housekeeping.Removed:
    return await housekeeping.collect(
        conn, now=now, queue_retention=DAYS_30, expunged_retention=DAYS_30
    )


async def test_unreferenced_blobs_go_and_referenced_ones_stay(conn: Conn) -> None:
    now = datetime.now(UTC)
    gone = await orphan(conn, content(), now)
    kept_qid = await spool(conn, content(), now - timedelta(days=1))
    kept = await blob_of(conn, kept_qid)
    await conn.execute(
        "UPDATE blobs SET created_at = %s WHERE id = %s", (now - timedelta(days=1), kept)
    )
    removed = await collect(conn, now)
    assert removed.blobs >= 1
    assert not await blob_exists(conn, gone)
    assert await blob_exists(conn, kept)


async def test_finished_queue_entries_go_after_the_retention_pending_and_held_stay(
    conn: Conn,
) -> None:
    now = datetime.now(UTC)
    old = now - DAYS_30 - timedelta(days=1)
    finished, pending, held, recent = [await spool(conn, content(), old) for _ in range(4)]
    for qid, when in ((finished, old), (recent, now - timedelta(days=1))):
        [d] = (await queue_store.get_queue_entry(conn, qid)).deliveries
        await queue_store.record_outcome(conn, d.id, "delivered", now=when)
    [h] = (await queue_store.get_queue_entry(conn, held)).deliveries
    await queue_store.note_failure(conn, [h.id], error="dsn failed: X", max_failures=1)
    removed = await collect(conn, now)
    assert removed.queue_entries >= 1
    with pytest.raises(NotFound):
        await queue_store.get_queue_entry(conn, finished)
    for qid in (pending, held, recent):
        await queue_store.get_queue_entry(conn, qid)


async def test_old_expunges_and_expired_sessions_go(conn: Conn, tenant: Tenant) -> None:
    now = datetime.now(UTC)
    account = await tenant.account("alice")
    inbox = await store.get_mailbox(conn, account.id, "INBOX")
    assert inbox is not None
    await conn.execute(
        """INSERT INTO expunged (mailbox_id, uid, modseq, expunged_at)
           VALUES (%s, 1, 1, %s), (%s, 2, 2, %s)""",
        (inbox.id, now - DAYS_30 - timedelta(days=1), inbox.id, now),
    )
    await create_session(
        conn, account.id, kind="bearer", now=now - timedelta(days=2), lifetime=timedelta(days=1)
    )
    removed = await collect(conn, now)
    assert (removed.expunged, removed.sessions) >= (1, 1)
    cur = await conn.execute("SELECT uid FROM expunged WHERE mailbox_id = %s", (inbox.id,))
    assert [r["uid"] for r in await cur.fetchall()] == [2]
    cur = await conn.execute("SELECT count(*) AS n FROM web_sessions WHERE account_id = %s",
                             (account.id,))  # fmt: skip
    assert (await cur.fetchone()) == {"n": 0}


async def second_connection(database_url: str) -> Conn:
    return await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, row_factory=dict_row
    )


async def test_spooling_the_content_while_gc_decides_keeps_it(
    conn: Conn, database_url: str
) -> None:
    """The spool holds the blob's row lock first: gc skips the blob."""
    now = datetime.now(UTC)
    raw = content()
    blob = await orphan(conn, raw, now)
    other = await second_connection(database_url)
    try:
        async with other.transaction():
            qid = await spool(other, raw, now)
            await collect(conn, now)
        assert await blob_of(conn, qid) == blob
        assert await blob_exists(conn, blob)
        assert await queue_store.read_queued_message(conn, qid) == raw
    finally:
        await other.close()


async def test_spooling_the_content_while_gc_deletes_it_stores_it_afresh(
    conn: Conn, database_url: str
) -> None:
    """gc holds the blob's row lock first: the spool waits, then finds no conflict."""
    now = datetime.now(UTC)
    raw = content()
    blob = await orphan(conn, raw, now)
    other = await second_connection(database_url)
    try:
        async with conn.transaction():
            assert await housekeeping.gc_blobs(conn, now=now) >= 1
            spooling = asyncio.create_task(spool(other, raw, now))
            await asyncio.sleep(0.5)  # let it reach the lock and wait there
            assert not spooling.done()
        qid = await spooling
        assert not await blob_exists(conn, blob)
        assert await queue_store.read_queued_message(conn, qid) == raw
    finally:
        await other.close()


def test_postroom_gc_says_what_it_removed(database_url: str) -> None:
    result = cli("gc", database_url=database_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("removed ")
    assert " finished queue entries, " in result.stdout
    assert result.stdout.endswith(" expired sessions\n")
