"""The delivery queue: spool, claim with a lease, record attempts, defer, finish.

Postgres is the queue's source of truth. A delivery is *due* when it is queued or deferred,
its ``next_attempt_at`` has come, and nobody holds a live lease on it; claiming takes a lease
with ``FOR UPDATE SKIP LOCKED``, so any number of workers and sweeps can run at once and each
due delivery goes to exactly one of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from postroom.db import Conn
from postroom.errors import InvalidInput, NotFound, StoreError
from postroom.store.messages import blob_params
from postroom.store.types import (
    AccountId,
    Arrival,
    Attempt,
    BlobId,
    ClaimedDelivery,
    Delivery,
    DeliveryId,
    DeliveryState,
    Outcome,
    QueuedMessage,
    QueueEntry,
    QueueId,
    RecipientSpec,
    Spooled,
)

_QM_COLUMNS = (
    "q.id, q.blob_id, q.reverse_path, q.received_at, q.source, q.client_address, q.client_name, "
    "q.helo_name, q.protocol, q.tls, q.auth_account_id, q.message_id, q.size, q.env_id, "
    "q.dsn_ret, q.bounce_of, q.target_special_use, q.checks"
)
_D_COLUMNS = (
    "d.id, d.queue_message_id, d.recipient, d.original_recipient, d.notify, d.state, "
    "d.attempts, d.next_attempt_at, d.lease_until, d.lease_owner, d.last_error, "
    "d.last_attempt_at, d.finished_at, d.delay_warned_at, d.dsn_queue_message_id, "
    "d.failures, d.last_failure, d.held_state"
)
PENDING: tuple[DeliveryState, ...] = ("queued", "deferred")
# What an administrator wants to see by default: pending mail and mail held for them.
UNFINISHED: tuple[DeliveryState, ...] = (*PENDING, "held")
MAX_ERROR_TEXT = 2000


def _queued(row: dict[str, Any], prefix: str = "") -> QueuedMessage:
    def g(name: str) -> Any:
        return row[prefix + name]

    return QueuedMessage(
        id=QueueId(g("id")),
        blob_id=BlobId(g("blob_id")),
        reverse_path=g("reverse_path"),
        received_at=g("received_at"),
        source=g("source"),
        client_address=g("client_address"),
        client_name=g("client_name"),
        helo_name=g("helo_name"),
        protocol=g("protocol"),
        tls=g("tls"),
        auth_account_id=AccountId(g("auth_account_id")) if g("auth_account_id") else None,
        message_id=g("message_id"),
        size=g("size"),
        env_id=g("env_id"),
        dsn_ret=g("dsn_ret"),
        bounce_of=QueueId(g("bounce_of")) if g("bounce_of") else None,
        target_special_use=g("target_special_use"),
        checks=g("checks"),
    )


def _delivery(row: dict[str, Any]) -> Delivery:
    return Delivery(
        id=DeliveryId(row["id"]),
        queue_message_id=QueueId(row["queue_message_id"]),
        recipient=row["recipient"],
        original_recipient=row["original_recipient"],
        notify=row["notify"],
        state=row["state"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        lease_until=row["lease_until"],
        lease_owner=row["lease_owner"],
        last_error=row["last_error"],
        last_attempt_at=row["last_attempt_at"],
        finished_at=row["finished_at"],
        delay_warned_at=row["delay_warned_at"],
        dsn_queue_message_id=(
            QueueId(row["dsn_queue_message_id"]) if row["dsn_queue_message_id"] else None
        ),
        failures=row["failures"],
        last_failure=row["last_failure"],
        held_state=row["held_state"],
    )


def _attempt(row: dict[str, Any]) -> Attempt:
    return Attempt(
        id=row["id"],
        delivery_id=DeliveryId(row["delivery_id"]),
        attempted_at=row["attempted_at"],
        outcome=row["outcome"],
        host=row["host"],
        reply_code=row["reply_code"],
        reply_text=row["reply_text"],
        tls=row.get("tls"),
    )


async def spool(
    conn: Conn,
    raw: bytes,
    *,
    reverse_path: str,
    recipients: Sequence[RecipientSpec | str],
    arrival: Arrival,
    now: datetime,
    message_id: str | None = None,
    blob_id: BlobId | None = None,
) -> Spooled:
    """Put a message in the queue with one delivery per recipient, atomically.

    The content is ``raw``, or ``blob_id`` when it is already stored (`put_blob_stream`; then
    ``raw`` need only hold the header section, for the Message-ID).

    When this returns, the message is committed (if the caller's connection is in autocommit
    mode, as the store expects): only then may an SMTP server answer 250.
    """
    if not recipients:
        raise InvalidInput("a message needs at least one recipient")
    specs = [r if isinstance(r, RecipientSpec) else RecipientSpec(r) for r in recipients]
    params = {
        **(blob_params(raw) if blob_id is None else {"blob": blob_id}),
        "rp": reverse_path,
        "now": now,
        "source": arrival.source,
        "addr": arrival.client_address,
        "name": arrival.client_name,
        "helo": arrival.helo_name,
        "proto": arrival.protocol,
        "tls": arrival.tls,
        "auth": arrival.auth_account_id,
        "message_id": message_id if message_id is not None else header_message_id(raw),
        "envid": arrival.env_id,
        "ret": arrival.dsn_ret,
        "bounce_of": arrival.bounce_of,
        "target": arrival.target_special_use,
        "checks": Jsonb(arrival.checks) if arrival.checks is not None else None,
        "recipients": [s.address for s in specs],
        "originals": [s.original for s in specs],
        "notify": [s.notify for s in specs],
    }
    # One statement, so one round trip and its own transaction: the content stays unparsed
    # (it may only pass through to another server). ON CONFLICT DO UPDATE (a no-op) rather
    # than DO NOTHING so that content already stored still yields its row.
    cur = await conn.execute(_SPOOL if blob_id is None else _SPOOL_STORED, params)
    rows = await cur.fetchall()
    if not rows:
        raise StoreError("spooling returned no rows")
    deliveries = sorted((_delivery(r) for r in rows), key=lambda d: d.id)
    return Spooled(_queued(rows[0], prefix="q_"), tuple(deliveries))


_Q_SELECT = ", ".join(
    f"q.{c.strip().removeprefix('q.')} AS q_{c.strip().removeprefix('q.')}"
    for c in _QM_COLUMNS.split(",")
)

_SPOOL_ENTRY = f"""q AS (
        INSERT INTO queue_messages AS q (blob_id, reverse_path, received_at, source,
            client_address, client_name, helo_name, protocol, tls, auth_account_id, message_id,
            size, env_id, dsn_ret, bounce_of, target_special_use, checks)
        SELECT b.id, %(rp)s, %(now)s, %(source)s, %(addr)s, %(name)s, %(helo)s, %(proto)s,
               %(tls)s, %(auth)s, %(message_id)s, b.size, %(envid)s, %(ret)s, %(bounce_of)s,
               %(target)s, %(checks)s
        FROM b
        RETURNING {_QM_COLUMNS}
    ), d AS (
        INSERT INTO deliveries AS d (queue_message_id, recipient, original_recipient, notify,
                                     next_attempt_at)
        SELECT q.id, r.recipient, r.original, r.notify, %(now)s
        FROM q, unnest(%(recipients)s::text[], %(originals)s::text[], %(notify)s::text[])
             WITH ORDINALITY AS r(recipient, original, notify, ord)
        ORDER BY r.ord
        RETURNING {_D_COLUMNS}
    )
    SELECT d.*, {_Q_SELECT} FROM d CROSS JOIN q"""
_SPOOL = f"""
    WITH b AS (
        INSERT INTO blobs (sha256, size, data) VALUES (%(sha)s, %(size)s, %(data)s)
        ON CONFLICT (sha256) DO UPDATE SET sha256 = EXCLUDED.sha256
        RETURNING id, size
    ), {_SPOOL_ENTRY}"""
_SPOOL_STORED = f"""
    WITH b AS (SELECT id, size FROM blobs WHERE id = %(blob)s), {_SPOOL_ENTRY}"""

_MESSAGE_ID_LINE = re.compile(rb"^message-id:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.I | re.M)


def header_message_id(raw: bytes) -> str | None:
    """The Message-ID header's value, found without parsing the message."""
    end = raw.find(b"\r\n\r\n")
    head = raw[: end if end >= 0 else 65536][:65536]
    match = _MESSAGE_ID_LINE.search(head)
    if not match:
        return None
    value = b" ".join(match[1].split()).decode("utf-8", "replace").replace("\x00", "")
    return value[:998] or None


