"""A new password or a disabled account ends the account's open IMAP and POP3 sessions; a
revoked app password ends the sessions it opened, and only those."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from postroom import listener as L
from postroom import store
from postroom.api.app import create_app
from postroom.config import Settings
from postroom.store import app_passwords
from postroom.store.revocation import RevocationWatcher
from postroom.store.types import AccountId
from tests.integration.access.imap_support import running_imap
from tests.integration.access.pop3_support import in_thread, running_pop3
from tests.integration.api.conftest import client_for
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
    heard: list[tuple[AccountId, int | None]] = []
    watcher = RevocationWatcher(database_url, lambda *revoked: heard.append(revoked))
    await watcher.start()
    try:
        await asyncio.wait_for(watcher.listening.wait(), 10)
        await store.set_password(tenant.conn, alice.address, "pw-2")
        await store.update_account(tenant.conn, alice.address, disabled=True)
        phone, _secret = await app_passwords.create_app_password(tenant.conn, alice.id, "Phone")
        await app_passwords.revoke_app_password(tenant.conn, alice.id, phone.id)
        for _ in range(100):
            if len(heard) == 3:
                break
            await asyncio.sleep(0.05)
    finally:
        await watcher.stop()
    assert heard == [(alice.id, None), (alice.id, None), (alice.id, phone.id)]


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


def two_sessions_then_wait(
    port: int, app_login: bytes, password_login: bytes, revoke: Callable[[], None]
) -> tuple[bytes, bytes]:
    """An IMAP session logged in with an app password and one with the account's password;
    the app password is revoked: the first session's next line, then the second's answer to
    a NOOP."""
    first = socket.create_connection(("127.0.0.1", port), timeout=20)
    second = socket.create_connection(("127.0.0.1", port), timeout=20)
    first_file, second_file = first.makefile("rb"), second.makefile("rb")
    try:
        for sock, file, login in (
            (first, first_file, app_login),
            (second, second_file, password_login),
        ):
            file.readline()
            sock.sendall(login)
            assert file.readline().startswith(b"a OK"), login
        revoke()
        ended = first_file.readline()
        second.sendall(b"b NOOP\r\n")
        return ended, second_file.readline()
    finally:
        first.close()
        second.close()


async def test_revoking_an_app_password_through_the_api_ends_the_imap_sessions_it_opened(
    database_url: str, redis_url: str, tmp_path: Path, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "pw-1")
    phone, secret = await app_passwords.create_app_password(tenant.conn, alice.id, "Phone")
    app = create_app(
        Settings(database_url=database_url, redis_url=redis_url, hostname="mail.test"),
        pool_size=2,
    )
    loop = asyncio.get_running_loop()
    async with app.router.lifespan_context(app), client_for(app) as api:
        token = await api.post(
            "/api/v1/tokens", json={"address": alice.address, "password": "pw-1"}
        )
        api.headers["Authorization"] = f"Bearer {token.json()['token']}"

        def revoke() -> None:
            reply = asyncio.run_coroutine_threadsafe(
                api.delete(f"/api/v1/account/app-passwords/{phone.id}"), loop
            ).result(10)
            assert reply.status_code == 204, reply.text

        async with (
            running_imap(database_url, tmp_path) as imap,
            watching(database_url, imap.server.listener),
        ):
            ended, still = await in_thread(
                two_sessions_then_wait,
                imap.port,
                f'a LOGIN "{alice.address}" "{secret}"\r\n'.encode(),
                f'a LOGIN "{alice.address}" "pw-1"\r\n'.encode(),
                revoke,
            )
    assert ended == b"* BYE [UNAVAILABLE] Credentials changed, log in again\r\n"
    assert still == b"b OK NOOP completed\r\n"
