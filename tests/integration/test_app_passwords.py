"""App passwords through the one login path: they open IMAP (imaplib on a real socket), are
refused by the web login, note their last use, and stop working once revoked."""

from __future__ import annotations

import imaplib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool

from postroom.db import Conn, create_pool
from postroom.errors import InvalidInput
from postroom.login import LoginPath
from postroom.store import app_passwords
from tests.integration.access.imap_support import ImapEndpoint, running_imap
from tests.integration.access.pop3_support import in_thread
from tests.support import Tenant


@pytest.fixture
async def imap(database_url: str, tmp_path: Path) -> AsyncIterator[ImapEndpoint]:
    async with running_imap(database_url, tmp_path) as endpoint:
        yield endpoint


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Conn]]:
    p = create_pool(database_url, min_size=1, max_size=2)
    await p.open()
    yield p
    await p.close()


def imap_login(endpoint: ImapEndpoint, address: str, secret: str) -> str:
    client = imaplib.IMAP4(endpoint.host, endpoint.port, timeout=30)
    try:
        typ, _ = client.login(address, secret)
        client.logout()
        return str(typ)
    except imaplib.IMAP4.error as exc:
        client.shutdown()
        return f"NO {exc}"


async def test_an_app_password_opens_imap_and_notes_its_use(
    imap: ImapEndpoint, conn: Conn, tenant: Tenant
) -> None:
    account = await tenant.account("alice", "main-password-1")
    record, secret = await app_passwords.create_app_password(conn, account.id, "Phone")
    assert record.last_used_at is None
    assert await in_thread(imap_login, imap, account.address, secret) == "OK"
    [listed] = await app_passwords.list_app_passwords(conn, account.id)
    assert listed.last_used_at is not None
    assert listed.last_used_from == "127.0.0.1"
    assert await in_thread(imap_login, imap, account.address, "main-password-1") == "OK"


async def test_a_revoked_app_password_is_refused(
    imap: ImapEndpoint, conn: Conn, tenant: Tenant
) -> None:
    account = await tenant.account("alice", "main-password-1")
    record, secret = await app_passwords.create_app_password(conn, account.id, "Old laptop")
    assert await in_thread(imap_login, imap, account.address, secret) == "OK"
    await app_passwords.revoke_app_password(conn, account.id, record.id)
    assert (await in_thread(imap_login, imap, account.address, secret)).startswith("NO")


async def test_the_web_login_refuses_app_passwords(
    pool: AsyncConnectionPool[Conn], conn: Conn, tenant: Tenant
) -> None:
    account = await tenant.account("alice", "main-password-1")
    _, secret = await app_passwords.create_app_password(conn, account.id, "Phone")
    path = LoginPath(pool)
    web = await path.login(account.address, secret, client_ip="192.0.2.1", service="web")
    assert web.outcome == "wrong"
    smtp = await path.login(account.address, secret, client_ip="192.0.2.1", service="smtp")
    assert smtp.outcome == "ok"
    path.close()


async def test_an_app_password_needs_a_name(conn: Conn, tenant: Tenant) -> None:
    account = await tenant.account("alice")
    with pytest.raises(InvalidInput, match="name the device or program"):
        await app_passwords.create_app_password(conn, account.id, "   ")


async def test_a_login_says_which_app_password_opened_it(
    pool: AsyncConnectionPool[Conn], conn: Conn, tenant: Tenant
) -> None:
    account = await tenant.account("alice", "main-password-1")
    await app_passwords.create_app_password(conn, account.id, "Laptop")
    phone, secret = await app_passwords.create_app_password(conn, account.id, "Phone")
    path = LoginPath(pool)
    try:
        with_app = await path.login(account.address, secret, client_ip=None, service="imap")
        with_password = await path.login(
            account.address, "main-password-1", client_ip=None, service="imap"
        )
    finally:
        path.close()
    assert (with_app.outcome, with_app.app_password_id) == ("ok", phone.id)
    assert (with_password.outcome, with_password.app_password_id) == ("ok", None)
