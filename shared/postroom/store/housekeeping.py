"""Housekeeping: forget what nothing needs any more (blobs, finished queue entries, old
expunges, expired web sessions and tokens), in bounded batches, and say what went."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from postroom.db import Conn
from postroom.store.queue import purge_finished
from postroom.store.sieve import forget_vacation_replies

# Rows removed per statement; a run repeats until a batch comes back short or MAX_BATCHES.
BATCH = 1000
MAX_BATCHES = 100
# A blob younger than this is never collected: it may be on its way to a reference.
BLOB_GRACE = timedelta(hours=1)
# The longest vacation period a script may ask for (postroom.sieve.Limits.max_vacation_seconds).
VACATION_RECORD_RETENTION = timedelta(days=90)


@dataclass(frozen=True, slots=True)
class Removed:
    """How many of each were removed by one run."""

    blobs: int = 0
    queue_entries: int = 0
    expunged: int = 0
    sessions: int = 0
    vacation_replies: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "blobs": self.blobs,
            "queue_entries": self.queue_entries,
            "expunged": self.expunged,
            "sessions": self.sessions,
            "vacation_replies": self.vacation_replies,
        }


async def gc_blobs(conn: Conn, *, now: datetime, limit: int = BATCH) -> int:
    """Delete blobs that no message and no queue entry refers to; returns how many.

    Safe against a concurrent spool or append of the same content: those take the blob's row
    lock (INSERT ... ON CONFLICT DO UPDATE) to refer to it. Candidates are locked first (SKIP
    LOCKED: a blob being referred to right now is left alone), and the references are checked
    again by a later statement, whose snapshot sees every reference committed before the
    lock was taken; a writer that comes after waits for this transaction and then finds no
    conflict, so it stores the content afresh.
    """
    async with conn.transaction():
        cur = await conn.execute(
            """SELECT b.id FROM blobs b
               WHERE b.created_at < %(before)s
                 AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.blob_id = b.id)
                 AND NOT EXISTS (SELECT 1 FROM queue_messages q WHERE q.blob_id = b.id)
               LIMIT %(limit)s FOR UPDATE SKIP LOCKED""",
            {"before": now - BLOB_GRACE, "limit": limit},
        )
        ids = [r["id"] for r in await cur.fetchall()]
        if not ids:
            return 0
        cur = await conn.execute(
            """DELETE FROM blobs b WHERE b.id = ANY(%s)
                 AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.blob_id = b.id)
                 AND NOT EXISTS (SELECT 1 FROM queue_messages q WHERE q.blob_id = b.id)""",
            (ids,),
        )
        return cur.rowcount


async def purge_expunged(conn: Conn, *, before: datetime, limit: int = BATCH) -> int:
    """Forget expunged UIDs recorded before ``before``."""
    cur = await conn.execute(
        """DELETE FROM expunged WHERE ctid IN (
               SELECT ctid FROM expunged WHERE expunged_at < %s LIMIT %s)""",
        (before, limit),
    )
    return cur.rowcount


async def purge_expired_sessions(conn: Conn, *, now: datetime, limit: int = BATCH) -> int:
    """Remove web sessions and API tokens past their expiry."""
    cur = await conn.execute(
        """DELETE FROM web_sessions WHERE id IN (
               SELECT id FROM web_sessions WHERE expires_at < %s LIMIT %s)""",
        (now, limit),
    )
    return cur.rowcount


async def collect(
    conn: Conn, *, now: datetime, queue_retention: timedelta, expunged_retention: timedelta
) -> Removed:
    """One housekeeping run: finished queue entries first (their blobs may then go)."""

    async def repeat(step: Callable[[], Awaitable[int]]) -> int:
        total = 0
        for _ in range(MAX_BATCHES):
            count = await step()
            total += count
            if count < BATCH:
                break
        return total

    queue_entries = await repeat(
        lambda: purge_finished(conn, before=now - queue_retention, limit=BATCH)
    )
    expunged = await repeat(lambda: purge_expunged(conn, before=now - expunged_retention))
    sessions = await repeat(lambda: purge_expired_sessions(conn, now=now))
    blobs = await repeat(lambda: gc_blobs(conn, now=now))
    # RFC 5230 §4.1: no vacation period is longer than the cap; older records hold nothing back.
    vacation_replies = await repeat(
        lambda: forget_vacation_replies(
            conn, older_than=now - VACATION_RECORD_RETENTION, limit=BATCH
        )
    )
    return Removed(blobs, queue_entries, expunged, sessions, vacation_replies)
