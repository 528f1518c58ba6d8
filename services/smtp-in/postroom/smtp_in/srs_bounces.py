"""RCPT TO an SRS address of ours: a bounce to forwarded mail, sent back to its sender."""

from __future__ import annotations

from functools import partial

from postroom import srs, store
from postroom.config import Settings
from postroom.db import Conn
from postroom.smtp_in import replies as R
from postroom.smtp_in.replies import SmtpError


async def srs_target(conn: Conn, settings: Settings, address: str) -> str | None:
    """The original sender an SRS address of one of our domains goes back to; None when
    ``address`` is not such an address. A forged or expired one is 550 5.1.1: no address
    here would take it (and accepting it would make us a relay)."""
    try:
        return await srs.bounce_target(settings, address, partial(store.is_local_domain, conn))
    except srs.InvalidSrs:
        raise SmtpError(R.R550_NO_SUCH_USER, "srs_invalid") from None
