"""Delivery status notifications (RFC 3464): build them, and send them through the queue.

A DSN goes to the original envelope sender with the null reverse path (RFC 5321 §4.5.5, so
it can never bounce back), From MAILER-DAEMON@<hostname>. The recipients of one message that
failed together share one DSN. It carries a readable first part, the machine-readable
message/delivery-status part, and the original message: whole (message/rfc822) when the
sender asked RET=FULL (RFC 3461 §4.3), the message is at most MAX_RETURNED_MESSAGE octets and
7-bit, so that the DSN stays small and goes anywhere; else its header (text/rfc822-headers).
"""

from __future__ import annotations

import email.utils
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.mime.text import MIMEText
from typing import Literal

import structlog

from postroom.config import Settings
from postroom.db import Conn
from postroom.delivery.local import LOCAL_HOST
from postroom.delivery.metrics import FAILURES, HELD
from postroom.delivery.retry import enhanced_status
from postroom.store import queue as queue_store
from postroom.store.types import (
    Arrival,
    Attempt,
    Delivery,
    DeliveryId,
    QueuedMessage,
    QueueEntry,
    QueueId,
)

log = structlog.get_logger("postroom.delivery.bounce")

Action = Literal["failed", "delayed", "delivered", "relayed"]
# Original headers returned in a DSN are cut at this size.
MAX_RETURNED_HEADER = 64 * 1024
# RET=FULL returns the whole message up to this size (Postfix's bounce_size_limit).
MAX_RETURNED_MESSAGE = 50_000


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    """One per-recipient block of the delivery-status part (RFC 3464 §2.3)."""

    final_recipient: str
    original_recipient: str | None
    action: Action
    status: str
    diagnostic: str | None
    remote_mta: str | None
    last_attempt: datetime | None


def original_header(raw: bytes) -> str:
    """The header section of a message, as text for text/rfc822-headers."""
    end = raw.find(b"\r\n\r\n")
    head = raw[: end + 2] if end >= 0 else raw[:MAX_RETURNED_HEADER]
    head = head[:MAX_RETURNED_HEADER]
    # 8-bit header bytes become "?": the DSN stays 7-bit and goes anywhere.
    return head.decode("ascii", "replace").replace("\ufffd", "?").replace("\r\n", "\n")


def returns_whole(message: QueuedMessage, original: bytes, action: Action) -> bool:
    """RET=FULL on a failure, for a small 7-bit message (delay warnings return headers)."""
    return (
        message.dsn_ret == "FULL"
        and action == "failed"
        and len(original) <= MAX_RETURNED_MESSAGE
        and original.isascii()
    )


def _fields(pairs: Sequence[tuple[str, str | None]]) -> Message:
    block = Message()
    for name, value in pairs:
        if value is not None:
            block[name] = value
    return block


def _date(when: datetime) -> str:
    return email.utils.format_datetime(when)


def _typed_address(value: str) -> str:
    """An address-type;address field value (RFC 3464 §2.3.1/§2.3.2)."""
    return value if ";" in value else f"rfc822;{value}"


def build_dsn(
    *,
    message: QueuedMessage,
    original: bytes,
    recipients: Sequence[RecipientStatus],
    reporting_mta: str,
    now: datetime,
    will_retry_until: datetime | None = None,
) -> bytes:
    """The DSN for some recipients of ``message`` (all with the same action)."""
    action = recipients[0].action
    lines = [f"This is the mail system at host {reporting_mta}.", ""]
    if action == "failed":
        lines += [
            "I'm sorry to have to inform you that your message could not",
            "be delivered to one or more recipients. It's attached below.",
        ]
        subject = "Undelivered Mail Returned to Sender"
    elif action in ("delivered", "relayed"):
        lines += [
            "Your message was successfully delivered to the destination(s) listed below."
            if action == "delivered"
            else "Your message was passed on to the destination(s) listed below, which will "
            "not report on it further.",
            "This report was sent because you asked for one (NOTIFY=SUCCESS).",
        ]
        subject = "Successful Mail Delivery Report"
    else:
        lines += [
            "Your message could not be delivered yet to one or more recipients.",
            "The mail system will keep trying"
            + (f" until {_date(will_retry_until)}." if will_retry_until else "."),
            "You do not need to send it again.",
        ]
        subject = "Delayed Mail (still being retried)"
    lines.append("")
    for r in recipients:
        lines.append(f"<{r.final_recipient}>: {r.diagnostic or r.status}")
    text = MIMEText("\n".join(lines) + "\n", "plain", "us-ascii")
    text["Content-Description"] = "Notification"

    per_message = _fields(
        [
            ("Reporting-MTA", f"dns; {reporting_mta}"),
            ("Original-Envelope-Id", message.env_id),
            ("Arrival-Date", _date(message.received_at)),
        ]
    )
    blocks = [per_message]
    for r in recipients:
        blocks.append(
            _fields(
                [
                    (
                        "Original-Recipient",
                        _typed_address(r.original_recipient) if r.original_recipient else None,
                    ),
                    ("Final-Recipient", f"rfc822; {r.final_recipient}"),
                    ("Action", r.action),
                    ("Status", r.status),
                    ("Remote-MTA", f"dns; {r.remote_mta}" if r.remote_mta else None),
                    ("Diagnostic-Code", r.diagnostic),
                    ("Last-Attempt-Date", _date(r.last_attempt) if r.last_attempt else None),
                    (
                        "Will-Retry-Until",
                        _date(will_retry_until)
                        if action == "delayed" and will_retry_until
                        else None,
                    ),
                ]
            )
        )
    status = MIMEBase("message", "delivery-status")
    # message/delivery-status is a list of header blocks to the email package (RFC 3464 §2.1).
    status.set_payload(list[Message | str](blocks))
    status["Content-Description"] = "Delivery report"

    returned: MIMEBase
    if returns_whole(message, original, action):
        returned = MIMENonMultipart("message", "rfc822")
        # A string payload is written as it is: the original, byte for byte.
        returned.set_payload(original.decode("ascii"))
        returned["Content-Description"] = "Undelivered Message"
    else:
        returned = MIMEText(original_header(original), "rfc822-headers", "us-ascii")
        returned["Content-Description"] = "Undelivered Message Headers"

    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = f"Mail Delivery System <MAILER-DAEMON@{reporting_mta}>"
    report["To"] = f"<{message.reverse_path}>"
    report["Subject"] = subject
    report["Date"] = _date(now)
    report["Message-ID"] = email.utils.make_msgid(domain=reporting_mta)
    report["Auto-Submitted"] = "auto-replied"  # RFC 3834 §5
    if message.message_id:
        report["In-Reply-To"] = message.message_id
        report["References"] = message.message_id
    report.attach(text)
    report.attach(status)
    report.attach(returned)
    return report.as_bytes(policy=policy.SMTP)


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
    conn: Conn, entry: QueueEntry, dsn: bytes, now: datetime
) -> tuple[QueueId, tuple[DeliveryId, ...]]:
    spooled = await queue_store.spool(
        conn,
        dsn,
        reverse_path="",
        recipients=[entry.message.reverse_path],
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
            dsn_id, deliveries = await _spool_dsn(conn, entry, dsn, now)
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
        dsn_id, deliveries = await _spool_dsn(conn, entry, dsn, now)
        await queue_store.mark_delay_warned(conn, [d.id for d in waiting], now=now)
    log.info(
        "delivery.dsn.delayed", queue_id=queue_id, dsn_queue_id=dsn_id, recipients=len(waiting)
    )
    new += deliveries
    return new
