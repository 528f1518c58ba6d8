"""Delivery status notifications through the queue: which DSNs are owed, and spooling them.

The DSN messages themselves are built by ``postroom.delivery.dsn``. Each queue entry's DSN is
spooled and its debt paid in one transaction, and fails alone (see ``send_failure_dsns``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import structlog

from postroom.config import Settings
from postroom.db import Conn
from postroom.delivery import forwarding
from postroom.delivery.dsn import Action, RecipientStatus, build_dsn
from postroom.delivery.local import LOCAL_HOST
from postroom.delivery.metrics import FAILURES, HELD
from postroom.delivery.retry import enhanced_status
from postroom.store import queue as queue_store
from postroom.store.types import (
    Arrival,
    Attempt,
    Delivery,
    DeliveryId,
    QueueEntry,
    QueueId,
)

__all__ = ["build_dsn", "send_delay_warnings", "send_failure_dsns"]

log = structlog.get_logger("postroom.delivery.bounce")


def _diagnostic(attempt: Attempt | None, delivery: Delivery) -> str:
    """RFC 3464 §2.3.6: "smtp; <reply>" for a server's reply, our own words otherwise."""
    if attempt is not None and attempt.reply_code is not None:
        return f"smtp; {attempt.reply_code} {attempt.reply_text or ''}".rstrip()
    text = (attempt.reply_text if attempt else None) or delivery.last_error or "unknown error"
    return f"X-Postroom; {text}"


def recipient_status(entry: QueueEntry, delivery: Delivery, action: Action) -> RecipientStatus:
    attempts = [a for a in entry.attempts if a.delivery_id == delivery.id]
    last = attempts[-1] if attempts else None
    if action != "delayed":
        kind: Literal["transient", "permanent"] = "permanent"
    else:
        kind = "transient"
    status = enhanced_status(
        last.reply_code if last else None, last.reply_text if last else None, kind
    )
    if action == "failed" and status.startswith("2"):
        status = "5.0.0"
    if action == "delayed" and not status.startswith("4"):
        status = "4.0.0"
    if action in ("delivered", "relayed"):
        status = "2.0.0"
    remote = last.host if last and last.host and last.host != "local" else None
    return RecipientStatus(
        final_recipient=delivery.recipient,
        original_recipient=delivery.original_recipient,
        action=action,
        status=status,
        diagnostic=_diagnostic(last, delivery),
        remote_mta=remote.split(":")[0].split("[")[0] if remote else None,
        last_attempt=delivery.last_attempt_at,
    )


async def _spool_dsn(
    conn: Conn, entry: QueueEntry, dsn: bytes, now: datetime, settings: Settings
) -> tuple[QueueId, tuple[DeliveryId, ...]]:
    # A copy we forwarded carries our SRS sender: its DSN goes straight to the original one.
    recipient = await forwarding.bounce_recipient(conn, settings, entry.message.reverse_path)
    spooled = await queue_store.spool(
        conn,
        dsn,
        reverse_path="",
        recipients=[recipient],
        arrival=Arrival(source="bounce", bounce_of=entry.message.id),
        now=now,
    )
    return spooled.message.id, tuple(d.id for d in spooled.deliveries)


async def send_failure_dsns(
    conn: Conn, queue_ids: Sequence[QueueId], *, settings: Settings, now: datetime
) -> list[DeliveryId]:
    """Spool the DSNs owed for each entry's finished deliveries (failures together, successes
    together); returns the new deliveries (to dispatch). Safe to run anywhere at once: the
    debt is locked and paid in one transaction. Each entry fails alone: an exception rolls
    back that entry's DSN, is counted against its deliveries (held after too many), and the
    next entry goes on."""
    new: list[DeliveryId] = []
    for queue_id in queue_ids:
        touched: list[DeliveryId] = []
        try:
            new += await _send_failure_dsn(conn, queue_id, touched, settings=settings, now=now)
        except Exception as exc:
            await _entry_failed(conn, "dsn", queue_id, touched, exc, settings)
    return new


