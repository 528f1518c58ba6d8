"""Messages of a folder: list and search, read, raw, parts, flags, move, copy, delete."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from postroom import learning, store
from postroom.api import render, schemas
from postroom.api.deps import AccountDep, ConnDep, SettingsDep, owned_mailbox, pool_of
from postroom.api.problems import Problem
from postroom.api.query import parse_query
from postroom.errors import NotFound
from postroom.store import preferences, search
from postroom.store.threads import thread_of
from postroom.store.types import Mailbox, MailboxId

router = APIRouter(prefix="/api/v1/mailboxes/{mailbox_id}/messages", tags=["messages"])

MAX_UID = 2**63 - 1
Text = Annotated[str | None, Query(max_length=1000)]


def _check_uid(uid: int) -> None:
    if not 0 < uid <= MAX_UID:
        raise Problem(404, f"message {uid} does not exist")


def criteria_of(
    *,
    q: str | None,
    subject: str | None,
    from_: str | None,
    to: str | None,
    body: str | None,
    since: date | None,
    before: date | None,
    unread: bool | None,
    flagged: bool | None,
    query: search.Criterion | None = None,
) -> search.Criterion | None:
    """The API's search fields as one criteria tree (the same SQL as IMAP SEARCH)."""
    items: list[search.Criterion] = [query] if query is not None else []
    if q:
        items.append(search.Text(q))
    if subject:
        items.append(search.Header("subject", subject))
    if from_:
        items.append(search.Header("from", from_))
    if to:
        items.append(search.Or((search.Header("to", to), search.Header("cc", to))))
    if body:
        items.append(search.Text(body, "body"))
    if since is not None:
        items.append(search.SentDate("since", since))
    if before is not None:
        items.append(search.SentDate("before", before))
    if unread is not None:
        items.append(search.Flag("\\Seen", present=not unread))
    if flagged is not None:
        items.append(search.Flag("\\Flagged", present=flagged))
    return search.And(tuple(items)) if items else None


@router.get("", response_model=schemas.MessagePage)
async def list_messages(
    mailbox_id: int,
    account: AccountDep,
    conn: ConnDep,
    sort: search.SortKey = "date",
    order: Literal["asc", "desc"] = "desc",
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=search.MAX_PAGE)] = 50,
    q: Text = None,
    subject: Text = None,
    from_: Annotated[str | None, Query(alias="from", max_length=1000)] = None,
    to: Text = None,
    body: Text = None,
    since: date | None = None,
    before: date | None = None,
    unread: bool | None = None,
    flagged: bool | None = None,
    query: Text = None,
    group: Literal["message", "conversation"] = "message",
) -> schemas.MessagePage:
    """One page of the folder, sorted; the other parameters search (all must match).
    ``query`` is the search box's language (``from:`` ``is:unread`` ``in:Folder``…); an
    ``in:`` there lists that folder instead (the page's ``mailbox_id`` says which).
    ``group=conversation``: one row per conversation (its newest message that matches, with
    ``conversation``: how many messages, how many unread, the newest arrival), newest
    arrival first (``order=asc``: oldest); ``sort`` does not apply, ``total`` and ``offset``
    count conversations."""
    mailbox = await owned_mailbox(conn, account, mailbox_id)
    parsed = parse_query(query) if query else None
    if parsed is not None and parsed.folder is not None:
        named = await store.get_mailbox(conn, account.id, parsed.folder)
        if named is None:
            raise Problem(404, f"there is no folder {parsed.folder!r}")
        mailbox = named
    criteria = criteria_of(
        q=q,
        subject=subject,
        from_=from_,
        to=to,
        body=body,
        since=since,
        before=before,
        unread=unread,
        flagged=flagged,
        query=parsed.criteria if parsed is not None else None,
    )
    if group == "conversation":
        conversations = await search.list_conversations(
            conn,
            mailbox.id,
            criteria=criteria,
            descending=order == "desc",
            offset=offset,
            limit=limit,
        )
        return schemas.MessagePage(
            mailbox_id=mailbox.id,
            total=conversations.total,
            offset=offset,
            limit=limit,
            items=[
                _summary_public(
                    c.latest,
                    schemas.ConversationPublic(
                        id=c.thread_id, messages=c.messages, unread=c.unread, newest=c.newest
                    ),
                )
                for c in conversations.items
            ],
        )
    page = await search.list_summaries(
        conn,
        mailbox.id,
        criteria=criteria,
        sort=sort,
        descending=order == "desc",
        offset=offset,
        limit=limit,
    )
    return schemas.MessagePage(
        mailbox_id=mailbox.id,
        total=page.total,
        offset=offset,
        limit=limit,
        items=[_summary_public(s) for s in page.items],
    )


