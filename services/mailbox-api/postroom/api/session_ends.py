"""Ended web sessions, heard from every process: an open event stream of a session that was
logged out, ended from the settings, or revoked with its account's password closes at once.

One LISTEN connection per process on `revocation.ENDED_CHANNEL` (the store announces the
account whenever it deletes web sessions); the streams of that account are woken and each
checks whether its own session still exists. A reconnect wakes every stream (a notice may
have been missed while the connection was down).
"""

from __future__ import annotations

import asyncio
import contextlib

import psycopg
import structlog

from postroom.db import connect
from postroom.errors import StoreError
from postroom.store.revocation import listen_ended
from postroom.store.types import AccountId

log = structlog.get_logger("postroom.api")


class SessionEnds:
    def __init__(self, url: str, *, retry_delay: float = 1.0) -> None:
        self.url = url
        self.retry_delay = retry_delay
        self._watchers: dict[AccountId, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def watch(self, account_id: AccountId) -> asyncio.Event:
        """An event set whenever some web session of the account may have ended."""
        event = asyncio.Event()
        self._watchers.setdefault(account_id, set()).add(event)
        return event

    def unwatch(self, account_id: AccountId, event: asyncio.Event) -> None:
        group = self._watchers.get(account_id)
        if group is not None:
            group.discard(event)
            if not group:
                del self._watchers[account_id]

    def _wake(self, account_id: AccountId | None) -> None:
        groups = (
            self._watchers.values()
            if account_id is None
            else [self._watchers.get(account_id, set())]
        )
        for group in list(groups):
            for event in group:
                event.set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="postroom-session-ends")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        first = True
        while True:
            try:
                conn = await connect(self.url, autocommit=True)
                try:
                    await listen_ended(conn)
                    self.listening.set()
                    if not first:
                        self._wake(None)
                    first = False
                    async for note in conn.notifies():
                        if note.payload.isdigit():
                            self._wake(AccountId(int(note.payload)))
                finally:
                    self.listening.clear()
                    await conn.close()
            except (psycopg.Error, StoreError, OSError) as exc:
                log.warning("api.session_ends.reconnecting", error=str(exc)[:200])
            await asyncio.sleep(self.retry_delay)
