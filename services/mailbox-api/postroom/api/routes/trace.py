"""Message trace: find a message by Message-ID, sender, recipient or time; see its timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from postroom.api import schemas
from postroom.api.convert import queue_entry_public
from postroom.api.deps import AccountDep, ConnDep
from postroom.checks import describe as describe_checks
from postroom.errors import NotFound
from postroom.store import queue
from postroom.store.types import QueueEntry, QueueId

router = APIRouter(prefix="/api/v1/trace", tags=["trace"])
Filter = Annotated[str | None, Query(max_length=998)]


def timeline(entry: QueueEntry) -> list[schemas.TimelineEvent]:
    """What happened to the message, in order: arrival, each attempt, the DSNs sent."""
    m = entry.message
    how = [f"from {m.client_name or m.client_address or 'a local process'}"]
    if m.client_address and m.client_name:
        how.append(f"[{m.client_address}]")
    if m.helo_name:
        how.append(f"(HELO {m.helo_name})")
    how.append(f"via {m.source}")
    if m.protocol:
        how.append(f"with {m.protocol}")
    how.append(f"TLS {m.tls}" if m.tls else "without TLS")
    events = [schemas.TimelineEvent(at=m.received_at, event="received", detail=" ".join(how))]
    events += [
        schemas.TimelineEvent(at=m.received_at, event="checked", detail=line)
        for line in describe_checks(m.checks, m.target_special_use)
    ]
    recipients = {d.id: d.recipient for d in entry.deliveries}
    for a in entry.attempts:
        reply = " ".join(str(p) for p in (a.reply_code, a.reply_text) if p) or "no reply"
        hop = f" at {a.host}" if a.host else ""
        tls = f" over {a.tls}" if a.tls else ""
        events.append(
            schemas.TimelineEvent(
                at=a.attempted_at,
                event=a.outcome,
                recipient=recipients.get(a.delivery_id),
                detail=f"{a.outcome}{hop}{tls}: {reply}",
            )
        )
    for d in entry.deliveries:
        if d.state in queue.PENDING and d.attempts == 0:
            events.append(
                schemas.TimelineEvent(
                    at=d.next_attempt_at,
                    event="queued",
                    recipient=d.recipient,
                    detail="waiting for its first delivery attempt",
                )
            )
        if d.dsn_queue_message_id is not None:
            events.append(
                schemas.TimelineEvent(
                    at=d.finished_at or d.last_attempt_at or m.received_at,
                    event="dsn",
                    recipient=d.recipient,
                    detail=f"delivery status notification sent as queue entry "
                    f"{d.dsn_queue_message_id}",
                )
            )
    events.sort(key=lambda e: e.at)
    return events


def trace_public(entry: QueueEntry) -> schemas.TracePublic:
    recipients = {d.id: d.recipient for d in entry.deliveries}
    return schemas.TracePublic(
        **queue_entry_public(entry).model_dump(),
        attempts=[
            schemas.AttemptPublic(
                delivery_id=a.delivery_id,
                recipient=recipients.get(a.delivery_id, ""),
                attempted_at=a.attempted_at,
                outcome=a.outcome,
                host=a.host,
                reply_code=a.reply_code,
                reply_text=a.reply_text,
                tls=a.tls,
            )
            for a in entry.attempts
        ],
        timeline=timeline(entry),
        checks=entry.message.checks,
        target_special_use=entry.message.target_special_use,
    )


@router.get("", response_model=list[schemas.QueueEntryPublic])
async def find(
    account: AccountDep,
    conn: ConnDep,
    message_id: Filter = None,
    sender: Filter = None,
    recipient: Filter = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=queue.MAX_TRACE_RESULTS)] = 50,
) -> list[schemas.QueueEntryPublic]:
    """Messages matching every filter, newest first. Admins search all mail; other accounts
    the mail they sent."""
    entries = await queue.find_queue_entries(
        conn,
        message_id=message_id,
        sender=sender,
        recipient=recipient,
        since=since,
        until=until,
        account_id=None if account.is_admin else account.id,
        limit=limit,
    )
    return [queue_entry_public(e) for e in entries]


@router.get("/{queue_id}", response_model=schemas.TracePublic)
async def show(queue_id: int, account: AccountDep, conn: ConnDep) -> schemas.TracePublic:
    """The whole timeline of one queued message."""
    if not 0 < queue_id < 2**63:
        raise NotFound(f"queue entry {queue_id} does not exist")
    entry = await queue.get_queue_entry(conn, QueueId(queue_id))
    if not account.is_admin and entry.message.auth_account_id != account.id:
        raise NotFound(f"queue entry {queue_id} does not exist")
    return trace_public(entry)
