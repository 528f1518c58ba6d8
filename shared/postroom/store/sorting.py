"""What IMAP SORT and THREAD (RFC 5256) compare, read for a mailbox's messages.

Two ways: `sorted_uids` orders in Postgres by the keys that are plain columns (arrival,
size, sent date), answering only UIDs; `sort_keys` reads, in one query, the UID and the
columns asked for as tuples, for what must be compared in Python (the base subject, the
first address's mailbox) and for threading. The first From, To and Cc addresses and the
References and In-Reply-To links come from the stored parse, which is larger than the
columns, so they are read only when asked for.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal

import psycopg.errors
from psycopg.rows import tuple_row

from postroom.db import Conn
from postroom.errors import QueryTimeout
from postroom.store.types import MailboxId

Column = Literal[
    "arrival", "size", "sent", "subject", "from", "to", "cc", "message_id", "in_reply_to",
    "references",
]  # fmt: skip
_EXPRESSIONS: Final[dict[str, str]] = {
    "arrival": "m.internal_date",
    "size": "m.size",
    # RFC 5256 §2.2: the Date: header, else the INTERNALDATE.
    "sent": "coalesce(b.sent_date, m.internal_date)",
    "subject": "b.subject",
    # RFC 5256 §3: the addr-mailbox of the first address (a group's name for a group), as
    # the IMAP ENVELOPE gives it.
    "from": "b.parsed #>> '{envelope,from,0,2}'",
    "to": "b.parsed #>> '{envelope,to,0,2}'",
    "cc": "b.parsed #>> '{envelope,cc,0,2}'",
    "message_id": "b.message_id",
    "in_reply_to": "b.parsed ->> 'in_reply_to'",
    "references": "coalesce(b.parsed -> 'references', '[]'::jsonb)",
}
# Columns of the messages table alone (no blob to join).
_MESSAGE_COLUMNS: Final = frozenset({"arrival", "size"})
# A sent date for a message the store knows none of (it always has an INTERNALDATE).
NO_DATE: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _source(columns: Collection[str]) -> str:
    if all(c in _MESSAGE_COLUMNS for c in columns):
        return "messages m"
    return "messages m JOIN blobs b ON b.id = m.blob_id"


async def _rows(
    conn: Conn, sql: str, mailbox_id: MailboxId, uids: Collection[int] | None
) -> list[tuple[Any, ...]]:
    """Run a query over the mailbox's messages (those of ``uids``, when given): its rows
    as tuples, the UID first, only those of ``uids``."""
    low, high = (min(uids), max(uids)) if uids else (1, 1 << 62)
    try:
        async with conn.cursor(row_factory=tuple_row) as cur:
            await cur.execute(sql, {"mailbox": mailbox_id, "low": low, "high": high})
            rows = await cur.fetchall()
    except psycopg.errors.QueryCanceled as exc:
        raise QueryTimeout("sorting took too long; narrow the search down") from exc
    if uids is None:
        return rows
    wanted = uids if isinstance(uids, set | frozenset) else set(uids)
    return [r for r in rows if r[0] in wanted]


async def sort_keys(
    conn: Conn,
    mailbox_id: MailboxId,
    uids: Collection[int] | None,
    columns: Sequence[Column],
) -> list[tuple[Any, ...]]:
    """``(uid, *columns)`` of each message with these UIDs (every one when None), in UID
    order; a missing address is None, missing references an empty list."""
    if uids is not None and not uids:
        return []
    selected = ", ".join(["m.uid", *(_EXPRESSIONS[c] for c in columns)])
    sql = f"""SELECT {selected} FROM {_source(columns)}
              WHERE m.mailbox_id = %(mailbox)s AND m.uid BETWEEN %(low)s AND %(high)s
              ORDER BY m.uid"""
    return await _rows(conn, sql, mailbox_id, uids)


async def sorted_uids(
    conn: Conn,
    mailbox_id: MailboxId,
    uids: Collection[int] | None,
    order: Sequence[tuple[Literal["arrival", "size", "sent"], bool]],
) -> list[int]:
    """The UIDs (every one when None) ordered in Postgres by plain columns, each
    ``(column, descending)``, then by UID ascending (RFC 5256 §3: the mailbox order)."""
    if uids is not None and not uids:
        return []
    keys = [f"{_EXPRESSIONS[c]} {'DESC' if descending else 'ASC'}" for c, descending in order]
    sql = f"""SELECT m.uid FROM {_source([c for c, _ in order])}
              WHERE m.mailbox_id = %(mailbox)s AND m.uid BETWEEN %(low)s AND %(high)s
              ORDER BY {", ".join([*keys, "m.uid"])}"""
    return [r[0] for r in await _rows(conn, sql, mailbox_id, uids)]
