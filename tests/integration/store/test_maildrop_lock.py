"""The POP3 maildrop lock: one holder per account, released with its connection."""

from __future__ import annotations

from postroom import store
from postroom.db import connect
from tests.support import Tenant


async def test_second_connection_cannot_lock_a_locked_maildrop(
    tenant: Tenant, database_url: str
) -> None:
    alice = await tenant.account("alice")
    other = await connect(database_url, autocommit=True)
    try:
        assert await store.try_lock_maildrop(tenant.conn, alice.id)
        assert not await store.try_lock_maildrop(other, alice.id)
    finally:
        await store.unlock_maildrop(tenant.conn, alice.id)
        await other.close()


async def test_unlock_lets_another_connection_lock(tenant: Tenant, database_url: str) -> None:
    alice = await tenant.account("alice")
    other = await connect(database_url, autocommit=True)
    try:
        assert await store.try_lock_maildrop(tenant.conn, alice.id)
        await store.unlock_maildrop(tenant.conn, alice.id)
        assert await store.try_lock_maildrop(other, alice.id)
    finally:
        await other.close()


async def test_a_dead_connection_releases_the_lock(tenant: Tenant, database_url: str) -> None:
    alice = await tenant.account("alice")
    holder = await connect(database_url, autocommit=True)
    assert await store.try_lock_maildrop(holder, alice.id)
    # As when the process holding it dies: its backend goes (the call waits up to 5 s for it).
    await tenant.conn.execute("SELECT pg_terminate_backend(%s, 5000)", (holder.info.backend_pid,))
    assert await store.try_lock_maildrop(tenant.conn, alice.id)
    await store.unlock_maildrop(tenant.conn, alice.id)
    await holder.close()


async def test_locks_of_different_accounts_are_independent(tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    bob = await tenant.account("bob")
    try:
        assert await store.try_lock_maildrop(tenant.conn, alice.id)
        assert await store.try_lock_maildrop(tenant.conn, bob.id)
    finally:
        await store.unlock_maildrop(tenant.conn, alice.id)
        await store.unlock_maildrop(tenant.conn, bob.id)
