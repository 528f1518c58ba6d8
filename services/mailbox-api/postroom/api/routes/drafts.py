"""Drafts: the compose window saved as a message in the Drafts folder (flagged \\Draft), so an
IMAP client sees the same draft; each save replaces the previous one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Response
from pydantic import BaseModel

from postroom import store
from postroom.api import compose, richtext
from postroom.api.deps import AccountDep, ConnDep
from postroom.api.problems import Problem
from postroom.db import Conn
from postroom.store.types import Account, Mailbox

router = APIRouter(prefix="/api/v1/drafts", tags=["send"])


class DraftSaved(BaseModel):
    mailbox_id: int
    uid: int


async def drafts_folder(conn: Conn, account: Account) -> Mailbox:
    folder = await store.get_special_use(conn, account.id, "\\Drafts")
    if folder is None:
        folder = await store.get_mailbox(conn, account.id, "Drafts")
    if folder is None:
        raise Problem(409, "there is no Drafts folder")
    return folder


async def discard_draft(conn: Conn, account: Account, uid: int | None) -> None:
    """Remove a draft the compose window replaced or sent (gone already is fine)."""
    if uid is None or not 0 < uid < 2**63:
        return
    folder = await drafts_folder(conn, account)
    message = await store.get_message(conn, folder.id, uid)
    if message is not None and "\\Draft" in message.flags:
        await store.delete_messages(conn, folder.id, [uid])


@router.post("", response_model=DraftSaved, status_code=201)
async def save_draft(
    account: AccountDep,
    conn: ConnDep,
    from_: Annotated[str, Form(alias="from", max_length=320)],
    to: Annotated[str, Form(max_length=100_000)] = "",
    cc: Annotated[str, Form(max_length=100_000)] = "",
    bcc: Annotated[str, Form(max_length=100_000)] = "",
    subject: Annotated[str, Form(max_length=998)] = "",
    text: Annotated[str, Form(max_length=1_000_000)] = "",
    html: Annotated[str | None, Form(max_length=1_000_000)] = None,
    replace_uid: Annotated[int | None, Form()] = None,
) -> DraftSaved:
    """Save the compose window to Drafts (``\\Draft``, ``\\Seen``) and drop the draft it
    replaces (``replace_uid``). Recipients are kept as typed, finished or not."""
    sender = from_.strip().strip("<>").lower()
    if sender not in await store.addresses_of(conn, account.id) and not store.send_as_allows(
        await store.send_as_of(conn, account.id), sender
    ):
        raise Problem(403, f"you may not send as {from_!r}")
    cleaned = richtext.clean(html) if html else None
    draft = compose.Draft(
        sender=sender,
        to=[],
        subject=subject,
        text=text or (richtext.plain(cleaned) if cleaned else ""),
        html=cleaned,
    )
    message = compose.build(draft, domain=sender.rpartition("@")[2], now=datetime.now(UTC))
    for name, value in (("To", to), ("Cc", cc), ("Bcc", bcc)):
        if value.strip():
            # RFC 5322 §3.6.3: a draft may keep Bcc; the line is whatever was typed so far.
            message[name] = compose.single_line(value.strip(), name)
    folder = await drafts_folder(conn, account)
    saved = await store.append_message(
        conn, folder.id, message.as_bytes(), flags=["\\Draft", "\\Seen"]
    )
    await discard_draft(conn, account, replace_uid)
    return DraftSaved(mailbox_id=folder.id, uid=saved.uid)


@router.delete("/{uid}", status_code=204)
async def delete_draft(uid: int, account: AccountDep, conn: ConnDep) -> Response:
    """Discard a draft (only a message flagged \\Draft in the Drafts folder)."""
    await discard_draft(conn, account, uid)
    return Response(status_code=204)