async def _entry_failed(
    conn: Conn,
    stage: str,
    queue_id: QueueId,
    deliveries: Sequence[DeliveryId],
    exc: Exception,
    settings: Settings,
) -> None:
    """Log and count one entry's failure; hold its deliveries after too many."""
    log.exception(f"delivery.{stage}.error", queue_id=queue_id)
    FAILURES.labels(stage).inc()
    if not deliveries:
        return
    try:
        held = await queue_store.note_failure(
            conn,
            deliveries,
            error=f"{stage.replace('_', ' ')} failed: {type(exc).__name__}",
            max_failures=settings.max_internal_failures,
        )
    except Exception:  # the connection itself is gone; the next sweep tries again
        log.exception("delivery.failure_not_recorded", queue_id=queue_id)
        return
    if held:
        HELD.labels(stage).inc(len(held))
        log.error("delivery.held", queue_id=queue_id, deliveries=len(held), stage=stage)


async def _send_failure_dsn(
    conn: Conn,
    queue_id: QueueId,
    touched: list[DeliveryId],
    *,
    settings: Settings,
    now: datetime,
) -> list[DeliveryId]:
    new: list[DeliveryId] = []
    async with conn.transaction():
        owing = await queue_store.lock_dsn_due(conn, queue_id)
        touched += [d.id for d in owing]
        if not owing:
            return new
        entry = await queue_store.get_queue_entry(conn, queue_id)
        if entry.message.reverse_path == "":
            await queue_store.mark_dsn_sent(conn, [d.id for d in owing], None)
            return new
        original = await queue_store.read_queued_message(conn, queue_id)
        # One DSN per kind of news: failures together, successes together.
        groups: dict[Action, list[Delivery]] = {}
        for d in owing:
            groups.setdefault(_finished_action(entry, d), []).append(d)
        for action, group in groups.items():
            dsn = build_dsn(
                message=entry.message,
                original=original,
                recipients=[recipient_status(entry, d, action) for d in group],
                reporting_mta=settings.hostname,
                now=now,
            )
            dsn_id, deliveries = await _spool_dsn(conn, entry, dsn, now, settings)
            await queue_store.mark_dsn_sent(conn, [d.id for d in group], dsn_id)
            log.info(
                f"delivery.dsn.{action}",
                queue_id=queue_id,
                dsn_queue_id=dsn_id,
                recipients=len(group),
            )
            new += deliveries
    return new


def _finished_action(entry: QueueEntry, delivery: Delivery) -> Action:
    """failed for a bounce; delivered into a local mailbox; relayed when another server took
    it (Postroom does not pass DSN requests on, so that server will not report success)."""
    if delivery.state != "delivered":
        return "failed"
    attempts = [a for a in entry.attempts if a.delivery_id == delivery.id]
    return "delivered" if attempts and attempts[-1].host == LOCAL_HOST else "relayed"


async def send_delay_warnings(conn: Conn, *, settings: Settings, now: datetime) -> list[DeliveryId]:
    """Spool a delay DSN (Action: delayed) for mail deferred longer than POSTROOM_DELAY_WARNING,
    once per delivery; returns the new deliveries. A zero delay_warning turns this off."""
    if settings.delay_warning.total_seconds() <= 0:
        return []
    queue_ids = await queue_store.delay_warning_messages(
        conn, received_before=now - settings.delay_warning, now=now
    )
    new: list[DeliveryId] = []
    for queue_id in queue_ids:
        touched: list[DeliveryId] = []
        try:
            new += await _send_delay_warning(conn, queue_id, touched, settings=settings, now=now)
        except Exception as exc:
            await _entry_failed(conn, "delay_warning", queue_id, touched, exc, settings)
    return new


async def _send_delay_warning(
    conn: Conn,
    queue_id: QueueId,
    touched: list[DeliveryId],
    *,
    settings: Settings,
    now: datetime,
) -> list[DeliveryId]:
    new: list[DeliveryId] = []
    async with conn.transaction():
        waiting = await queue_store.lock_delay_warning(conn, queue_id, now=now)
        touched += [d.id for d in waiting]
        if not waiting:
            return new
        entry = await queue_store.get_queue_entry(conn, queue_id)
        original = await queue_store.read_queued_message(conn, queue_id)
        dsn = build_dsn(
            message=entry.message,
            original=original,
            recipients=[recipient_status(entry, d, "delayed") for d in waiting],
            reporting_mta=settings.hostname,
            now=now,
            will_retry_until=entry.message.received_at + settings.max_queue_lifetime,
        )
        dsn_id, deliveries = await _spool_dsn(conn, entry, dsn, now, settings)
        await queue_store.mark_delay_warned(conn, [d.id for d in waiting], now=now)
    log.info(
        "delivery.dsn.delayed", queue_id=queue_id, dsn_queue_id=dsn_id, recipients=len(waiting)
    )
    new += deliveries
    return new
