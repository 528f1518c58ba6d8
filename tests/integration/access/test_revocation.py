"""A new password or a disabled account ends the account's open IMAP and POP3 sessions."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from postroom import listener as L
from postroom import store
from postroom.store.revocation import RevocationWatcher
from postroom.store.types import AccountId
from tests.integration.access.imap_support import running_imap
from tests.integration.access.pop3_support import in_thread, running_pop3
from tests.support import Tenant


@asynccontextmanager
async def watching(database_url: str, listener: L.Listener) -> AsyncIterator[None]:
    watcher = RevocationWatcher(database_url, listener.end_sessions_of)
    await watcher.start()
    await asyncio.wait_for(watcher.listening.wait(), 10)
    try:
        yield
    finally:
        await watcher.stop()


async def test_the_watcher_hears_password_changes_and_disabling(
    database_url: str, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "pw-1")
    heard: list[AccountId] = []
    watcher = RevocationWatcher(database_url, heard.append)
    await watcher.start()
    try:
        await asyncio.wait_for(watcher.listening.wait(), 10)
        await store.set_password(tenant.conn, alice.address, "pw-2")
        await store.update_account(tenant.conn, alice.address, disabled=True)
        for _ in range(100):
            if len(heard) == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await watcher.stop()
    assert heard == [alice.id, alice.id]


def logged_in_then_wait(port: int, login: list[bytes], changed: Callable[[], None]) -> bytes:
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    file = sock.makefile("rb")
    try:
        file.readline()
        for line in login:
            sock.sendall(line)
            file.readline()
        changed()
        return file.readline()
    finally:
        sock.close()


async def test_a_new_password_ends_an_open_imap_session(
    database_url: str, tmp_path: Path, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "pw-1")
    loop = asyncio.get_running_loop()

    def change_password() -> None:
        asyncio.run_coroutine_threadsafe(
            store.set_password(tenant.conn, alice.address, "pw-2"), loop
        ).result(10)

    async with (
        running_imap(database_url, tmp_path) as imap,
        watching(database_url, imap.server.listener),
    ):
        login = [f'a LOGIN "{alice.address}" "pw-1"\r\n'.encode()]
        last = await in_thread(logged_in_then_wait, imap.port, login, change_password)
    assert last == b"* BYE [UNAVAILABLE] Credentials changed, log in again\r\n"


async def test_disabling_an_account_ends_an_open_pop3_session(
    database_url: str, tmp_path: Path, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "pw-1")
    loop = asyncio.get_running_loop()

    def disable() -> None:
        asyncio.run_coroutine_threadsafe(
            store.update_account(tenant.conn, alice.address, disabled=True), loop
        ).result(10)

    async with (
        running_pop3(database_url, tmp_path) as pop3,
        watching(database_url, pop3.server.listener),
    ):
        login = [f"USER {alice.address}\r\n".encode(), b"PASS pw-1\r\n"]
        last = await in_thread(logged_in_then_wait, pop3.port, login, disable)
    assert last == b"-ERR [AUTH] Credentials changed, log in again\r\n"
