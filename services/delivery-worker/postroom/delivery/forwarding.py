"""The envelope sender of a copy forwarded to a remote address (SRS, postroom.srs)."""

from __future__ import annotations

from functools import partial

from postroom import srs, store
from postroom.config import Settings
from postroom.db import Conn


async def forward_sender(conn: Conn, settings: Settings, reverse_path: str, via: str) -> str:
    """``reverse_path`` rewritten to SRS in the domain of ``via`` (the local address that
    forwards), so that the next hop's SPF check passes and its bounces come back here."""
    if not reverse_path:
        return reverse_path  # RFC 5321 §4.5.5: the null sender stays null
    sender_domain = reverse_path.rpartition("@")[2].lower()
    local = await store.is_local_domain(conn, sender_domain)
    domain = via.rpartition("@")[2].lower() or settings.hostname
    return srs.rewrite_sender(settings, reverse_path, sender_is_local=local, domain=domain)


async def bounce_recipient(conn: Conn, settings: Settings, reverse_path: str) -> str:
    """Where a DSN about a message from ``reverse_path`` goes: an SRS address of ours that
    verifies is the original sender's (smtp-in would send it there too); any other as is."""
    try:
        target = await srs.bounce_target(
            settings, reverse_path, partial(store.is_local_domain, conn)
        )
    except srs.InvalidSrs:
        return reverse_path
    return target or reverse_path
