"""Conversations: the messages of an account linked to one by Message-ID, References and
In-Reply-To (the links IMAP THREAD=REFERENCES follows, RFC 5256 §2.2)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from postroom.db import Conn
from postroom.store.types import AccountId, MailboxId

# Rounds of following links outwards from the message; a reply chain found in one round
# already names its whole ancestry in References, so few rounds find the whole conversation.
MAX_ROUNDS = 4
MAX_MEMBERS = 200
MAX_IDS = 500
_MSG_ID = re.compile(r"<[^<>\s]+>")


@dataclass(frozen=True, slots=True)
class ThreadMember:
    mailbox_id: MailboxId
    mailbox_name: str
    uid: int
    message_id: str | None
    subject: str | None
    from_text: str | None
    sent_date: datetime | None
    internal_date: datetime
    seen: bool
    flagged: bool
    preview: str


def _ids_of(message_id: str | None, in_reply_to: str | None, references: list[str]) -> set[str]:
    ids = {r for r in references if r}
    if message_id:
        ids.add(message_id)
    if in_reply_to:
        # RFC 5322 §3.6.4: In-Reply-To holds one or more msg-ids.
        ids.update(_MSG_ID.findall(in_reply_to))
    return ids


async def thread_of(
    conn: Conn, account_id: AccountId, mailbox_id: MailboxId, uid: int
) -> list[ThreadMember]:
    """The conversation of one message across the account's folders, oldest first (the
    message alone when it links to nothing); empty when the message does not exist."""
    cur = await conn.execute(
        """SELECT b.message_id, b.parsed ->> 'in_reply_to' AS in_reply_to,
                  coalesce(b.parsed -> 'references', '[]'::jsonb) AS refs
           FROM messages m JOIN blobs b ON b.id = m.blob_id
           WHERE m.mailbox_id = %(mailbox)s AND m.uid = %(uid)s""",
        {"mailbox": mailbox_id, "uid": uid},
    )
    row = await cur.fetchone()
    if row is None:
        return []
    ids = _ids_of(row["message_id"], row["in_reply_to"], list(row["refs"]))
    members: dict[tuple[int, int], ThreadMember] = {}
    for _ in range(MAX_ROUNDS):
        if not ids:
            break
        wanted = sorted(ids)[:MAX_IDS]
        # Each arm is served by an index of migration 0080 (or blobs_message_id).
        cur = await conn.execute(
            """SELECT m.mailbox_id, x.name AS mailbox_name, m.uid, b.message_id, b.subject,
                      b.from_text, b.sent_date, m.internal_date, m.seen, m.flagged,
                      b.parsed ->> 'in_reply_to' AS in_reply_to,
                      coalesce(b.parsed -> 'references', '[]'::jsonb) AS refs,
                      coalesce(b.parsed ->> 'preview', '') AS preview
               FROM blobs b
               JOIN messages m ON m.blob_id = b.id
               JOIN mailboxes x ON x.id = m.mailbox_id
               WHERE x.account_id = %(account)s
                 AND b.id IN (
                     SELECT id FROM blobs WHERE message_id = ANY(%(ids)s)
                     UNION SELECT id FROM blobs WHERE (parsed -> 'references') ?| %(ids)s
                     UNION SELECT id FROM blobs WHERE (parsed ->> 'in_reply_to') = ANY(%(ids)s))
               LIMIT %(limit)s""",
            {"account": account_id, "ids": wanted, "limit": MAX_MEMBERS},
        )
        grown = set(ids)
        for r in await cur.fetchall():
            members[(r["mailbox_id"], r["uid"])] = ThreadMember(
                mailbox_id=MailboxId(r["mailbox_id"]),
                mailbox_name=r["mailbox_name"],
                uid=r["uid"],
                message_id=r["message_id"],
                subject=r["subject"],
                from_text=r["from_text"],
                sent_date=r["sent_date"],
                internal_date=r["internal_date"],
                seen=r["seen"],
                flagged=r["flagged"],
                preview=r["preview"],
            )
            grown |= _ids_of(r["message_id"], r["in_reply_to"], list(r["refs"]))
        if grown == ids or len(members) >= MAX_MEMBERS:
            break
        ids = grown
    if not members:
        return []
    # The same message twice in a folder (a copy, a redelivery) is one step of the
    # conversation: keep its first copy, and always the message asked about.
    unique: dict[tuple[int, str], ThreadMember] = {}
    for key in sorted(members):
        member = members[key]
        if member.message_id is None or (member.mailbox_id, member.uid) == (mailbox_id, uid):
            continue
        unique.setdefault((member.mailbox_id, member.message_id), member)
    asked = members.get((mailbox_id, uid))
    chosen = [m for m in members.values() if m.message_id is None]
    if asked is not None and asked.message_id is not None:
        unique[(mailbox_id, asked.message_id)] = asked
    chosen += unique.values()
    return sorted(chosen, key=lambda t: (t.sent_date or t.internal_date, t.mailbox_id, t.uid))
