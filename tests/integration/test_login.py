"""The one login path: identities canonicalised, argon2 without a database connection held,
successful verifications remembered until the password changes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from psycopg_pool import AsyncConnectionPool

from postroom import auth, store
from postroom.db import Conn, create_pool
from postroom.login import LoginPath
from tests.support import Tenant


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Conn]]:
    p = create_pool(database_url, min_size=1, max_size=2)
    await p.open()
    try:
        yield p
    finally:
        await p.close()


class CountingVerify:
    """auth.verify_password, counting its calls and the pool's connections in use."""

    def __init__(self, pool: AsyncConnectionPool[Conn]) -> None:
        self.pool = pool
        self.calls = 0
        self.in_use: list[int] = []
        self.real = auth.verify_password

    def __call__(self, stored: str | None, secret: str) -> bool:
        self.calls += 1
        stats = self.pool.get_stats()
        self.in_use.append(stats["pool_size"] - stats.get("pool_available", 0))
        return self.real(stored, secret)


@pytest.fixture
def verify(pool: AsyncConnectionPool[Conn], monkeypatch: pytest.MonkeyPatch) -> CountingVerify:
    counting = CountingVerify(pool)
    monkeypatch.setattr(auth, "verify_password", counting)
    return counting


@pytest.mark.parametrize(
    "spelling",
    ["{a}", "{A}", "{a}.", "<{a}>", " {a} ", "{local}@{DOMAIN}."],
    ids=["plain", "upper", "trailing-dot", "brackets", "spaces", "upper-domain-dot"],
)
async def test_every_spelling_of_an_identity_is_one_account(
    pool: AsyncConnectionPool[Conn], tenant: Tenant, spelling: str
) -> None:
    alice = await tenant.account("alice", "pw-1")
    local, _, domain = alice.address.partition("@")
    identity = spelling.format(a=alice.address, A=alice.address.upper(), local=local,
                               DOMAIN=domain.upper())  # fmt: skip
    result = await LoginPath(pool).login(identity, "pw-1", client_ip="192.0.2.1", service="t")
    assert result.outcome == "ok"
    assert result.account is not None
    assert result.account.id == alice.id


async def test_argon2_runs_with_no_database_connection_held(
    pool: AsyncConnectionPool[Conn], tenant: Tenant, verify: CountingVerify
) -> None:
    alice = await tenant.account("alice", "pw-1")
    path = LoginPath(pool)
    assert (await path.login(alice.address, "pw-1", client_ip=None, service="t")).ok
    assert (await path.login(alice.address, "nope", client_ip=None, service="t")).outcome == (
        "wrong"
    )
    assert verify.in_use == [0, 0]


async def test_a_repeated_login_is_not_verified_again(
    pool: AsyncConnectionPool[Conn], tenant: Tenant, verify: CountingVerify
) -> None:
    alice = await tenant.account("alice", "pw-1")
    path = LoginPath(pool)
    for _ in range(5):
        assert (await path.login(alice.address, "pw-1", client_ip=None, service="t")).ok
    assert verify.calls == 1


async def test_a_wrong_secret_is_never_taken_from_memory(
    pool: AsyncConnectionPool[Conn], tenant: Tenant, verify: CountingVerify
) -> None:
    alice = await tenant.account("alice", "pw-1")
    path = LoginPath(pool)
    assert (await path.login(alice.address, "pw-1", client_ip=None, service="t")).ok
    for _ in range(3):
        result = await path.login(alice.address, "pw-2", client_ip=None, service="t")
        assert result.outcome == "wrong"
    assert verify.calls == 4


async def test_a_changed_password_is_seen_at_the_next_login(
    pool: AsyncConnectionPool[Conn], tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "pw-1")
    path = LoginPath(pool)
    assert (await path.login(alice.address, "pw-1", client_ip=None, service="t")).ok
    await store.set_password(tenant.conn, alice.address, "pw-2")
    old = await path.login(alice.address, "pw-1", client_ip=None, service="t")
    assert old.outcome == "wrong"
    assert (await path.login(alice.address, "pw-2", client_ip=None, service="t")).ok


async def test_a_disabled_account_cannot_log_in_even_from_memory(
    pool: AsyncConnectionPool[Conn], tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "pw-1")
    path = LoginPath(pool)
    assert (await path.login(alice.address, "pw-1", client_ip=None, service="t")).ok
    await store.update_account(tenant.conn, alice.address, disabled=True)
    result = await path.login(alice.address, "pw-1", client_ip=None, service="t")
    assert result.outcome == "wrong"


async def test_an_unknown_identity_costs_a_verification_too(
    pool: AsyncConnectionPool[Conn], verify: CountingVerify
) -> None:
    result = await LoginPath(pool).login("nobody@nowhere.test", "x", client_ip=None, service="t")
    assert result.outcome == "wrong"
    assert verify.calls == 1
