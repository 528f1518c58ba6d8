"""Delivery into local mailboxes: resolve the recipient, append to each account's INBOX.

Aliases that point to other domains are not delivered here: they become a new queue entry
(same content, same envelope sender, the alias as original recipient) in the same transaction
as the outcome, so they get their own retries and bounces like any remote recipient.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

from postroom import store
from postroom.db import Conn
from postroom.delivery.retry import Result, delivered, permanent, transient
from postroom.store import queue as queue_store
from postroom.store.types import (
    Arrival,
    ClaimedDelivery,
    DeliveryId,
    RecipientSpec,
    Resolution,
)

LOCAL_HOST = "local"


@dataclass(frozen=True, slots=True)
class LocalOutcome:
    result: Result
    forwarded: tuple[DeliveryId, ...] = ()  # new deliveries to dispatch once committed


def trace_prefix(reverse_path: str, delivered_to: str) -> bytes:
    """RFC 5321 §4.4: the final delivery adds Return-Path with the envelope sender; the
    Delivered-To line (as Postfix and qmail write it) names the mailbox it went to."""
    return f"Return-Path: <{reverse_path}>\r\nDelivered-To: {delivered_to}\r\n".encode()


async def deliver(
    conn: Conn, claimed: ClaimedDelivery, resolution: Resolution, *, now: datetime
) -> LocalOutcome:
    """Append a copy to each resolved account; call inside the transaction that records the
    outcome. The delivery key makes a retry after a crash store no second copy."""
    delivery, message = claimed.delivery, claimed.message
    if resolution.empty:
        return LocalOutcome(
            permanent(f"5.1.1 <{delivery.recipient}>: no such mailbox here", 550, LOCAL_HOST)
        )
    for account in resolution.accounts:
        inbox = await store.get_mailbox(conn, account.id, "INBOX")
        if inbox is None:
            return LocalOutcome(transient(f"4.2.1 {account.address} has no INBOX", 451, LOCAL_HOST))
        await store.append_message(
            conn,
            inbox.id,
            blob_id=message.blob_id,
            header_prefix=trace_prefix(message.reverse_path, account.address),
            delivery_key=f"{delivery.id}:{account.id}",
            internal_date=now,
        )
    forwarded: tuple[DeliveryId, ...] = ()
    if resolution.remote:
        raw = await queue_store.read_queued_message(conn, message.id)
        original = delivery.original_recipient or f"rfc822;{delivery.recipient}"
        spooled = await queue_store.spool(
            conn,
            raw,
            reverse_path=message.reverse_path,
            recipients=[RecipientSpec(r, original, delivery.notify) for r in resolution.remote],
            arrival=Arrival(
                source="local",
                env_id=message.env_id,
                dsn_ret=cast(Literal["FULL", "HDRS"] | None, message.dsn_ret),
            ),
            now=now,
            message_id=message.message_id,
        )
        forwarded = tuple(d.id for d in spooled.deliveries)
    return LocalOutcome(delivered(LOCAL_HOST), forwarded)
