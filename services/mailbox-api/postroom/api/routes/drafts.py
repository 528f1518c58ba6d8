"""Drafts: the compose window saved as a message in the Drafts folder (flagged \\Draft), so an
IMAP client sees the same draft; each save replaces the previous one. Attachments are parts
of that message (MIME, as sent); a save names the ones of the draft it replaces to keep, so
a file is uploaded once and carried from save to save, and to the send, on the server."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email import policy as email_policy
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from pydantic import BaseModel

from postroom import store
from postroom.api import compose, outgoing, render, richtext
from postroom.api.deps import AccountDep, ConnDep, inflight_of, settings_of
from postroom.api.problems import Problem
from postroom.db import Conn
from postroom.store.types import Account, Mailbox

router = APIRouter(prefix="/api/v1/drafts", tags=["send"])


MAX_ATTACHMENTS = 50


class DraftAttachment(BaseModel):
    part: str
    filename: str
    content_type: str
    size: int


class DraftSaved(BaseModel):
    mailbox_id: int
    uid: int
    # The saved draft's attachments: the parts a following save or send may keep.
    attachments: list[DraftAttachment]


async def kept_attachments(
    conn: Conn, account: Account, draft_uid: int | None, parts: list[str]
) -> list[compose.Upload]:
    """The attachments ``parts`` (part numbers) of the account's draft ``draft_uid``, read
    back from the stored message whole (not cut short like a displayed part)."""
    if not parts:
        return []
    if len(parts) > MAX_ATTACHMENTS:
        raise Problem(422, f"at most {MAX_ATTACHMENTS} attachments")
    if draft_uid is None or not 0 < draft_uid < 2**63:
        raise Problem(422, "keep names attachments of a draft: give its uid too")
    folder = await drafts_folder(conn, account)
    message = await store.get_message(conn, folder.id, draft_uid)
    if message is None or "\\Draft" not in message.flags:
        raise Problem(404, f"draft {draft_uid} does not exist")
    content = await render.load(conn, folder.id, draft_uid)
    listed = {a["part"]: a for a in content.parsed.get("attachments") or []}
    out: list[compose.Upload] = []
    for part in dict.fromkeys(parts):
        node = render.find(content, part) if part in listed else None
        if node is None or node.type == "multipart":
            raise Problem(422, f"draft {draft_uid} has no attachment {part!r}")
        chunk = await store.read_blob_range(
            conn, content.message.blob_id, node.header_start, node.end - node.header_start
        )
        entity = message_from_bytes(chunk, policy=email_policy.default)
        payload = entity.get_payload(decode=True)
        out.append(
            compose.Upload(
                listed[part]["filename"] or render.part_filename(node),
                node.content_type,
                payload if isinstance(payload, bytes) else b"",
            )
        )
    return out


async def draft_attachments(conn: Conn, mailbox_id: int, uid: int) -> list[DraftAttachment]:
    content = await render.load(conn, mailbox_id, uid)
    return [
        DraftAttachment(
            part=a["part"],
            filename=a["filename"] or f"part-{a['part']}",
            content_type=a["content_type"],
            size=a["size"],
        )
        for a in content.parsed.get("attachments") or []
    ]


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
    request: Request,
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
    keep: Annotated[list[str] | None, Form()] = None,
    attachments: Annotated[list[UploadFile | str] | None, File()] = None,
) -> DraftSaved:
    """Save the compose window to Drafts (``\\Draft``, ``\\Seen``) and drop the draft it
    replaces (``replace_uid``). Recipients are kept as typed, finished or not. The draft's
    attachments: those of the replaced draft named by ``keep`` (part numbers, as the last
    save answered them), then the files uploaded as ``attachments``."""
    sender = from_.strip().strip("<>").lower()
    if sender not in await store.addresses_of(conn, account.id) and not store.send_as_allows(
        await store.send_as_of(conn, account.id), sender
    ):
        raise Problem(403, f"you may not send as {from_!r}")
    settings = settings_of(request)
    # As a send: each file is a placeholder part until `outgoing.write` streams it in.
    kept = await kept_attachments(conn, account, replace_uid, keep or [])
    files = outgoing.uploaded(attachments)
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
    cleaned = richtext.clean(html) if html else None
    draft = compose.Draft(
        sender=sender,
        to=[],
        subject=subject,
        text=text or (richtext.plain(cleaned) if cleaned else ""),
        html=cleaned,
        attachments=parts.parts,
    )
    message = compose.build(draft, domain=sender.rpartition("@")[2], now=datetime.now(UTC))
    for name, value in (("To", to), ("Cc", cc), ("Bcc", bcc)):
        if value.strip():
            # RFC 5322 §3.6.3: a draft may keep Bcc; the line is whatever was typed so far.
            message[name] = compose.single_line(value.strip(), name)
    skeleton = message.as_bytes()
    outgoing.checked_size(skeleton, parts.placeholders, settings.max_message_size, "draft")
    folder = await drafts_folder(conn, account)
    async with outgoing.spooled(
        settings.data_dir / "spool", inflight_of(request), skeleton, parts.placeholders
    ) as spool:
        del skeleton
        blob_id = await outgoing.store_blob(conn, spool)
        saved = await store.append_message(
            conn, folder.id, flags=["\\Draft", "\\Seen"], blob_id=blob_id
        )
    await discard_draft(conn, account, replace_uid)
    return DraftSaved(
        mailbox_id=folder.id,
        uid=saved.uid,
        attachments=await draft_attachments(conn, folder.id, saved.uid),
    )


@router.delete("/{uid}", status_code=204)
async def delete_draft(uid: int, account: AccountDep, conn: ConnDep) -> Response:
    """Discard a draft (only a message flagged \\Draft in the Drafts folder)."""
    await discard_draft(conn, account, uid)
    return Response(status_code=204)
