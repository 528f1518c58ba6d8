"""Change announcements with Postgres LISTEN/NOTIFY, so IDLE and the web UI see mail at once."""

from __future__ import annotations

from collections.abc import AsyncIterator

from postroom.db import Conn, connect
from postroom.store.types import AccountId, MailboxChange, MailboxId

CHANNEL = "postroom_mailbox"


async def notify(conn: Conn, account_id: AccountId, mailbox_id: MailboxId, modseq: int) -> None:
    """Announce a change; inside a transaction it is sent when (and only if) that commits."""
    await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{account_id}:{mailbox_id}:{modseq}"))


def parse_payload(payload: str) -> MailboxChange | None:
    try:
        account, mailbox, modseq = (int(part) for part in payload.split(":"))
    except ValueError:
        return None
    return MailboxChange(AccountId(account), MailboxId(mailbox), modseq)


async def listen(url: str) -> AsyncIterator[MailboxChange]:
    """Every mailbox change from now on, on a dedicated connection, until the caller stops."""
    conn = await connect(url, autocommit=True)
    try:
        await conn.execute(f"LISTEN {CHANNEL}")
        async for note in conn.notifies():
            change = parse_payload(note.payload)
            if change is not None:
                yield change
    finally:
        await conn.close()