async def claim(
    conn: Conn,
    *,
    owner: str,
    lease: timedelta,
    now: datetime,
    ids: Sequence[DeliveryId] | None = None,
    limit: int = 100,
    max_failures: int | None = None,
) -> list[ClaimedDelivery]:
    """Lease due deliveries to ``owner`` (those among ``ids`` when given).

    A delivery someone else holds a live lease on is skipped, never waited for. A delivery
    whose lease ran out without an outcome was lost by its worker (killed, or stuck): that
    counts as an internal failure, and at ``max_failures`` of them the delivery is held
    instead of claimed again, so a message that kills workers cannot loop forever.
    """
    id_filter = "AND d.id = ANY(%(ids)s)" if ids is not None else ""
    if max_failures is not None:
        await conn.execute(
            f"""UPDATE deliveries d SET state = 'held', held_state = d.state,
                    failures = d.failures + 1, lease_until = NULL, lease_owner = NULL,
                    last_failure = 'the worker holding it stopped without an outcome '
                                   || (d.failures + 1) || ' times'
                WHERE d.state IN ('queued', 'deferred') AND d.lease_owner IS NOT NULL
                  AND d.lease_until < %(now)s AND d.failures + 1 >= %(max)s {id_filter}""",
            {"now": now, "max": max_failures, "ids": list(ids or ())},
        )
    cur = await conn.execute(
        f"""WITH due AS (
                SELECT d.id FROM deliveries d
                WHERE d.state IN ('queued', 'deferred') AND d.next_attempt_at <= %(now)s
                  AND (d.lease_until IS NULL OR d.lease_until < %(now)s) {id_filter}
                ORDER BY d.next_attempt_at, d.id
                LIMIT %(limit)s
                FOR UPDATE SKIP LOCKED)
            UPDATE deliveries d SET lease_until = %(until)s, lease_owner = %(owner)s,
                failures = d.failures + (d.lease_owner IS NOT NULL)::int,
                last_failure = CASE WHEN d.lease_owner IS NOT NULL
                    THEN 'the worker holding it stopped without an outcome'
                    ELSE d.last_failure END
            FROM due WHERE d.id = due.id
            RETURNING {_D_COLUMNS}""",
        {
            "now": now,
            "ids": list(ids or ()),
            "limit": limit,
            "until": now + lease,
            "owner": owner,
        },
    )
    deliveries = [_delivery(r) for r in await cur.fetchall()]
    if not deliveries:
        return []
    cur = await conn.execute(
        f"SELECT {_QM_COLUMNS} FROM queue_messages q WHERE q.id = ANY(%s)",
        (list({d.queue_message_id for d in deliveries}),),
    )
    messages = {row["id"]: _queued(row) for row in await cur.fetchall()}
    deliveries.sort(key=lambda d: d.id)
    return [ClaimedDelivery(d, messages[d.queue_message_id]) for d in deliveries]


