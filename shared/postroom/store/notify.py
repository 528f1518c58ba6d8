"""Change announcements with Postgres LISTEN/NOTIFY, so IDLE and the web UI see mail at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import psycopg

from postroom.db import Conn, connect
from postroom.errors import StoreError
from postroom.store.types import AccountId, MailboxChange, MailboxId

CHANNEL = "postroom_mailbox"


async def notify(conn: Conn, account_id: AccountId, mailbox_id: MailboxId, modseq: int) -> None:
    """Announce a change; inside a transaction it is sent when (and only if) that commits."""
    await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{account_id}:{mailbox_id}:{modseq}"))


def parse_payload(payload: str) -> MailboxChange | None:
    try:
        account, mailbox, modseq = (int(part) for part in payload.split(":"))
    except ValueError:
        return None
    return MailboxChange(AccountId(account), MailboxId(mailbox), modseq)


async def listen(url: str) -> AsyncIterator[MailboxChange]:
    """Every mailbox change from now on, on a dedicated connection, until the caller stops."""
    conn = await connect(url, autocommit=True)
    try:
        await conn.execute(f"LISTEN {CHANNEL}")
        async for note in conn.notifies():
            change = parse_payload(note.payload)
            if change is not None:
                yield change
    finally:
        await conn.close()


class Subscription:
    """Changes to one account's mailboxes, coalesced: wait, then take the mailboxes touched."""

    def __init__(self, hub: ChangeHub, account_id: AccountId) -> None:
        self.hub = hub
        self.account_id = account_id
        self._event = asyncio.Event()
        self._mailboxes: set[MailboxId] = set()
        self._everything = False

    def _push(self, change: MailboxChange | None) -> None:
        if change is None:  # the listener reconnected: anything may have changed
            self._everything = True
        elif len(self._mailboxes) < 10_000:
            self._mailboxes.add(change.mailbox_id)
        else:
            self._everything = True
        self._event.set()

    async def wait(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 - a wake-up, not a deadline
        """Wait for a change; False on timeout."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def pending(self) -> bool:
        """Whether there are changes to take (without waiting)."""
        return self._event.is_set()

    def take(self) -> tuple[frozenset[MailboxId], bool]:
        """The mailboxes changed since the last take, and whether to assume all of them did."""
        mailboxes, everything = frozenset(self._mailboxes), self._everything
        self._mailboxes.clear()
        self._everything = False
        self._event.clear()
        return mailboxes, everything

    def close(self) -> None:
        self.hub._unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ChangeHub:
    """One LISTEN connection per process, fanned out to in-process subscribers by account.

    A session (IMAP IDLE, a web page's event stream) subscribes to its account and is woken
    within moments of a commit anywhere in the cluster; it then asks the store what changed
    (``changes_since``), so a missed or coalesced notification costs nothing. If the
    connection drops, the hub reconnects and wakes everybody to resynchronise.
    """

    def __init__(self, url: str, *, retry_delay: float = 1.0) -> None:
        self.url = url
        self.retry_delay = retry_delay
        self._subscribers: dict[AccountId, set[Subscription]] = {}
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def subscribe(self, account_id: AccountId) -> Subscription:
        subscription = Subscription(self, account_id)
        self._subscribers.setdefault(account_id, set()).add(subscription)
        return subscription

    def subscriptions(self, account_id: AccountId) -> int:
        """How many subscriptions the account has open in this process."""
        return len(self._subscribers.get(account_id, ()))

    def _unsubscribe(self, subscription: Subscription) -> None:
        group = self._subscribers.get(subscription.account_id)
        if group is not None:
            group.discard(subscription)
            if not group:
                del self._subscribers[subscription.account_id]

    def publish(self, change: MailboxChange) -> None:
        for subscription in self._subscribers.get(change.account_id, ()):
            subscription._push(change)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="postroom-change-hub")

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
            except StoreError:
                await asyncio.sleep(self.retry_delay)
                continue
            try:
                await conn.execute(f"LISTEN {CHANNEL}")
                self.listening.set()
                if not first:
                    for group in list(self._subscribers.values()):
                        for subscription in list(group):
                            subscription._push(None)
                first = False
                async for note in conn.notifies():
                    change = parse_payload(note.payload)
                    if change is not None:
                        self.publish(change)
            except psycopg.OperationalError:
                self.listening.clear()
                await asyncio.sleep(self.retry_delay)
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()
