"""Submission identity: the From: and Sender: of a submitted message must be the account's.

RFC 6409 §8 lets a submission server check what a message claims: an authenticated user may
put in From: (and Sender:) only their own address, one of their aliases, or a plus-tagged form
of one that nobody else owns; anything else is refused with 550 5.7.1, so that no user can send
as ``ceo@`` the domain. The envelope sender is held to the same rule at MAIL
(`policy.check_sender`).
"""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses

import psycopg
from psycopg_pool import AsyncConnectionPool

from postroom import store
from postroom.db import Conn
from postroom.errors import StoreError
from postroom.smtp_in import policy
from postroom.smtp_in import replies as R
from postroom.smtp_in.session import ACCEPT, Envelope, Hooks, MessageCheck, Verdict

# RFC 3463 §3.8: X.7.1 delivery not authorized, message refused.
R550_FROM_NOT_OWNED = R.Reply(
    550, "5.7.1", "From or Sender header address not owned by the authenticated user"
)
R451_DATABASE = R.R451_DATABASE


def header_senders(message: bytes) -> list[str]:
    """Every address of the From: and Sender: fields (RFC 5322 §3.6.2), as written."""
    end = message.find(b"\r\n\r\n")
    head = message[: end + 2] if end >= 0 else message
    fields = BytesHeaderParser(policy=compat32).parsebytes(head)
    values = [str(v) for name in ("From", "Sender") for v in fields.get_all(name, [])]
    return [address for _name, address in getaddresses(values) if address]


def check_headers(pool: AsyncConnectionPool[Conn], db_timeout: float) -> MessageCheck:
    async def check(envelope: Envelope, message: bytes) -> Verdict:
        if not envelope.port.is_submission or envelope.account is None:
            return ACCEPT
        tagged = []
        domain = envelope.account.address.rpartition("@")[2]
        for written in header_senders(message):
            # RFC 6409 §8.4: an address without a domain is the user's own domain's.
            address = written if "@" in written else f"{written}@{domain}"
            owner = policy.ownership(address, envelope.owned)
            if owner == "foreign":
                return Verdict(reply=R550_FROM_NOT_OWNED)
            if owner == "tag":
                tagged.append(address)
        if tagged:
            try:
                async with pool.connection(timeout=db_timeout) as conn:
                    for address in tagged:
                        if await store.address_taken(conn, address):
                            return Verdict(reply=R550_FROM_NOT_OWNED)
            except (psycopg.Error, StoreError):
                return Verdict(reply=R451_DATABASE)
        return ACCEPT

    return check


def install(hooks: Hooks, pool: AsyncConnectionPool[Conn], db_timeout: float) -> None:
    # It reads the header section only: a header check, so a large message stays in its file.
    hooks.header_checks.append(check_headers(pool, db_timeout))