async def due_ids(conn: Conn, *, now: datetime, limit: int = 1000) -> list[DeliveryId]:
    """Deliveries that are due and not leased (what the sweep dispatches)."""
    cur = await conn.execute(
        """SELECT id FROM deliveries
           WHERE state IN ('queued', 'deferred') AND next_attempt_at <= %s
             AND (lease_until IS NULL OR lease_until < %s)
           ORDER BY next_attempt_at, id LIMIT %s""",
        (now, now, limit),
    )
    return [DeliveryId(r["id"]) for r in await cur.fetchall()]


async def renew_lease(conn: Conn, ids: Sequence[DeliveryId], *, owner: str, until: datetime) -> int:
    """Extend ``owner``'s leases while its attempt runs (a dead worker's run out soon)."""
    cur = await conn.execute(
        """UPDATE deliveries SET lease_until = %s
           WHERE id = ANY(%s) AND lease_owner = %s AND state IN ('queued', 'deferred')""",
        (until, list(ids), owner),
    )
    return cur.rowcount


async def release(conn: Conn, ids: Sequence[DeliveryId], *, owner: str) -> None:
    """Give leases back without an attempt (e.g. the destination's connection limit is hit)."""
    await conn.execute(
        """UPDATE deliveries SET lease_until = NULL, lease_owner = NULL
           WHERE id = ANY(%s) AND lease_owner = %s AND state IN ('queued', 'deferred')""",
        (list(ids), owner),
    )


