"""Figures for the admin console's dashboard, counted from the queue's own tables (the source
of truth every process shares, unlike each process's in-memory Prometheus counters)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from postroom.db import Conn
from postroom.store.types import AccountId

MAX_HOURS = 24 * 14
MAX_DESTINATIONS = 50


@dataclass(frozen=True, slots=True)
class Hour:
    """One hour: messages received from other servers and submitted by our users, and the
    delivery attempts that delivered here, delivered elsewhere, or were deferred."""

    start: datetime
    received: int
    submitted: int
    delivered_local: int
    delivered_remote: int
    deferred: int


@dataclass(frozen=True, slots=True)
class Usage:
    account_id: AccountId
    address: str
    used_bytes: int
    quota_bytes: int | None
    messages: int


async def hourly(conn: Conn, *, now: datetime, hours: int = 24) -> list[Hour]:
    """The last ``hours`` hours, oldest first, each present (zero when nothing happened)."""
    hours = max(1, min(hours, MAX_HOURS))
    cur = await conn.execute(
        """WITH slots AS (
               SELECT generate_series(date_trunc('hour', %(now)s::timestamptz)
                                      - make_interval(hours => %(hours)s - 1),
                                      date_trunc('hour', %(now)s::timestamptz),
                                      interval '1 hour') AS start),
           arrivals AS (
               SELECT date_trunc('hour', received_at) AS start,
                      count(*) FILTER (WHERE source = 'smtp') AS received,
                      count(*) FILTER (WHERE source IN ('submission', 'api')) AS submitted
               FROM queue_messages
               WHERE received_at >= (SELECT min(start) FROM slots)
               GROUP BY 1),
           tries AS (
               SELECT date_trunc('hour', attempted_at) AS start,
                      count(*) FILTER (WHERE outcome = 'delivered' AND host = 'local') AS here,
                      count(*) FILTER (WHERE outcome = 'delivered'
                                       AND host IS DISTINCT FROM 'local') AS elsewhere,
                      count(*) FILTER (WHERE outcome = 'deferred') AS deferred
               FROM delivery_attempts
               WHERE attempted_at >= (SELECT min(start) FROM slots)
               GROUP BY 1)
           SELECT s.start, coalesce(a.received, 0) AS received,
                  coalesce(a.submitted, 0) AS submitted, coalesce(t.here, 0) AS here,
                  coalesce(t.elsewhere, 0) AS elsewhere, coalesce(t.deferred, 0) AS deferred
           FROM slots s LEFT JOIN arrivals a USING (start) LEFT JOIN tries t USING (start)
           ORDER BY s.start""",
        {"now": now, "hours": hours},
    )
    return [
        Hour(r["start"], r["received"], r["submitted"], r["here"], r["elsewhere"], r["deferred"])
        for r in await cur.fetchall()
    ]


async def queue_depth(conn: Conn) -> dict[str, int]:
    """Deliveries still to do, by state (queued, deferred, held), zero included."""
    cur = await conn.execute(
        """SELECT state, count(*) AS n FROM deliveries
           WHERE state IN ('queued', 'deferred', 'held') GROUP BY state"""
    )
    depth = {"queued": 0, "deferred": 0, "held": 0}
    for r in await cur.fetchall():
        depth[r["state"]] = r["n"]
    return depth


async def deferrals_by_destination(conn: Conn) -> list[tuple[str, int]]:
    """Deferred deliveries by the recipient's domain, most first."""
    cur = await conn.execute(
        """SELECT lower(split_part(recipient, '@', 2)) AS domain, count(*) AS n
           FROM deliveries WHERE state = 'deferred'
           GROUP BY 1 ORDER BY n DESC, domain LIMIT %(limit)s""",
        {"limit": MAX_DESTINATIONS},
    )
    return [(r["domain"], r["n"]) for r in await cur.fetchall()]


async def usage(conn: Conn, domain: str | None = None) -> list[Usage]:
    """Every account's stored octets and messages beside its quota, by address."""
    cur = await conn.execute(
        """SELECT a.id, a.address, a.quota_bytes,
                  coalesce(sum(m.size), 0) AS used, count(m.id) AS messages
           FROM accounts a
           JOIN domains d ON d.id = a.domain_id
           LEFT JOIN mailboxes b ON b.account_id = a.id
           LEFT JOIN messages m ON m.mailbox_id = b.id
           WHERE %(domain)s::text IS NULL OR d.name = lower(%(domain)s)
           GROUP BY a.id ORDER BY a.address""",
        {"domain": domain},
    )
    return [
        Usage(AccountId(r["id"]), r["address"], int(r["used"]), r["quota_bytes"], r["messages"])
        for r in await cur.fetchall()
    ]


async def spam_actions(conn: Conn, *, now: datetime, hours: int = 24) -> list[tuple[str, int]]:
    """The spam filter's actions on the messages accepted in the last ``hours`` hours (kept
    with each queue entry), most first. Messages it had rejected are not in the queue: the
    smtp-in process counts those (``postroom_smtp_spam_actions_total``)."""
    hours = max(1, min(hours, MAX_HOURS))
    cur = await conn.execute(
        """SELECT checks -> 'spam' ->> 'action' AS action, count(*) AS n FROM queue_messages
           WHERE received_at >= %(now)s::timestamptz - make_interval(hours => %(hours)s)
             AND checks -> 'spam' ->> 'action' IS NOT NULL
           GROUP BY 1 ORDER BY n DESC, action""",
        {"now": now, "hours": hours},
    )
    return [(r["action"], r["n"]) for r in await cur.fetchall()]
