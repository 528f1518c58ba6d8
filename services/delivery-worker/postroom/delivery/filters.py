"""Local delivery through Sieve: run the account's script, then file, forward, refuse or answer.

Everything here runs inside the transaction that records the delivery's outcome, so a worker
that dies half-way leaves nothing behind: the retry runs the script again from the start.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Literal, cast

import structlog

from postroom import store
from postroom.config import Settings
from postroom.db import Conn
from postroom.delivery import forwarding
from postroom.errors import StoreError
from postroom.sieve import (
    CompiledScript,
    Context,
    Envelope,
    FileInto,
    Keep,
    Limits,
    MessageView,
    Outcome,
    Redirect,
    Reject,
    SieveError,
    Vacation,
    compile_script,
    run,
)
from postroom.sieve.vacation import build_reply, refusal, tracking_key
from postroom.store import queue as queue_store
from postroom.store import sieve as sieve_store
from postroom.store.types import Account, Arrival, ClaimedDelivery, DeliveryId, RecipientSpec

log = structlog.get_logger()
INBOX = "INBOX"


@dataclass(slots=True)
class Filed:
    """What the script made of one account's copy."""

    rejected: str | None = None  # RFC 5429: the reason, when the account refused the message
    forwarded: list[DeliveryId] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # for the message trace


def trace_prefix(reverse_path: str, delivered_to: str) -> bytes:
    """RFC 5321 §4.4: the final delivery adds Return-Path with the envelope sender; the
    Delivered-To line (as Postfix and qmail write it) names the mailbox it went to."""
    return f"Return-Path: <{reverse_path}>\r\nDelivered-To: {delivered_to}\r\n".encode()


@lru_cache(maxsize=4)
def _global_script(path: Path, mtime: float, max_size: int) -> CompiledScript:
    del mtime  # part of the cache key: an edited file is compiled again
    return compile_script(path.read_text(), max_size=max_size)


def global_script(settings: Settings) -> CompiledScript | None:
    """The site-wide script (POSTROOM_SIEVE_GLOBAL_SCRIPT), compiled once per version. One
    that was broken after start is skipped (and logged): it must not stop every delivery."""
    path = settings.sieve_global_script
    if path is None:
        return None
    try:
        return _global_script(path, path.stat().st_mtime, settings.sieve_max_script_size)
    except (OSError, UnicodeDecodeError, SieveError) as exc:
        log.error("delivery.sieve.global_script_error", path=str(path), error=str(exc))
        return None


async def deliver_to_account(
    conn: Conn,
    claimed: ClaimedDelivery,
    account: Account,
    inbox_id: store.MailboxId,
    *,
    settings: Settings,
    now: datetime,
) -> Filed:
    """Store (or not) this account's copy as its Sieve scripts decide."""
    filed = Filed()
    delivery, message = claimed.delivery, claimed.message
    scripts = [
        s for s in (global_script(settings), await sieve_store.active_script(conn, account.id)) if s
    ]
    if not scripts:
        await _append(conn, claimed, account, inbox_id, (), now, key_suffix="")
        return filed
    raw = await queue_store.read_queued_message(conn, message.id)
    view = MessageView(raw)
    envelope = Envelope(message.reverse_path, delivery.recipient)
    mailboxes: list[str] = []
    if any(s.uses("mailboxexists") for s in scripts):  # RFC 5490 §3.1: needs the names
        mailboxes = [m.name for m in await store.list_mailboxes(conn, account.id)]
    library: dict[str, CompiledScript] = {}
    if any(s.uses("include") for s in scripts):
        library = await sieve_store.compiled_scripts(conn, account.id)

    def includes(location: str, name: str) -> CompiledScript | None:
        # RFC 6609: :personal names the account's scripts; there are no :global ones.
        return library.get(name) if location == "personal" else None

    limits = Limits(max_redirects=settings.sieve_max_redirects)
    outcome = Outcome((Keep(implicit=True),))
    for script in scripts:
        context = Context(
            view, envelope, now=now, mailboxes=mailboxes, limits=limits, includes=includes
        )
        try:
            outcome = run(script, context)
        except Exception:  # a bug of ours must not cost the message: RFC 5228 §2.10.6 keep
            log.exception("delivery.sieve.crash", delivery_id=delivery.id)
            outcome = Outcome((Keep(implicit=True),), error="internal error in the filter")
        if outcome.error is not None:
            # RFC 5228 §2.10.6: a failed run keeps the message; the trace says why.
            filed.notes.append(f"sieve error, kept: {outcome.error}")
            log.warning("delivery.sieve.error", delivery_id=delivery.id, error=outcome.error)
        if not _only_implicit_keep(outcome):
            break  # the site-wide script decided; the user's does not run
    own = (account.address, delivery.recipient)
    for action in outcome.actions:
        if isinstance(action, Keep):
            await _append(conn, claimed, account, inbox_id, action.flags, now, key_suffix="")
        elif isinstance(action, FileInto):
            await _file_into(conn, claimed, account, inbox_id, action, now, filed)
        elif isinstance(action, Redirect):
            await _redirect(
                conn, claimed, account, inbox_id, raw, view, action, now, filed, settings
            )
        elif isinstance(action, Reject):
            filed.rejected = action.reason
            filed.notes.append("sieve: rejected")
        elif isinstance(action, Vacation):
            await _vacation(
                conn, claimed, account, view, envelope, own, action, settings, now, filed
            )
    if outcome.discarded and filed.rejected is None:
        filed.notes.append("sieve: discarded")
    return filed


def _only_implicit_keep(outcome: Outcome) -> bool:
    return all(isinstance(a, Keep) and a.implicit for a in outcome.actions)