async def record_outcome(
    conn: Conn,
    delivery_id: DeliveryId,
    outcome: Outcome,
    *,
    now: datetime,
    host: str | None = None,
    reply_code: int | None = None,
    reply_text: str | None = None,
    next_attempt_at: datetime | None = None,
    tls: str | None = None,
    owner: str | None = None,
    internal_failure: bool = False,
    max_failures: int | None = None,
) -> Delivery | None:
    """Log an attempt and move the delivery on: delivered, deferred (until when) or bounced.

    Returns None when the delivery was no longer pending (finished by someone else), or,
    with ``owner``, when that worker no longer holds its lease (it ran out and someone else
    may be at it), so that a late duplicate attempt changes nothing.

    ``internal_failure`` marks a deferral caused by Postroom itself (an exception), not by
    the next hop: it counts towards ``max_failures``, at which the delivery is held.
    """
    if outcome == "deferred" and next_attempt_at is None:
        raise InvalidInput("a deferred delivery needs next_attempt_at")
    # One line whatever the next hop said (RFC 5321 §4.2.1 multi-line replies, exception
    # texts): what is stored here ends up in logs and DSN fields.
    text = _one_line(reply_text or "")[:MAX_ERROR_TEXT] or None
    error = None if outcome == "delivered" else _error_line(reply_code, text)
    hold = internal_failure and outcome == "deferred" and max_failures is not None
    owner_filter = "AND lease_owner = %(owner)s" if owner is not None else ""
    async with conn.transaction():
        cur = await conn.execute(
            f"""UPDATE deliveries d SET
                    state = CASE WHEN %(hold)s AND failures + 1 >= %(max)s
                                 THEN 'held' ELSE %(state)s END,
                    held_state = CASE WHEN %(hold)s AND failures + 1 >= %(max)s
                                      THEN %(state)s END,
                    failures = failures + %(internal)s::int,
                    last_failure = CASE WHEN %(internal)s THEN %(error)s ELSE last_failure END,
                    attempts = attempts + 1, last_attempt_at = %(now)s,
                    last_error = coalesce(%(error)s, last_error),
                    next_attempt_at = coalesce(%(next)s, next_attempt_at),
                    finished_at = CASE WHEN %(final)s THEN %(now)s END,
                    lease_until = NULL, lease_owner = NULL
                WHERE id = %(id)s AND state IN ('queued', 'deferred') {owner_filter}
                RETURNING {_D_COLUMNS}""",
            {
                "state": outcome,
                "now": now,
                "error": error,
                "next": next_attempt_at,
                "final": outcome != "deferred",
                "id": delivery_id,
                "owner": owner,
                "hold": hold,
                "internal": internal_failure,
                "max": max_failures or 0,
            },
        )
        row = await cur.fetchone()
        if row is None:
            return None
        await conn.execute(
            """INSERT INTO delivery_attempts (delivery_id, attempted_at, outcome, host,
                                              reply_code, reply_text, tls)
               VALUES (%s, %s, %s, %s, %s, %s, %s)""",
            (delivery_id, now, outcome, host, reply_code, text, tls),
        )
    return _delivery(row)


def _one_line(text: str) -> str:
    return " ".join(
        "".join(" " if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 else c for c in text).split()
    )


def _error_line(code: int | None, text: str | None) -> str | None:
    if code is None and not text:
        return None
    return " ".join(part for part in (str(code) if code else None, text) if part)


