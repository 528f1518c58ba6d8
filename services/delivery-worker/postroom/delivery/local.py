"""Delivery into local mailboxes: resolve the recipient, file a copy for each account.

Aliases that point to other domains are not delivered here: they become a new queue entry
(same content, the envelope sender rewritten by SRS, the alias as original recipient) in
the same transaction as the outcome, so they get their own retries and bounces like any
remote recipient.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, cast

from postroom import store
from postroom.config import Settings, get_settings
from postroom.db import Conn
from postroom.delivery import filters, forwarding, loops
from postroom.delivery.retry import Result, delivered, permanent, transient
from postroom.errors import QuotaExceeded
from postroom.store import queue as queue_store
from postroom.store import sieve as sieve_store
from postroom.store.types import (
    AccountId,
    Arrival,
    ClaimedDelivery,
    DeliveryId,
    Mailbox,
    RecipientSpec,
    Resolution,
)

LOCAL_HOST = "local"


@dataclass(frozen=True, slots=True)
class LocalOutcome:
    result: Result
    forwarded: tuple[DeliveryId, ...] = ()  # new deliveries to dispatch once committed


async def _target_mailbox(
    conn: Conn, account_id: AccountId, special_use: str | None
) -> Mailbox | None:
    """The folder smtp-in's checks chose (Junk for quarantined mail), else INBOX."""
    if special_use is not None:
        mailbox = await store.get_special_use(conn, account_id, special_use)
        if mailbox is not None:
            return mailbox
    return await store.get_mailbox(conn, account_id, "INBOX")


async def _loop(
    conn: Conn, claimed: ClaimedDelivery, resolution: Resolution, settings: Settings
) -> str | None:
    """Why this delivery is a mail loop (the message was already delivered to, or forwarded
    from, one of its addresses), or None. An account with a Sieve script is left to the
    script's own loop guard (RFC 5228 §4.2: a redirect that comes back is kept)."""
    recipient = claimed.delivery.recipient
    seen = loops.delivered_to(await queue_store.read_queued_header(conn, claimed.message.id))
    if not seen:
        return None
    addresses = {recipient.lower(), *(a.address.lower() for a in resolution.accounts)}
    for account in resolution.accounts:
        if (
            settings.sieve_global_script is not None
            or await sieve_store.active_script(conn, account.id) is not None
        ):
            addresses.discard(account.address.lower())
    if looped := sorted(addresses & seen):
        return f"5.4.6 <{recipient}>: mail loop, already delivered to {looped[0]}"
    return None


def over_quota(
    address: str, claimed: ClaimedDelivery, *, now: datetime, settings: Settings | None
) -> Result:
    """A full mailbox is a temporary failure (RFC 3463 4.2.2) until the message's last
    attempt, at the end of its queue lifetime, which bounces it with 5.2.2; at once with
    ``over_quota_bounce``."""
    expiry = claimed.message.received_at + (
        settings.max_queue_lifetime if settings else timedelta(0)
    )
    if settings is None or settings.over_quota_bounce or now >= expiry:
        return permanent(f"5.2.2 <{address}>: mailbox full", 552, LOCAL_HOST)
    return transient(f"4.2.2 <{address}>: mailbox full", 452, LOCAL_HOST)


async def deliver(
    conn: Conn,
    claimed: ClaimedDelivery,
    resolution: Resolution,
    *,
    now: datetime,
    settings: Settings | None = None,
) -> LocalOutcome:
    """Deliver a copy to each resolved account as its Sieve script says (INBOX without one);
    call inside the transaction that records the outcome. An account without room for it
    defers (or bounces) the whole delivery; the accounts that got their copy before it keep
    it, and their delivery keys spare them a second one on the retry."""
    delivery, message = claimed.delivery, claimed.message
    if resolution.empty:
        return LocalOutcome(
            permanent(f"5.1.1 <{delivery.recipient}>: no such mailbox here", 550, LOCAL_HOST)
        )
    settings = settings or get_settings()
    if loop := await _loop(conn, claimed, resolution, settings):
        return LocalOutcome(permanent(loop, 554, LOCAL_HOST))
    forwarded: tuple[DeliveryId, ...] = ()
    notes: list[str] = []
    rejected: list[str] = []
    for account in resolution.accounts:
        inbox = await _target_mailbox(conn, account.id, message.target_special_use)
        if inbox is None:
            return LocalOutcome(transient(f"4.2.1 {account.address} has no INBOX", 451, LOCAL_HOST))
        try:
            # A savepoint, so that a refusal leaves the caller's transaction usable.
            async with conn.transaction():
                filed = await filters.deliver_to_account(
                    conn, claimed, account, inbox.id, settings=settings, now=now
                )
        except QuotaExceeded:
            return LocalOutcome(over_quota(account.address, claimed, now=now, settings=settings))
        forwarded += tuple(filed.forwarded)
        notes += filed.notes
        if filed.rejected is not None:
            rejected.append(filed.rejected)
    if rejected and len(rejected) == len(resolution.accounts) and not resolution.remote:
        # RFC 5429 §2.2: refused by the recipient's filter; the bounce carries the reason.
        reason = " ".join(rejected[0].split())[:400]
        return LocalOutcome(
            permanent(f"5.7.1 <{delivery.recipient}>: {reason}", 550, LOCAL_HOST), forwarded
        )
    if resolution.remote:
        # The forwarded copy says it was here, so that it is refused if it comes back.
        raw = f"Delivered-To: {delivery.recipient}\r\n".encode() + (
            await queue_store.read_queued_message(conn, message.id)
        )
        original = delivery.original_recipient or f"rfc822;{delivery.recipient}"
        spooled = await queue_store.spool(
            conn,
            raw,
            reverse_path=await forwarding.forward_sender(
                conn, settings, message.reverse_path, delivery.recipient
            ),
            recipients=[RecipientSpec(r, original, delivery.notify) for r in resolution.remote],
            arrival=Arrival(
                source="local",
                env_id=message.env_id,
                dsn_ret=cast(Literal["FULL", "HDRS"] | None, message.dsn_ret),
            ),
            now=now,
            message_id=message.message_id,
        )
        forwarded += tuple(d.id for d in spooled.deliveries)
    text = "; ".join(["2.0.0 OK", *notes])
    return LocalOutcome(delivered(LOCAL_HOST, text=text), forwarded)