async def _append(
    conn: Conn,
    claimed: ClaimedDelivery,
    account: Account,
    mailbox_id: store.MailboxId,
    flags: tuple[str, ...],
    now: datetime,
    *,
    key_suffix: str,
) -> None:
    # The delivery key makes a retry after a crash store no second copy; one per mailbox.
    await store.append_message(
        conn,
        mailbox_id,
        blob_id=claimed.message.blob_id,
        header_prefix=trace_prefix(claimed.message.reverse_path, account.address),
        delivery_key=f"{claimed.delivery.id}:{account.id}{key_suffix}",
        internal_date=now,
        flags=flags,
    )


async def _file_into(
    conn: Conn,
    claimed: ClaimedDelivery,
    account: Account,
    inbox_id: store.MailboxId,
    action: FileInto,
    now: datetime,
    filed: Filed,
) -> None:
    if action.mailbox.upper() == INBOX:
        await _append(conn, claimed, account, inbox_id, action.flags, now, key_suffix="")
        return
    mailbox = await store.get_mailbox(conn, account.id, action.mailbox)
    problem = f"no mailbox {action.mailbox!r}"
    if mailbox is None and action.create:
        try:
            # RFC 5490 §3.2: :create makes the mailbox when it does not exist.
            async with conn.transaction():
                mailbox = await store.create_mailbox(conn, account.id, action.mailbox)
        except (StoreError, ValueError) as exc:
            problem = f"cannot create {action.mailbox!r} ({exc})"
    if mailbox is None:
        # RFC 5228 §4.1: filing into a mailbox that is not there fails; the copy is kept.
        filed.notes.append(f"sieve: {problem}, kept")
        await _append(conn, claimed, account, inbox_id, action.flags, now, key_suffix="")
        return
    await _append(
        conn, claimed, account, mailbox.id, action.flags, now, key_suffix=f":{mailbox.id}"
    )
    filed.notes.append(f"sieve: fileinto {action.mailbox}")


async def _redirect_sender(
    conn: Conn, reverse_path: str, account: Account, action: Redirect, settings: Settings
) -> str:
    """SRS for a redirect to another domain; a redirect to a local address keeps the sender."""
    if await store.is_local_domain(conn, action.address.rpartition("@")[2].lower()):
        return reverse_path
    return await forwarding.forward_sender(conn, settings, reverse_path, account.address)


async def _redirect(
    conn: Conn,
    claimed: ClaimedDelivery,
    account: Account,
    inbox_id: store.MailboxId,
    raw: bytes,
    view: MessageView,
    action: Redirect,
    now: datetime,
    filed: Filed,
    settings: Settings,
) -> None:
    message = claimed.message
    delivered_to = {v.strip().lower() for v in view.header_values("delivered-to")}
    if account.address.lower() in delivered_to:
        # RFC 5228 §4.2: guard against loops; this copy has been here before, keep it.
        filed.notes.append(f"sieve: redirect to {action.address} looped, kept")
        await _append(conn, claimed, account, inbox_id, (), now, key_suffix="")
        return
    # The copy carries Delivered-To so that a loop back here is seen (as Postfix does).
    content = f"Delivered-To: {account.address}\r\n".encode() + raw
    spooled = await queue_store.spool(
        conn,
        content,
        reverse_path=await _redirect_sender(conn, message.reverse_path, account, action, settings),
        recipients=[RecipientSpec(action.address, f"rfc822;{claimed.delivery.recipient}")],
        arrival=Arrival(
            source="local",
            env_id=message.env_id,
            dsn_ret=cast(Literal["FULL", "HDRS"] | None, message.dsn_ret),
        ),
        now=now,
        message_id=message.message_id,
    )
    filed.forwarded += [d.id for d in spooled.deliveries]
    filed.notes.append(f"sieve: redirect to {action.address}")


async def _vacation(
    conn: Conn,
    claimed: ClaimedDelivery,
    account: Account,
    view: MessageView,
    envelope: Envelope,
    own: tuple[str, ...],
    action: Vacation,
    settings: Settings,
    now: datetime,
    filed: Filed,
) -> None:
    # RFC 5230 §4.5: the user's addresses are the account's and its own aliases.
    own = (*own, *await store.addresses_of(conn, account.id))
    why_not = refusal(action, view, envelope, own)
    if why_not is not None:
        filed.notes.append(f"sieve: no vacation reply ({why_not})")
        return
    fresh = await sieve_store.claim_vacation_reply(
        conn,
        account.id,
        sender=envelope.sender,
        handle=tracking_key(action),
        period=timedelta(seconds=action.seconds),
        now=now,
    )
    if not fresh:
        filed.notes.append("sieve: vacation reply already sent in this period")
        return
    reply_envelope = Envelope(envelope.sender, account.address)
    if action.from_address is not None:
        _name, from_address = parseaddr(action.from_address)
        if from_address.lower() not in {a.lower() for a in own}:
            # RFC 5230 §4.3 lets a site refuse a :from that is not the user's: a reply we
            # send (and sign) must not speak for someone else.
            filed.notes.append(f"sieve: vacation :from {from_address!r} is not the user's")
            action = replace(action, from_address=None)
    reply = build_reply(action, view, reply_envelope, now=now, hostname=settings.hostname)
    # RFC 5230 §5.1, RFC 3834 §3.3: the reply goes out with the null reverse path.
    spooled = await queue_store.spool(
        conn,
        reply,
        reverse_path="",
        recipients=[envelope.sender],
        arrival=Arrival(source="local", auth_account_id=account.id),
        now=now,
    )
    filed.forwarded += [d.id for d in spooled.deliveries]
    filed.notes.append(f"sieve: vacation reply to {envelope.sender}")


__all__ = ["Filed", "SieveError", "deliver_to_account", "global_script", "trace_prefix"]
