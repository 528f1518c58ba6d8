"""Sending: compose, reply and forward, through the same spool and queue as SMTP submission."""

from __future__ import annotations

import asyncio
import email.policy
from datetime import UTC, datetime
from email.utils import getaddresses
from typing import Annotated, Literal

import structlog
from fastapi import APIRouter, File, Form, Request, UploadFile

from postroom import queue as queue_contract
from postroom import store
from postroom.api import compose, outgoing, render, richtext, schemas
from postroom.api.deps import (
    AccountDep,
    ConnDep,
    client_ip,
    inflight_of,
    owned_mailbox,
    settings_of,
)
from postroom.api.metrics import SENT
from postroom.api.problems import Problem
from postroom.api.routes.drafts import discard_draft, kept_attachments
from postroom.errors import QuotaExceeded
from postroom.store import preferences, queue, quota
from postroom.store.types import Arrival

router = APIRouter(prefix="/api/v1", tags=["send"])
log = structlog.get_logger("postroom.api")
MAX_ATTACHMENTS = 50  # the same as a draft's


@router.post("/send", response_model=schemas.SendResult, status_code=202)
async def send_message(
    request: Request,
    account: AccountDep,
    conn: ConnDep,
    from_: Annotated[str, Form(alias="from", max_length=320)],
    to: Annotated[str, Form(max_length=100_000)] = "",
    cc: Annotated[str, Form(max_length=100_000)] = "",
    bcc: Annotated[str, Form(max_length=100_000)] = "",
    subject: Annotated[str, Form(max_length=998)] = "",
    text: Annotated[str, Form(max_length=10_000_000)] = "",
    html: Annotated[str | None, Form(max_length=10_000_000)] = None,
    reply_to_mailbox_id: Annotated[int | None, Form()] = None,
    reply_to_uid: Annotated[int | None, Form()] = None,
    mode: Annotated[Literal["new", "reply", "forward"], Form()] = "new",
    draft_uid: Annotated[int | None, Form()] = None,
    keep: Annotated[list[str] | None, Form()] = None,
    # A browser's empty file input arrives as a field with an empty name: ignored.
    attachments: Annotated[list[UploadFile | str] | None, File()] = None,
) -> schemas.SendResult:
    """Send a message (multipart form). ``from`` must be one of the caller's addresses; for
    ``mode=reply`` or ``forward`` name the original with ``reply_to_mailbox_id`` and
    ``reply_to_uid`` (In-Reply-To and References are set; a forward attaches the original).
    ``keep`` names attachments (part numbers) of the draft ``draft_uid`` to send with it,
    before the uploaded ``attachments``. The message is queued like SMTP submission, and a
    copy goes to the Sent folder."""
    settings = settings_of(request)
    allowed = await store.addresses_of(conn, account.id)
    sender = from_.strip().strip("<>").lower()
    if sender not in allowed and not store.send_as_allows(
        await store.send_as_of(conn, account.id), sender
    ):
        raise Problem(403, f"you may not send as {from_!r}; your addresses: {', '.join(allowed)}")
    to_list = compose.parse_recipients([to], "to")
    cc_list = compose.parse_recipients([cc], "cc")
    bcc_list = compose.parse_recipients([bcc], "bcc")
    recipients = list(dict.fromkeys(a for a in to_list + cc_list + bcc_list))
    if not recipients:
        raise Problem(422, "name at least one recipient (to, cc or bcc)")
    if len(recipients) > settings.max_recipients:
        raise Problem(422, f"at most {settings.max_recipients} recipients per message")
    # Each file is in the message as a placeholder until `outgoing.write` streams it in:
    # the attachments kept from the draft (read back from the store), then the uploads.
    files = outgoing.uploaded(attachments)
    kept = await kept_attachments(conn, account, draft_uid, keep or [])
    if len(kept) + len(files) > MAX_ATTACHMENTS:
        raise Problem(422, f"at most {MAX_ATTACHMENTS} attachments")
    parts = outgoing.Attachments()
    for carried in kept:
        parts.add(
            carried.filename,
            carried.content_type,
            outgoing.InMemory(carried.data),
            len(carried.data),
        )
    for upload in files:
        parts.add_upload(upload)
    # The HTML part is cleaned here whatever the browser sent, with a plain alternative.
    cleaned = richtext.clean(html) if html else None
    identity = (await preferences.identities(conn, account.id)).get(sender)
    draft = compose.Draft(
        sender=sender,
        sender_name=identity.name if identity else None,
        to=to_list,
        cc=cc_list,
        bcc=bcc_list,
        subject=subject,
        text=text or (richtext.plain(cleaned) if cleaned else ""),
        html=cleaned,
        attachments=parts.parts,
    )
    original = None
    if mode != "new":
        if reply_to_mailbox_id is None or reply_to_uid is None:
            raise Problem(422, f"mode={mode} needs reply_to_mailbox_id and reply_to_uid")
        source = await owned_mailbox(conn, account, reply_to_mailbox_id)
        if not 0 < reply_to_uid < 2**63:
            raise Problem(404, f"message {reply_to_uid} does not exist")
        original = await render.load(conn, source.id, reply_to_uid)
        parent_id = original.parsed.get("message_id")
        references = list(original.parsed.get("references") or [])
        if parent_id:
            draft.in_reply_to = parent_id
            references.append(parent_id)
        draft.references = [r for r in references if r]
        if mode == "forward":
            draft.forwarded = await store.fetch_raw(conn, source.id, reply_to_uid)
    now = datetime.now(UTC)
    domain = sender.rpartition("@")[2]
    message = compose.build(draft, domain=domain, now=now)
    skeleton = message.as_bytes()
    size = outgoing.checked_size(skeleton, parts.placeholders, settings.max_message_size)
    sent_mailbox = await store.get_special_use(conn, account.id, "\\Sent")
    current = await store.get_account_by_id(conn, account.id)
    if sent_mailbox is not None and current is not None and not quota.fits(current, size):
        # The Sent copy would not fit: say so before anything is sent (507, RFC 4918 §11.5).
        raise QuotaExceeded("the Sent copy would take the account past its quota")
    folder = settings.data_dir / "spool"
    async with outgoing.spooled(
        folder, inflight_of(request), skeleton, parts.placeholders
    ) as spool:
        del skeleton
        blob_id = await outgoing.store_blob(conn, spool)
        message_id = str(message["Message-ID"])
        spooled = await queue.spool(
            conn,
            b"",
            blob_id=blob_id,
            message_id=message_id,
            reverse_path=sender,
            recipients=recipients,
            arrival=Arrival(
                source="api",
                client_address=client_ip(request),
                protocol="HTTP",
                auth_account_id=account.id,
            ),
            now=now,
        )
        dispatched = await asyncio.to_thread(
            queue_contract.dispatch, [d.id for d in spooled.deliveries], settings
        )
        SENT.inc()
        log.info(
            "api.sent",
            queue_id=spooled.message.id,
            account=account.address,
            recipients=len(recipients),
        )
        sent_uid = None
        if sent_mailbox is not None:
            # The Sent copy shows the Bcc recipients to their sender (RFC 5322 §3.6.3).
            prefix = (
                email.policy.SMTP.fold("Bcc", ", ".join(bcc_list)).encode() if bcc_list else b""
            )
            copy_blob = await outgoing.store_blob(conn, spool, prefix) if prefix else blob_id
            try:
                copy = await store.append_message(
                    conn, sent_mailbox.id, flags=["\\Seen"], internal_date=now, blob_id=copy_blob
                )
                sent_uid = copy.uid
            except QuotaExceeded:
                # Filled meanwhile: the message is on its way, only the copy is not kept.
                log.warning("api.sent_copy.over_quota", account=account.address)
    await preferences.learn_contacts(conn, account.id, getaddresses([to, cc, bcc]), now=now)
    await discard_draft(conn, account, draft_uid)
    if original is not None and mode == "reply":
        await store.store_flags(
            conn, original.message.mailbox_id, [original.message.uid], ["\\Answered"], "add"
        )
    return schemas.SendResult(
        queue_id=spooled.message.id,
        message_id=message_id,
        recipients=recipients,
        sent_mailbox_id=sent_mailbox.id if sent_mailbox else None,
        sent_uid=sent_uid,
        dispatched=dispatched,
    )
