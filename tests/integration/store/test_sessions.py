"""Web sessions: opaque tokens stored as hashes, expiry, logout, disabled accounts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from postroom import store
from postroom.db import Conn
from postroom.store.sessions import (
    create_session,
    delete_session,
    delete_sessions_of,
    get_session,
    token_hash,
)
from tests.support import Tenant

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


async def test_a_new_session_is_found_by_its_token(conn: Conn, tenant: Tenant) -> None:
    account = await tenant.account("alice")
    token, session = await create_session(conn, account.id, kind="cookie", now=NOW, lifetime=HOUR)
    found = await get_session(conn, token, now=NOW)
    assert found == session
    assert found.account.address == account.address
    assert found.expires_at == NOW + HOUR


async def test_only_the_hash_of_the_token_is_stored(conn: Conn, tenant: Tenant) -> None:
    account = await tenant.account("alice")
    token, _ = await create_session(conn, account.id, kind="bearer", now=NOW, lifetime=HOUR)
    cur = await conn.execute(
        "SELECT token_hash FROM web_sessions WHERE account_id = %s", (account.id,)
    )
    rows = await cur.fetchall()
    assert [bytes(r["token_hash"]) for r in rows] == [token_hash(token)]


async def test_an_expired_session_is_not_found(conn: Conn, tenant: Tenant) -> None:
    account = await tenant.account("alice")
    token, _ = await create_session(conn, account.id, kind="cookie", now=NOW, lifetime=HOUR)
    assert await get_session(conn, token, now=NOW + HOUR) is None


async def test_an_unknown_or_oversized_token_is_not_found(conn: Conn) -> None:
    assert await get_session(conn, "nope", now=NOW) is None
    assert await get_session(conn, "x" * 10_000, now=NOW) is None


async def test_logout_deletes_the_session(conn: Conn, tenant: Tenant) -> None:
    account = await tenant.account("alice")
    token, _ = await create_session(conn, account.id, kind="cookie", now=NOW, lifetime=HOUR)
    assert await delete_session(conn, token) is True
    assert await get_session(conn, token, now=NOW) is None
    assert await delete_session(conn, token) is False


async def test_a_disabled_account_has_no_live_session(conn: Conn, tenant: Tenant) -> None:
    account = await tenant.account("alice")
    token, _ = await create_session(conn, account.id, kind="cookie", now=NOW, lifetime=HOUR)
    await store.update_account(conn, account.address, disabled=True)
    assert await get_session(conn, token, now=NOW) is None


async def test_all_sessions_of_an_account_can_be_ended(conn: Conn, tenant: Tenant) -> None:
    account = await tenant.account("alice")
    for kind in ("cookie", "bearer"):
        await create_session(conn, account.id, kind=kind, now=NOW, lifetime=HOUR)  # type: ignore[arg-type]
    assert await delete_sessions_of(conn, account.id) == 2
