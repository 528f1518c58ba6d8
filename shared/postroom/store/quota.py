"""Quotas: what an account may still store, and the error the store raises past it.

The count itself lives in Postgres (migration 0020): statement triggers on ``messages`` keep
``accounts.used_bytes`` and ``used_messages`` exact, and refuse, with SQLSTATE ``PRQ01``, an
insert that takes an account past ``quota_bytes`` or ``quota_messages``. The update that
counts locks the account's row, so concurrent deliveries to one account are serialised there
and the last one to commit sees what the others stored: together they cannot overshoot.
The checks here, on an `Account` read earlier, are only early answers (SMTP RCPT, end of
DATA); the trigger decides.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from postroom.errors import QuotaExceeded
from postroom.store.types import Account

QUOTA_SQLSTATE = "PRQ01"
OVER_QUOTA_TEXT = "the mailbox is full (over its quota)"


@contextmanager
def enforced() -> Iterator[None]:
    """Turn the trigger's refusal into `QuotaExceeded` (the statement stored nothing)."""
    try:
        yield
    except psycopg.Error as exc:
        if exc.sqlstate == QUOTA_SQLSTATE:
            raise QuotaExceeded(OVER_QUOTA_TEXT) from exc
        raise


def room(account: Account) -> int | None:
    """Octets the account may still store; None when it has no limit."""
    if account.quota_bytes is None:
        return None
    return max(0, account.quota_bytes - account.used_bytes)


def is_full(account: Account) -> bool:
    """Nothing more fits: no octet left, or as many messages as it may hold."""
    if account.quota_messages is not None and account.used_messages >= account.quota_messages:
        return True
    return room(account) == 0


def fits(account: Account, size: int) -> bool:
    """A message of ``size`` octets would fit (as of when ``account`` was read)."""
    if is_full(account):
        return False
    left = room(account)
    return left is None or size <= left
