"""Ending an account's sessions everywhere when its password changes or it is disabled.

`revoke` deletes the account's web sessions and API tokens and announces the account on
Postgres channels (`ENDED_CHANNEL` for the web's open streams, `CHANNEL` for the rest), in
the caller's transaction; every process that serves protocol sessions
(smtp-in, access) runs a `RevocationWatcher`, which hears the announcement and closes that
account's open IMAP, POP3, SMTP and ManageSieve sessions. A revoked app password is announced
on `CHANNEL` as ``account:app password`` (`app_passwords.revoke_app_password`): only the
sessions it opened end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TypeAlias

import psycopg
import structlog

from postroom.db import Conn, connect
from postroom.errors import StoreError
from postroom.store.types import AccountId

log = structlog.get_logger("postroom.store")

CHANNEL = "postroom_revoked"
# Announces (payload: the account id) that some of an account's web sessions or API tokens
# have ended (logged out, ended from the settings, or all of them by `revoke`), so a process
# holding a stream open for one of them (the web mail's event stream) closes it at once.
ENDED_CHANNEL = "postroom_web_sessions_ended"


async def announce_ended(conn: Conn, account_id: AccountId) -> None:
    """Web sessions of the account ended (sent when, and only if, the transaction commits)."""
    await conn.execute("SELECT pg_notify(%s, %s)", (ENDED_CHANNEL, str(int(account_id))))


async def listen_ended(conn: Conn) -> None:
    """Subscribe ``conn`` (autocommit) to the announcements of ``announce_ended``."""
    await conn.execute(f"LISTEN {ENDED_CHANNEL}")


async def revoke(conn: Conn, account_id: AccountId) -> int:
    """End the account's web sessions and tokens, and tell every process to close its
    protocol sessions (sent when, and only if, the caller's transaction commits). The number
    of web sessions ended."""
    cur = await conn.execute("DELETE FROM web_sessions WHERE account_id = %s", (account_id,))
    await announce_ended(conn, account_id)
    await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(int(account_id))))
    return cur.rowcount


# Called with the account and the revoked app password (None: every session of the account).
OnRevoked: TypeAlias = Callable[[AccountId, int | None], object]


def parse_payload(payload: str) -> tuple[AccountId, int | None] | None:
    """``account`` or ``account:app password`` as announced; None for anything else."""
    account, colon, app_password = payload.partition(":")
    if not account.isdigit() or (colon and not app_password.isdigit()):
        return None
    return AccountId(int(account)), int(app_password) if colon else None


class RevocationWatcher:
    """Listens for revoked accounts and app passwords on a connection of its own,
    reconnecting as needed, and calls ``on_revoked`` with each (account id, app password id
    or None)."""

    def __init__(self, url: str, on_revoked: OnRevoked, *, retry_delay: float = 1.0) -> None:
        self.url = url
        self.on_revoked = on_revoked
        self.retry_delay = retry_delay
        self.listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                conn = await connect(self.url, autocommit=True)
                try:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    async for note in conn.notifies():
                        if (parsed := parse_payload(note.payload)) is not None:
                            self.on_revoked(*parsed)
                finally:
                    self.listening.clear()
                    await conn.close()
            except (psycopg.Error, StoreError, OSError) as exc:
                log.warning("store.revocations.reconnecting", error=str(exc)[:200])
            await asyncio.sleep(self.retry_delay)
