"""What IMAP SORT and THREAD (RFC 5256) compare, read for a mailbox's messages in one query.

Only the columns the request needs are read: the arrival time, size, sent date and decoded
subject live on messages and blobs; the first From, To and Cc address and the References
and In-Reply-To links come from the parsed message, which is larger, so they are read only
when a sort key or the threading asks for them. Rows come in UID order, a batch at a time
through a server-side cursor, so a large folder is never one result held twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

import psycopg.errors

from postroom.db import Conn
from postroom.errors import QueryTimeout
from postroom.store.types import MailboxId

Column = Literal["arrival", "size", "sent", "subject", "from", "to", "cc", "message_id", "links"]
# RFC 5256 §3: the addr-mailbox of the first address (a group's name for a group), as the
# IMAP ENVELOPE gives it.
_COLUMNS: Final[dict[str, str]] = {
    "arrival": "m.internal_date AS arrival",
    "size": "m.size",
    # RFC 5256 §2.2: the Date: header, else the INTERNALDATE.
    "sent": "coalesce(b.sent_date, m.internal_date) AS sent",
    "subject": "b.subject",
    "from": "b.parsed #>> '{envelope,from,0,2}' AS from_mailbox",
    "to": "b.parsed #>> '{envelope,to,0,2}' AS to_mailbox",
    "cc": "b.parsed #>> '{envelope,cc,0,2}' AS cc_mailbox",
    "message_id": "b.message_id",
    "links": (
        "b.parsed ->> 'in_reply_to' AS in_reply_to,"
        " coalesce(b.parsed -> 'references', '[]'::jsonb) AS refs"
    ),
}
BATCH: Final = 5000


@dataclass(frozen=True, slots=True)
class SortRow:
    """One message's keys; a member not asked for is its empty value."""

    uid: int
    arrival: datetime | None = None
    size: int = 0
    sent: datetime | None = None
    subject: str | None = None
    from_mailbox: str = ""
    to_mailbox: str = ""
    cc_mailbox: str = ""
    message_id: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()


async def sort_rows(
    conn: Conn,
    mailbox_id: MailboxId,
    uids: Collection[int],
    columns: Collection[Column],
) -> AsyncIterator[SortRow]:
    """The keys of the messages with these UIDs, in UID order, ``columns`` filled in."""
    if not uids:
        return
    low, high = min(uids), max(uids)
    wanted = uids if isinstance(uids, set | frozenset) else set(uids)
    selected = ", ".join(["m.uid", *(_COLUMNS[c] for c in sorted(set(columns)))])
    needs_blob = any(c not in ("arrival", "size") for c in columns)
    source = "messages m JOIN blobs b ON b.id = m.blob_id" if needs_blob else "messages m"
    try:
        # A server-side cursor lives in a transaction (the store's connections autocommit).
        async with conn.transaction(), conn.cursor(name="postroom_sort") as cur:
            await cur.execute(
                f"""SELECT {selected} FROM {source}
                    WHERE m.mailbox_id = %(mailbox)s AND m.uid BETWEEN %(low)s AND %(high)s
                    ORDER BY m.uid""",
                {"mailbox": mailbox_id, "low": low, "high": high},
            )
            while rows := await cur.fetchmany(BATCH):
                for r in rows:
                    if r["uid"] not in wanted:
                        continue
                    yield SortRow(
                        uid=r["uid"],
                        arrival=r.get("arrival"),
                        size=r.get("size") or 0,
                        sent=r.get("sent"),
                        subject=r.get("subject"),
                        from_mailbox=r.get("from_mailbox") or "",
                        to_mailbox=r.get("to_mailbox") or "",
                        cc_mailbox=r.get("cc_mailbox") or "",
                        message_id=r.get("message_id"),
                        in_reply_to=r.get("in_reply_to"),
                        references=tuple(r.get("refs") or ()),
                    )
    except psycopg.errors.QueryCanceled as exc:
        raise QueryTimeout("sorting took too long; narrow the search down") from exc


# A sent date for a message the store knows none of (it always has an INTERNALDATE).
NO_DATE: Final = datetime(1970, 1, 1, tzinfo=UTC)