async def get_queue_entry(
    conn: Conn, queue_id: QueueId, *, with_attempts: bool = True
) -> QueueEntry:
    cur = await conn.execute(
        f"SELECT {_QM_COLUMNS} FROM queue_messages q WHERE q.id = %s", (queue_id,)
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"queue entry {queue_id} does not exist")
    cur = await conn.execute(
        f"SELECT {_D_COLUMNS} FROM deliveries d WHERE d.queue_message_id = %s ORDER BY d.id",
        (queue_id,),
    )
    deliveries = tuple(_delivery(r) for r in await cur.fetchall())
    attempts: tuple[Attempt, ...] = ()
    if with_attempts:
        cur = await conn.execute(
            """SELECT a.* FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
               WHERE d.queue_message_id = %s ORDER BY a.attempted_at, a.id""",
            (queue_id,),
        )
        attempts = tuple(_attempt(r) for r in await cur.fetchall())
    return QueueEntry(_queued(row), deliveries, attempts)


async def list_queue(
    conn: Conn, *, states: Sequence[DeliveryState] = PENDING, limit: int = 1000
) -> list[QueueEntry]:
    """Queue entries with at least one delivery in ``states``, oldest first (like mailq)."""
    cur = await conn.execute(
        f"""SELECT {_QM_COLUMNS} FROM queue_messages q
            WHERE EXISTS (SELECT 1 FROM deliveries d
                          WHERE d.queue_message_id = q.id AND d.state = ANY(%s))
            ORDER BY q.received_at, q.id LIMIT %s""",
        (list(states), limit),
    )
    messages = [_queued(r) for r in await cur.fetchall()]
    if not messages:
        return []
    cur = await conn.execute(
        f"""SELECT {_D_COLUMNS} FROM deliveries d WHERE d.queue_message_id = ANY(%s)
            ORDER BY d.id""",
        ([m.id for m in messages],),
    )
    by_message: dict[int, list[Delivery]] = {}
    for row in await cur.fetchall():
        delivery = _delivery(row)
        by_message.setdefault(delivery.queue_message_id, []).append(delivery)
    return [QueueEntry(m, tuple(by_message.get(m.id, ()))) for m in messages]


async def retry_now(conn: Conn, *, now: datetime, queue_id: QueueId | None = None) -> int:
    """Make pending deliveries (of one entry, or all) due now; returns how many."""
    if queue_id is None:
        cur = await conn.execute(
            """UPDATE deliveries SET next_attempt_at = %s
               WHERE state IN ('queued', 'deferred')""",
            (now,),
        )
    else:
        await get_queue_entry(conn, queue_id, with_attempts=False)
        cur = await conn.execute(
            """UPDATE deliveries SET next_attempt_at = %s
               WHERE queue_message_id = %s AND state IN ('queued', 'deferred')""",
            (now, queue_id),
        )
    return cur.rowcount


async def delete_queue_entry(conn: Conn, queue_id: QueueId) -> None:
    """Remove a queue entry with its deliveries and their attempts (no bounce is sent)."""
    cur = await conn.execute("DELETE FROM queue_messages WHERE id = %s", (queue_id,))
    if cur.rowcount == 0:
        raise NotFound(f"queue entry {queue_id} does not exist")


async def read_queued_header(conn: Conn, queue_id: QueueId, *, limit: int = 65536) -> bytes:
    """The first ``limit`` octets of a queued message (enough for its header section)."""
    cur = await conn.execute(
        """SELECT substring(b.data FROM 1 FOR %s) AS head
           FROM queue_messages q JOIN blobs b ON b.id = q.blob_id WHERE q.id = %s""",
        (limit, queue_id),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"queue entry {queue_id} does not exist")
    return bytes(row["head"])


