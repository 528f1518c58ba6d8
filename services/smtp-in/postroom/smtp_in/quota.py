"""Early answers for full local mailboxes: 452 4.2.2 at RCPT, 552 5.2.2 at the end of DATA.

They read the usage each recipient's resolution carried (at most a few seconds old, see
`AcceptedRecipients`), so they are a courtesy to the sender, not the enforcement: the store
refuses an append past the quota atomically, and the delivery worker defers, then bounces,
what does not fit. A recipient is refused only when no mailbox it reaches has room; a message
only when it fits none of its recipients (one DATA reply speaks for all of them, RFC 5321
§4.2.5), so mail to the others is never held back.
"""

from __future__ import annotations

from postroom.smtp_in.replies import Reply, SmtpError
from postroom.smtp_in.session import ACCEPT, Envelope, Hooks, Verdict
from postroom.store import quota
from postroom.store.types import Resolution

# RFC 3463 §3.3: X.2.2 mailbox full. RFC 5321 §4.2.2: 452 insufficient storage (the sender
# tries again later), 552 exceeded storage allocation.
R452_MAILBOX_FULL = Reply(452, "4.2.2", "Mailbox full, try again later")
R552_MAILBOX_FULL = Reply(552, "5.2.2", "Mailbox full: the message does not fit")


def _local_only(resolution: Resolution) -> bool:
    return bool(resolution.accounts) and not resolution.remote


async def recipient_has_room(txn: Envelope, address: str, resolution: Resolution) -> None:
    """RCPT: 452 4.2.2 when every mailbox the address reaches is full; 552 5.2.2 when the
    size MAIL FROM declared fits none of them (RFC 1870 §6.1)."""
    if not _local_only(resolution):
        return
    if all(quota.is_full(a) for a in resolution.accounts):
        raise SmtpError(R452_MAILBOX_FULL, "mailbox_full")
    size = txn.options.declared_size
    if size is not None and not any(quota.fits(a, size) for a in resolution.accounts):
        raise SmtpError(R552_MAILBOX_FULL, "mailbox_full")


async def message_fits(txn: Envelope, size: int) -> Verdict:
    """End of DATA: 552 5.2.2 when the message fits no recipient's mailbox."""
    for address in txn.recipients:
        resolution = txn.resolutions.get(address)
        if resolution is None or not _local_only(resolution):
            return ACCEPT  # a remote recipient (or one not looked up here) takes it
        if any(quota.fits(a, size) for a in resolution.accounts):
            return ACCEPT
    return Verdict(reply=R552_MAILBOX_FULL)


def install(hooks: Hooks) -> None:
    hooks.recipient_checks.append(recipient_has_room)
    hooks.size_checks.append(message_fits)