def _summary_public(
    s: search.MessageSummary, conversation: schemas.ConversationPublic | None = None
) -> schemas.MessageSummaryPublic:
    return schemas.MessageSummaryPublic(
        uid=s.uid,
        subject=s.subject,
        from_=s.from_text,
        to=s.to_text,
        cc=s.cc_text,
        date=s.sent_date,
        received=s.internal_date,
        flags=sorted(s.flags),
        size=s.size,
        has_attachments=s.has_attachments,
        preview=s.preview,
        message_id=s.message_id,
        thread_id=s.thread_id,
        conversation=conversation,
    )


async def _selected(conn: ConnDep, mailbox: Mailbox, body: schemas.Selection) -> list[int]:
    """The UIDs a bulk request names: given, by conversation, or all that match."""
    if body.match is not None:
        parsed = parse_query(body.match.query) if body.match.query else None
        criteria = criteria_of(
            q=None,
            subject=None,
            from_=None,
            to=None,
            body=None,
            since=None,
            before=None,
            unread=body.match.unread,
            flagged=body.match.flagged,
            # The URL names the folder; an in: of the query named it to the page already.
            query=parsed.criteria if parsed is not None else None,
        )
        return await search.search_uids(conn, mailbox.id, criteria or search.All())
    if body.threads:
        return await search.thread_uids(conn, mailbox.id, body.threads)
    return _uids(body.uids)


def _people(pairs: list[tuple[str | None, str]]) -> list[schemas.AddressPublic]:
    return [schemas.AddressPublic(name=name, address=address) for name, address in pairs]


def _base(mailbox_id: int, uid: int) -> str:
    return f"/api/v1/mailboxes/{mailbox_id}/messages/{uid}"


@router.get("/{uid}", response_model=schemas.MessagePublic)
async def read_message(
    mailbox_id: int, uid: int, account: AccountDep, conn: ConnDep
) -> schemas.MessagePublic:
    """Headers, the text body, a link to the sanitized HTML body, and the attachments."""
    _check_uid(uid)
    mailbox = await owned_mailbox(conn, account, mailbox_id)
    content = await render.load(conn, mailbox.id, uid)
    parsed = content.parsed
    text_node, html_node = render.body_parts(content)
    text = await render.part_text(conn, content, text_node) if text_node else None
    remote = False
    if html_node is not None:
        markup = await render.part_text(conn, content, html_node)
        remote = render.sanitize_html(markup, allow_remote_images=False).remote_images
        if text is None:
            text = parsed.get("preview") or ""
    base = _base(mailbox.id, uid)
    message = content.message
    senders = render.addresses(parsed, "from")
    allowed = bool(remote and senders) and await preferences.images_allowed(
        conn, account.id, senders[0][1]
    )
    attachments = parsed.get("attachments") or []
    return schemas.MessagePublic(
        uid=uid,
        mailbox_id=mailbox.id,
        subject=parsed.get("subject"),
        from_=_people(render.addresses(parsed, "from")),
        to=_people(render.addresses(parsed, "to")),
        cc=_people(render.addresses(parsed, "cc")),
        reply_to=_people(render.addresses(parsed, "reply_to")),
        date=parsed.get("date"),
        received=message.internal_date,
        message_id=parsed.get("message_id"),
        in_reply_to=parsed.get("in_reply_to"),
        references=list(parsed.get("references") or []),
        flags=sorted(message.flags),
        size=message.size,
        text=text,
        has_html=html_node is not None,
        html_url=f"{base}/html" if html_node is not None else None,
        remote_images=remote,
        images_allowed=allowed,
        raw_url=f"{base}/raw",
        attachments=[
            schemas.AttachmentPublic(
                part=a["part"],
                filename=a["filename"] or f"part-{a['part']}",
                content_type=a["content_type"],
                size=a["size"],
                url=f"{base}/parts/{a['part']}",
                preview_url=f"{base}/parts/{a['part']}?view=inline"
                if str(a["content_type"]).lower() in PREVIEW_TYPES
                else None,
            )
            for a in attachments
        ],
        zip_url=f"{base}/attachments.zip" if attachments else None,
    )