async def read_queued_message(conn: Conn, queue_id: QueueId) -> bytes:
    cur = await conn.execute(
        """SELECT b.data FROM queue_messages q JOIN blobs b ON b.id = q.blob_id
           WHERE q.id = %s""",
        (queue_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"queue entry {queue_id} does not exist")
    return bytes(row["data"])


async def purge_finished(conn: Conn, *, before: datetime, limit: int = 1000) -> int:
    """Forget queue entries all of whose deliveries finished before ``before``."""
    cur = await conn.execute(
        """DELETE FROM queue_messages WHERE id IN (
               SELECT q.id FROM queue_messages q
               WHERE q.received_at < %(before)s AND NOT EXISTS (
                   SELECT 1 FROM deliveries d WHERE d.queue_message_id = q.id
                     AND (d.state IN ('queued', 'deferred', 'held')
                          OR d.finished_at >= %(before)s))
               LIMIT %(limit)s)""",
        {"before": before, "limit": limit},
    )
    return cur.rowcount


# --- delivery status notifications (RFC 3464) ---------------------------------------------
#
# A failure DSN is owed for a bounced delivery whose message has a sender (never for the null
# sender <>, RFC 5321 §4.5.5) and whose NOTIFY (RFC 3461 §4.1) does not exclude failures.
# ``request_dsn`` marks it owed in the bouncing transaction; whoever spools the DSN locks the
# owed deliveries, spools it and marks them in one transaction, so each DSN is sent once.

_WANTS_FAILURE = "(d.notify IS NULL OR upper(d.notify) LIKE '%%FAILURE%%')"
_WANTS_SUCCESS = "(upper(d.notify) LIKE '%%SUCCESS%%')"
_WANTS_DELAY = "(d.notify IS NULL OR upper(d.notify) LIKE '%%DELAY%%')"


async def request_dsn(conn: Conn, delivery_ids: Sequence[DeliveryId]) -> int:
    """Mark finished deliveries as owing a DSN where one is due: bounced ones a failure DSN
    (unless NOTIFY excludes it), delivered ones a success DSN when NOTIFY asked for SUCCESS
    (RFC 3461 §4.1); returns how many."""
    cur = await conn.execute(
        f"""UPDATE deliveries d SET dsn_due = true
            FROM queue_messages q
            WHERE q.id = d.queue_message_id AND d.id = ANY(%s)
              AND d.dsn_queue_message_id IS NULL AND q.reverse_path <> ''
              AND ((d.state = 'bounced' AND {_WANTS_FAILURE})
                   OR (d.state = 'delivered' AND {_WANTS_SUCCESS}))""",
        (list(delivery_ids),),
    )
    return cur.rowcount


async def dsn_due_messages(conn: Conn, *, limit: int = 100) -> list[QueueId]:
    """Queue entries with at least one delivery owing its failure DSN."""
    cur = await conn.execute(
        """SELECT DISTINCT queue_message_id AS id FROM deliveries
           WHERE dsn_due AND state <> 'held'
           ORDER BY queue_message_id LIMIT %s""",
        (limit,),
    )
    return [QueueId(r["id"]) for r in await cur.fetchall()]


async def lock_dsn_due(conn: Conn, queue_id: QueueId) -> list[Delivery]:
    """The deliveries of one entry owing a failure DSN, locked (SKIP LOCKED) until the caller's
    transaction ends; call inside ``conn.transaction()`` and ``mark_dsn_sent`` in the same one."""
    cur = await conn.execute(
        f"""SELECT {_D_COLUMNS} FROM deliveries d
            WHERE d.queue_message_id = %s AND d.dsn_due AND d.state <> 'held'
            ORDER BY d.id FOR UPDATE SKIP LOCKED""",
        (queue_id,),
    )
    return [_delivery(r) for r in await cur.fetchall()]


async def mark_dsn_sent(
    conn: Conn, delivery_ids: Sequence[DeliveryId], dsn_queue_id: QueueId | None
) -> None:
    """Record the DSN's queue entry (None: none could be made) and clear the debt."""
    await conn.execute(
        """UPDATE deliveries SET dsn_due = false, dsn_queue_message_id = %s
           WHERE id = ANY(%s)""",
        (dsn_queue_id, list(delivery_ids)),
    )


async def delay_warning_messages(
    conn: Conn, *, received_before: datetime, now: datetime, limit: int = 100
) -> list[QueueId]:
    """Queue entries older than ``received_before`` with deferred deliveries not yet warned."""
    cur = await conn.execute(
        f"""SELECT DISTINCT q.id FROM queue_messages q JOIN deliveries d
                ON d.queue_message_id = q.id
            WHERE d.state = 'deferred' AND d.delay_warned_at IS NULL
              AND q.received_at < %(before)s AND q.reverse_path <> '' AND {_WANTS_DELAY}
              AND (d.lease_until IS NULL OR d.lease_until < %(now)s)
            ORDER BY q.id LIMIT %(limit)s""",
        {"before": received_before, "now": now, "limit": limit},
    )
    return [QueueId(r["id"]) for r in await cur.fetchall()]


async def lock_delay_warning(conn: Conn, queue_id: QueueId, *, now: datetime) -> list[Delivery]:
    """The deferred, unwarned, unleased deliveries of one entry that want a delay DSN, locked
    until the caller's transaction ends (call ``mark_delay_warned`` in the same one)."""
    cur = await conn.execute(
        f"""SELECT {_D_COLUMNS} FROM deliveries d JOIN queue_messages q
                ON q.id = d.queue_message_id
            WHERE d.queue_message_id = %(id)s AND d.state = 'deferred'
              AND d.delay_warned_at IS NULL AND q.reverse_path <> '' AND {_WANTS_DELAY}
              AND (d.lease_until IS NULL OR d.lease_until < %(now)s)
            ORDER BY d.id FOR UPDATE OF d SKIP LOCKED""",
        {"id": queue_id, "now": now},
    )
    return [_delivery(r) for r in await cur.fetchall()]


async def mark_delay_warned(
    conn: Conn, delivery_ids: Sequence[DeliveryId], *, now: datetime
) -> None:
    await conn.execute(
        "UPDATE deliveries SET delay_warned_at = %s WHERE id = ANY(%s)",
        (now, list(delivery_ids)),
    )


async def bounce_queue_entry(
    conn: Conn, queue_id: QueueId, *, now: datetime, reason: str
) -> list[DeliveryId]:
    """Bounce every pending delivery of an entry at once (``postroom queue delete --bounce``),
    held ones that were pending included, owing a failure DSN where one is due; returns the
    deliveries bounced."""
    await get_queue_entry(conn, queue_id, with_attempts=False)
    bounced: list[DeliveryId] = []
    async with conn.transaction():
        await conn.execute(
            """UPDATE deliveries SET state = held_state, held_state = NULL
               WHERE queue_message_id = %s AND state = 'held'
                 AND held_state IN ('queued', 'deferred')""",
            (queue_id,),
        )
        cur = await conn.execute(
            """SELECT id FROM deliveries WHERE queue_message_id = %s
                 AND state IN ('queued', 'deferred') ORDER BY id FOR UPDATE""",
            (queue_id,),
        )
        for row in await cur.fetchall():
            done = await record_outcome(
                conn, DeliveryId(row["id"]), "bounced", now=now, reply_text=reason
            )
            if done is not None:
                bounced.append(done.id)
        await request_dsn(conn, bounced)
    return bounced


# --- held deliveries ----------------------------------------------------------------------


async def note_failure(
    conn: Conn, delivery_ids: Sequence[DeliveryId], *, error: str, max_failures: int
) -> list[DeliveryId]:
    """Count an internal failure (an exception) while handling these deliveries outside an
    attempt (their DSN, their delay warning); those at ``max_failures`` are held. Returns the
    deliveries held now."""
    cur = await conn.execute(
        """UPDATE deliveries SET failures = failures + 1, last_failure = %(error)s,
               state = CASE WHEN failures + 1 >= %(max)s THEN 'held' ELSE state END,
               held_state = CASE WHEN failures + 1 >= %(max)s THEN state END,
               lease_until = CASE WHEN failures + 1 >= %(max)s THEN NULL ELSE lease_until END,
               lease_owner = CASE WHEN failures + 1 >= %(max)s THEN NULL ELSE lease_owner END
           WHERE id = ANY(%(ids)s) AND state <> 'held'
           RETURNING id, state""",
        {"error": error[:MAX_ERROR_TEXT], "max": max_failures, "ids": list(delivery_ids)},
    )
    return [DeliveryId(r["id"]) for r in await cur.fetchall() if r["state"] == "held"]


async def release_held(conn: Conn, queue_id: QueueId, *, now: datetime) -> list[DeliveryId]:
    """Put an entry's held deliveries back where they were, with a fresh failure count;
    pending ones are due now, a DSN still owed is sent by the next sweep. Returns the
    deliveries released that are pending (to dispatch)."""
    await get_queue_entry(conn, queue_id, with_attempts=False)
    cur = await conn.execute(
        """UPDATE deliveries SET state = held_state, held_state = NULL, failures = 0,
               next_attempt_at = CASE WHEN held_state IN ('queued', 'deferred')
                                      THEN %(now)s ELSE next_attempt_at END
           WHERE queue_message_id = %(id)s AND state = 'held'
           RETURNING id, state""",
        {"now": now, "id": queue_id},
    )
    rows = await cur.fetchall()
    return [DeliveryId(r["id"]) for r in rows if r["state"] in PENDING]


async def count_held(conn: Conn) -> int:
    cur = await conn.execute("SELECT count(*) AS n FROM deliveries WHERE state = 'held'")
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


# --- message trace ------------------------------------------------------------------------

MAX_TRACE_RESULTS = 500


def _exact_or_substring(value: str) -> str:
    escaped = value.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def find_queue_entries(
    conn: Conn,
    *,
    message_id: str | None = None,
    sender: str | None = None,
    recipient: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    account_id: AccountId | None = None,
    limit: int = 100,
) -> list[QueueEntry]:
    """Queue entries (finished ones too) matching every given filter, newest first.

    ``message_id`` matches with or without its angle brackets; ``sender`` and ``recipient``
    are case-insensitive substrings of the envelope addresses; ``since``/``until`` bound the
    time of arrival; ``account_id`` keeps what that account submitted. Deliveries come along,
    attempts do not (``get_queue_entry`` has them).
    """
    if not 0 < limit <= MAX_TRACE_RESULTS:
        raise InvalidInput(f"a trace lists 1 to {MAX_TRACE_RESULTS} messages")
    if any("\x00" in v for v in (message_id, sender, recipient) if v is not None):
        raise InvalidInput("search text must not contain NUL characters")
    conditions: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    if message_id is not None:
        bare = message_id.strip().strip("<>").strip()
        if not bare:
            raise InvalidInput("the Message-ID is empty")
        conditions.append("q.message_id IN (%(mid)s, %(mid_bracketed)s)")
        params.update(mid=bare, mid_bracketed=f"<{bare}>")
    if sender is not None:
        conditions.append("q.reverse_path ILIKE %(sender)s")
        params["sender"] = _exact_or_substring(sender)
    if recipient is not None:
        conditions.append(
            """EXISTS (SELECT 1 FROM deliveries r WHERE r.queue_message_id = q.id
                       AND (r.recipient ILIKE %(rcpt)s OR r.original_recipient ILIKE %(rcpt)s))"""
        )
        params["rcpt"] = _exact_or_substring(recipient)
    if since is not None:
        conditions.append("q.received_at >= %(since)s")
        params["since"] = since
    if until is not None:
        conditions.append("q.received_at < %(until)s")
        params["until"] = until
    if account_id is not None:
        conditions.append("q.auth_account_id = %(account)s")
        params["account"] = account_id
    where = " AND ".join(conditions) or "TRUE"
    cur = await conn.execute(
        f"""SELECT {_QM_COLUMNS} FROM queue_messages q WHERE {where}
            ORDER BY q.received_at DESC, q.id DESC LIMIT %(limit)s""",
        params,
    )
    messages = [_queued(r) for r in await cur.fetchall()]
    if not messages:
        return []
    cur = await conn.execute(
        f"""SELECT {_D_COLUMNS} FROM deliveries d WHERE d.queue_message_id = ANY(%s)
            ORDER BY d.id""",
        ([m.id for m in messages],),
    )
    by_message: dict[int, list[Delivery]] = {}
    for row in await cur.fetchall():
        delivery = _delivery(row)
        by_message.setdefault(delivery.queue_message_id, []).append(delivery)
    return [QueueEntry(m, tuple(by_message.get(m.id, ()))) for m in messages]
