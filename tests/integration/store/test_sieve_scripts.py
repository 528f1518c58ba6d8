"""Sieve scripts in the store: compiled when stored, one active per account, vacation state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from postroom.db import Conn
from postroom.errors import AlreadyExists, LimitExceeded, NotFound
from postroom.sieve import SieveSyntaxError
from postroom.store import sieve as sieve_store
from tests.support import Tenant

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
LIMITS = {"max_size": 1024, "max_scripts": 3}


async def test_put_list_get(conn: Conn, tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    await sieve_store.put_script(conn, alice.id, "main", "keep;", now=NOW, **LIMITS)
    await sieve_store.put_script(conn, alice.id, "main", "discard;", now=NOW, **LIMITS)
    (listed,) = await sieve_store.list_scripts(conn, alice.id)
    assert (listed.name, listed.active, listed.size) == ("main", False, 8)
    script = await sieve_store.get_script(conn, alice.id, "main")
    assert script is not None
    assert script.source == "discard;"


async def test_a_script_that_does_not_compile_is_not_stored(conn: Conn, tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    with pytest.raises(SieveSyntaxError) as caught:
        await sieve_store.put_script(conn, alice.id, "bad", "keep;\nfrob;", now=NOW, **LIMITS)
    assert caught.value.line == 2
    assert await sieve_store.list_scripts(conn, alice.id) == []


async def test_size_and_count_limits(conn: Conn, tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    with pytest.raises(SieveSyntaxError, match="more than the limit"):
        await sieve_store.put_script(conn, alice.id, "big", "keep;" * 300, now=NOW, **LIMITS)
    for name in ("a", "b", "c"):
        await sieve_store.put_script(conn, alice.id, name, "keep;", now=NOW, **LIMITS)
    with pytest.raises(LimitExceeded):
        await sieve_store.put_script(conn, alice.id, "d", "keep;", now=NOW, **LIMITS)
    await sieve_store.put_script(conn, alice.id, "a", "discard;", now=NOW, **LIMITS)


async def test_one_active_script(conn: Conn, tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    await sieve_store.put_script(conn, alice.id, "a", "keep;", now=NOW, activate=True, **LIMITS)
    await sieve_store.put_script(conn, alice.id, "b", "discard;", now=NOW, **LIMITS)
    await sieve_store.set_active(conn, alice.id, "b")
    assert [(s.name, s.active) for s in await sieve_store.list_scripts(conn, alice.id)] == [
        ("a", False),
        ("b", True),
    ]
    active = await sieve_store.active_script(conn, alice.id)
    assert active is not None
    assert active.ops[0].name == "discard"
    await sieve_store.set_active(conn, alice.id, None)
    assert await sieve_store.active_script(conn, alice.id) is None
    with pytest.raises(NotFound):
        await sieve_store.set_active(conn, alice.id, "zzz")


async def test_the_active_script_cannot_be_deleted(conn: Conn, tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    await sieve_store.put_script(conn, alice.id, "a", "keep;", now=NOW, activate=True, **LIMITS)
    with pytest.raises(sieve_store.ScriptIsActive):
        await sieve_store.delete_script(conn, alice.id, "a")
    await sieve_store.set_active(conn, alice.id, None)
    await sieve_store.delete_script(conn, alice.id, "a")
    with pytest.raises(NotFound):
        await sieve_store.delete_script(conn, alice.id, "a")


async def test_rename(conn: Conn, tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    await sieve_store.put_script(conn, alice.id, "a", "keep;", now=NOW, activate=True, **LIMITS)
    await sieve_store.put_script(conn, alice.id, "b", "keep;", now=NOW, **LIMITS)
    with pytest.raises(AlreadyExists):
        await sieve_store.rename_script(conn, alice.id, "a", "b")
    await sieve_store.rename_script(conn, alice.id, "a", "c")
    assert [(s.name, s.active) for s in await sieve_store.list_scripts(conn, alice.id)] == [
        ("b", False),
        ("c", True),
    ]


async def test_scripts_are_per_account(conn: Conn, tenant: Tenant) -> None:
    alice, bob = await tenant.account("alice"), await tenant.account("bob")
    await sieve_store.put_script(conn, alice.id, "a", "keep;", now=NOW, activate=True, **LIMITS)
    assert await sieve_store.list_scripts(conn, bob.id) == []
    assert await sieve_store.active_script(conn, bob.id) is None


async def test_vacation_reply_once_per_period(conn: Conn, tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    claim = {"sender": "Bob@example.org", "handle": "h", "period": timedelta(days=7)}
    assert await sieve_store.claim_vacation_reply(conn, alice.id, now=NOW, **claim)
    assert not await sieve_store.claim_vacation_reply(
        conn, alice.id, now=NOW + timedelta(days=6), **claim
    )
    assert await sieve_store.claim_vacation_reply(
        conn, alice.id, now=NOW + timedelta(days=7), **claim
    )
    other = {**claim, "handle": "other"}
    assert await sieve_store.claim_vacation_reply(conn, alice.id, now=NOW, **other)


async def test_housekeeping_forgets_vacation_records_past_the_longest_period(
    conn: Conn, tenant: Tenant
) -> None:
    from postroom.store import housekeeping

    alice = await tenant.account("alice")
    claim = {"handle": "h", "period": timedelta(days=7)}
    await sieve_store.claim_vacation_reply(conn, alice.id, sender="old@x.test", now=NOW, **claim)
    later = NOW + timedelta(days=80)
    await sieve_store.claim_vacation_reply(conn, alice.id, sender="new@x.test", now=later, **claim)
    removed = await housekeeping.collect(
        conn,
        now=NOW + timedelta(days=91),
        queue_retention=timedelta(days=7),
        expunged_retention=timedelta(days=7),
    )
    assert removed.vacation_replies >= 1
    cur = await conn.execute(
        "SELECT sender FROM sieve_vacation_replies WHERE account_id = %s", (alice.id,)
    )
    assert [r["sender"] for r in await cur.fetchall()] == ["new@x.test"]
