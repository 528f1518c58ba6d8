"""Fixtures of the API tests: the app on the test database, clients logged in as tenants."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from fastapi import FastAPI

from postroom import store
from postroom.api.app import create_app
from postroom.config import Settings
from postroom.db import Conn
from postroom.store.types import Account, Mailbox
from tests.support import Tenant


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def app(database_url: str, redis_url: str) -> AsyncIterator[FastAPI]:
    settings = Settings(database_url=database_url, redis_url=redis_url, hostname="mail.test")
    application = create_app(settings, pool_size=4)
    async with application.router.lifespan_context(application):
        yield application


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def live_url(database_url: str, redis_url: str) -> AsyncIterator[str]:
    """The app served by uvicorn on a free loopback port (streams need a real server)."""
    settings = Settings(database_url=database_url, redis_url=redis_url, hostname="mail.test")
    config = uvicorn.Config(
        create_app(settings, pool_size=4),
        host="127.0.0.1",
        port=0,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    # A socket bound first: its port is known at once, and early connections wait in its
    # backlog until the server accepts them.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, 10)
    sock.close()


def client_for(app: FastAPI, ip: str = "127.0.0.1", **kw: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://mail.test", timeout=30, **kw)


@dataclass
class User:
    """An account with a client logged in by bearer token."""

    account: Account
    password: str
    client: httpx.AsyncClient
    conn: Conn

    async def mailbox(self, name: str = "INBOX") -> Mailbox:
        found = await store.get_mailbox(self.conn, self.account.id, name)
        assert found is not None
        return found

    async def deliver(self, raw: bytes, name: str = "INBOX", flags: tuple[str, ...] = ()) -> int:
        """Put a message straight into one of the user's folders; its UID."""
        box = await self.mailbox(name)
        message = await store.append_message(self.conn, box.id, raw, flags=flags)
        return message.uid


MakeUser = Callable[..., Awaitable[User]]


@pytest.fixture
async def make_user(app: FastAPI, tenant: Tenant, conn: Conn) -> AsyncIterator[MakeUser]:
    clients: list[httpx.AsyncClient] = []

    async def make(local: str | None = None, *, is_admin: bool = False) -> User:
        password = "pw-" + secrets.token_hex(4)
        account = await tenant.account(
            local or f"u{secrets.token_hex(3)}", password, is_admin=is_admin
        )
        client = client_for(app)
        clients.append(client)
        reply = await client.post(
            "/api/v1/tokens", json={"address": account.address, "password": password}
        )
        assert reply.status_code == 201, reply.text
        client.headers["Authorization"] = f"Bearer {reply.json()['token']}"
        return User(account, password, client, conn)

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def alice(make_user: MakeUser) -> User:
    return await make_user("alice")


@pytest.fixture
async def bob(make_user: MakeUser) -> User:
    return await make_user("bob")


def mail(
    subject: str = "Hello",
    body: str = "Hi there.\r\n",
    *,
    sender: str = "Carol <carol@remote.test>",
    to: str = "alice@example.test",
    date: str = "Thu, 26 Nov 2026 12:00:00 +0000",
    extra: str = "",
) -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n"
        f"Message-ID: <{secrets.token_hex(6)}@remote.test>\r\n{extra}"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    ).encode()