@router.get("/{uid}/html", response_class=HTMLResponse)
async def message_html(
    mailbox_id: int,
    uid: int,
    account: AccountDep,
    conn: ConnDep,
    images: Literal["block", "show"] = "block",
) -> HTMLResponse:
    """The HTML body, sanitized, as a document with its own policy: nothing in it can run,
    and remote images stay blocked unless ``images=show``. Shown in a sandboxed frame."""
    _check_uid(uid)
    mailbox = await owned_mailbox(conn, account, mailbox_id)
    content = await render.load(conn, mailbox.id, uid)
    _, html_node = render.body_parts(content)
    if html_node is None:
        raise Problem(404, f"message {uid} has no HTML body")
    allow = images == "show"
    markup = await render.part_text(conn, content, html_node)
    inline = await render.inline_images(conn, content, render.cid_references(markup))
    cleaned = render.sanitize_html(markup, allow_remote_images=allow, inline_images=inline)
    return HTMLResponse(
        render.html_document(cleaned.html, allow_remote_images=allow),
        headers={
            "Content-Security-Policy": render.body_csp(allow_remote_images=allow),
            "X-Frame-Options": "SAMEORIGIN",
            "Cache-Control": "private, no-store",
        },
    )


@router.get("/{uid}/raw", response_class=Response)
async def message_raw(
    mailbox_id: int,
    uid: int,
    request: Request,
    account: AccountDep,
    conn: ConnDep,
    view: Literal["download", "text"] = "download",
) -> StreamingResponse:
    """The message exactly as stored (.eml), streamed; ``view=text`` shows it in the
    browser as plain text ("show original") instead of downloading it."""
    _check_uid(uid)
    mailbox = await owned_mailbox(conn, account, mailbox_id)
    message = await store.get_message(conn, mailbox.id, uid)
    if message is None:
        raise NotFound(f"message {uid} does not exist")
    pool = pool_of(request)

    async def chunks() -> AsyncIterator[bytes]:
        async with pool.connection() as stream_conn:
            await stream_conn.set_autocommit(True)
            async for chunk in store.read_raw_chunks(stream_conn, MailboxId(mailbox.id), uid):
                yield chunk

    as_text = view == "text"
    return StreamingResponse(
        chunks(),
        # Plain text is never sniffed into markup (nosniff, and the sandbox policy below).
        media_type="text/plain; charset=utf-8" if as_text else "message/rfc822",
        headers={
            "Content-Disposition": "inline"
            if as_text
            else render.content_disposition(f"message-{uid}.eml"),
            "Content-Length": str(message.size),
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


@router.get("/{uid}/attachments.zip", response_class=Response)
async def attachments_zip(
    mailbox_id: int, uid: int, account: AccountDep, conn: ConnDep
) -> Response:
    """Every attachment of the message in one zip (names made unique and safe)."""
    _check_uid(uid)
    mailbox = await owned_mailbox(conn, account, mailbox_id)
    content = await render.load(conn, mailbox.id, uid)
    files: list[tuple[str, bytes]] = []
    for a in content.parsed.get("attachments") or []:
        node = render.find(content, a["part"])
        if node is not None and node.type != "multipart":
            files.append(
                (render.part_filename(node), await render.decoded_part(conn, content, node))
            )
    if not files:
        raise Problem(404, f"message {uid} has no attachments")
    # The parts are already in memory (a message is at most the size limit); deflating them
    # is CPU work, so it runs in a thread.
    data = await asyncio.to_thread(render.zip_of, files)
    return Response(
        data,
        media_type="application/zip",
        headers={
            "Content-Disposition": render.content_disposition(f"message-{uid}-attachments.zip"),
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-store",
        },
    )


# Attachments the page may show in place: raster images (never SVG, which can hold script)
# and PDF (Chromium's own viewer).
PREVIEW_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"})


@router.get("/{uid}/parts/{part}", response_class=Response)
async def message_part(
    mailbox_id: int,
    uid: int,
    part: str,
    account: AccountDep,
    conn: ConnDep,
    view: Literal["download", "inline"] = "download",
) -> Response:
    """One MIME part (an attachment), decoded: a download, or with ``view=inline`` (images
    and PDF only) shown in the page."""
    _check_uid(uid)
    mailbox = await owned_mailbox(conn, account, mailbox_id)
    content = await render.load(conn, mailbox.id, uid)
    node = render.find(content, part) if len(part) <= 100 else None
    if node is None or node.type == "multipart":
        raise Problem(404, f"message {uid} has no part {part}")
    data = await render.decoded_part(conn, content, node)
    media_type = render.safe_content_type(node)
    if view == "inline":
        if media_type not in PREVIEW_TYPES:
            raise Problem(415, f"a {media_type} part cannot be shown, only downloaded")
        # A PDF viewer refuses a sandboxed document; a PDF still may load and run nothing
        # (default-src 'none'), and only our own pages may frame it.
        sandbox = "" if media_type == "application/pdf" else "; sandbox"
        return Response(
            data,
            media_type=media_type,
            headers={
                "Content-Disposition": "inline",
                "Content-Security-Policy": f"default-src 'none'; frame-ancestors 'self'{sandbox}",
                "X-Frame-Options": "SAMEORIGIN",
                "Cache-Control": "private, no-store",
            },
        )
    return Response(
        data,
        media_type=media_type,
        headers={
            "Content-Disposition": render.content_disposition(render.part_filename(node)),
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-store",
        },
    )


@router.get("/{uid}/thread", response_model=list[schemas.ThreadMemberPublic])
async def thread(
    mailbox_id: int, uid: int, account: AccountDep, conn: ConnDep
) -> list[schemas.ThreadMemberPublic]:
    """The message's conversation across the caller's folders, oldest first: the messages
    linked to it by Message-ID, References and In-Reply-To (RFC 5256 §2.2)."""
    _check_uid(uid)
    mailbox = await owned_mailbox(conn, account, mailbox_id)
    members = await thread_of(conn, account.id, mailbox.id, uid)
    if not members:
        raise NotFound(f"message {uid} does not exist")
    return [
        schemas.ThreadMemberPublic(
            mailbox_id=t.mailbox_id,
            mailbox=t.mailbox_name,
            uid=t.uid,
            message_id=t.message_id,
            subject=t.subject,
            from_=t.from_text,
            date=t.sent_date,
            received=t.internal_date,
            seen=t.seen,
            flagged=t.flagged,
            preview=t.preview,
        )
        for t in members
    ]


@router.post("/flags", response_model=schemas.BulkFlagsResult)
async def change_flags_of_many(
    mailbox_id: int, body: schemas.BulkFlagChange, account: AccountDep, conn: ConnDep
) -> schemas.BulkFlagsResult:
    """Add and remove flags on many messages at once (UIDs that are gone are skipped)."""
    mailbox = await owned_mailbox(conn, account, mailbox_id)
    uids = await _selected(conn, mailbox, body)
    if body.add:
        await store.store_flags(conn, mailbox.id, uids, body.add, "add")
    if body.remove:
        await store.store_flags(conn, mailbox.id, uids, body.remove, "remove")
    return schemas.BulkFlagsResult(uids=uids)


@router.post("/{uid}/flags", response_model=schemas.FlagsPublic)
async def change_flags(
    mailbox_id: int, uid: int, body: schemas.FlagChange, account: AccountDep, conn: ConnDep
) -> schemas.FlagsPublic:
    """Add and remove flags (\\Seen, \\Flagged, \\Answered, \\Draft, \\Deleted, keywords)."""
    _check_uid(uid)
    mailbox = await owned_mailbox(conn, account, mailbox_id)
    if await store.get_message(conn, mailbox.id, uid) is None:
        raise NotFound(f"message {uid} does not exist")
    if body.add:
        await store.store_flags(conn, mailbox.id, [uid], body.add, "add")
    if body.remove:
        await store.store_flags(conn, mailbox.id, [uid], body.remove, "remove")
    message = await store.get_message(conn, mailbox.id, uid)
    if message is None:
        raise NotFound(f"message {uid} does not exist")
    return schemas.FlagsPublic(uid=uid, flags=sorted(message.flags))


async def _target(conn: ConnDep, account: AccountDep, target_id: int) -> MailboxId:
    target = await owned_mailbox(conn, account, target_id)
    if not target.selectable:
        raise Problem(422, f"mailbox {target.name} cannot hold messages")
    return target.id


def _uids(uids: list[int]) -> list[int]:
    bad = [u for u in uids if not 0 < u <= MAX_UID]
    if bad:
        raise Problem(422, f"{bad[0]} is not a UID")
    return sorted(set(uids))


@router.post("/move", response_model=schemas.TransferResult)
async def move(
    mailbox_id: int,
    body: schemas.Transfer,
    account: AccountDep,
    conn: ConnDep,
    settings: SettingsDep,
) -> schemas.TransferResult:
    """Move messages to another of the caller's folders (RFC 6851 semantics)."""
    mailbox = await owned_mailbox(conn, account, mailbox_id)
    target = await _target(conn, account, body.target_mailbox_id)
    if target == mailbox.id:
        raise Problem(422, "the target is the folder the messages are in")
    pairs = await store.move_messages(
        conn, mailbox.id, await _selected(conn, mailbox, body), target
    )
    # Into Junk or out of it: the spam filter learns, in the background.
    learning.after_transfer(settings, mailbox, await owned_mailbox(conn, account, target), pairs)
    return schemas.TransferResult(moved=pairs)


@router.post("/copy", response_model=schemas.TransferResult)
async def copy(
    mailbox_id: int,
    body: schemas.Transfer,
    account: AccountDep,
    conn: ConnDep,
    settings: SettingsDep,
) -> schemas.TransferResult:
    """Copy messages to another (or the same) folder of the caller."""
    mailbox = await owned_mailbox(conn, account, mailbox_id)
    target = await _target(conn, account, body.target_mailbox_id)
    pairs = await store.copy_messages(
        conn, mailbox.id, await _selected(conn, mailbox, body), target
    )
    # As IMAP COPY: a copy into Junk or out of it teaches the spam filter too.
    learning.after_transfer(settings, mailbox, await owned_mailbox(conn, account, target), pairs)
    return schemas.TransferResult(copied=pairs)


@router.post("/delete", response_model=schemas.DeleteResult)
async def delete(
    mailbox_id: int,
    body: schemas.UidList,
    account: AccountDep,
    conn: ConnDep,
    permanent: bool = False,
) -> schemas.DeleteResult:
    """Delete messages: to Trash first; from Trash (or with ``permanent=true``) for real."""
    mailbox = await owned_mailbox(conn, account, mailbox_id)
    uids = await _selected(conn, mailbox, body)
    trash = await store.get_special_use(conn, account.id, "\\Trash")
    if permanent or trash is None or trash.id == mailbox.id:
        gone = await store.delete_messages(conn, mailbox.id, uids)
        return schemas.DeleteResult(deleted=gone)
    pairs = await store.move_messages(conn, mailbox.id, uids, trash.id)
    return schemas.DeleteResult(moved_to_trash=pairs)
