"""Quotas in the store: usage kept exact, every way into a mailbox refused past the quota."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from postroom import store
from postroom.db import connect
from postroom.errors import QuotaExceeded
from postroom.store import quota
from postroom.store.types import Account
from tests.support import Tenant


def message(size: int) -> bytes:
    """A message of exactly ``size`` octets."""
    head = f"Subject: q\r\nMessage-ID: <{secrets.token_hex(8)}@example.test>\r\n\r\n".encode()
    return head + b"x" * (size - len(head))


async def fresh(tenant: Tenant, account: Account) -> Account:
    found = await store.get_account_by_id(tenant.conn, account.id)
    assert found is not None
    return found


async def box(tenant: Tenant, account: Account, name: str = "INBOX") -> store.Mailbox:
    found = await store.get_mailbox(tenant.conn, account.id, name)
    assert found is not None
    return found


async def test_usage_counts_every_copy_and_every_removal(tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    inbox, trash = await box(tenant, alice), await box(tenant, alice, "Trash")
    first = await store.append_message(tenant.conn, inbox.id, message(1000))
    await store.append_message(tenant.conn, inbox.id, message(500))
    await store.copy_messages(tenant.conn, inbox.id, [first.uid], trash.id)
    counted = await fresh(tenant, alice)
    assert (counted.used_bytes, counted.used_messages) == (2500, 3)
    await store.delete_messages(tenant.conn, inbox.id, [first.uid])
    counted = await fresh(tenant, alice)
    assert (counted.used_bytes, counted.used_messages) == (1500, 2)
    assert await store.mailbox_usage(tenant.conn, alice.id) == 1500


async def test_deleting_a_mailbox_gives_its_messages_back(tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    folder = await store.create_mailbox(tenant.conn, alice.id, "Projects")
    await store.append_message(tenant.conn, folder.id, message(800))
    await store.delete_mailbox(tenant.conn, alice.id, "Projects")
    counted = await fresh(tenant, alice)
    assert (counted.used_bytes, counted.used_messages) == (0, 0)


async def test_an_account_with_messages_can_be_deleted(tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    await store.append_message(tenant.conn, (await box(tenant, alice)).id, message(800))
    await store.delete_account(tenant.conn, alice.address)
    assert await store.get_account(tenant.conn, alice.address) is None


async def test_append_that_fits_exactly_is_stored(tenant: Tenant) -> None:
    alice = await tenant.account("alice", quota_bytes=2000)
    inbox = await box(tenant, alice)
    await store.append_message(tenant.conn, inbox.id, message(2000))
    assert (await fresh(tenant, alice)).used_bytes == 2000


async def test_append_past_the_quota_is_refused_and_stores_nothing(tenant: Tenant) -> None:
    alice = await tenant.account("alice", quota_bytes=2000)
    inbox = await box(tenant, alice)
    await store.append_message(tenant.conn, inbox.id, message(1500))
    with pytest.raises(QuotaExceeded, match="over its quota"):
        await store.append_message(tenant.conn, inbox.id, message(600))
    assert len(await store.list_uids(tenant.conn, inbox.id)) == 1
    assert (await fresh(tenant, alice)).used_bytes == 1500


async def test_the_message_count_limit_is_enforced_too(tenant: Tenant) -> None:
    alice = await tenant.account("alice", quota_messages=2)
    inbox = await box(tenant, alice)
    for _ in range(2):
        await store.append_message(tenant.conn, inbox.id, message(100))
    with pytest.raises(QuotaExceeded):
        await store.append_message(tenant.conn, inbox.id, message(100))


async def test_copy_past_the_quota_copies_nothing(tenant: Tenant) -> None:
    alice = await tenant.account("alice", quota_bytes=2500)
    inbox, trash = await box(tenant, alice), await box(tenant, alice, "Trash")
    uids = [(await store.append_message(tenant.conn, inbox.id, message(800))).uid for _ in "ab"]
    with pytest.raises(QuotaExceeded):
        await store.copy_messages(tenant.conn, inbox.id, uids, trash.id)
    assert await store.list_uids(tenant.conn, trash.id) == []
    assert (await fresh(tenant, alice)).used_bytes == 1600


async def test_move_within_the_account_works_even_over_quota(tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    inbox, trash = await box(tenant, alice), await box(tenant, alice, "Trash")
    uid = (await store.append_message(tenant.conn, inbox.id, message(800))).uid
    # The quota lowered below what is stored: the account is over it, yet may still clean up.
    await store.update_account(tenant.conn, alice.address, quota_bytes=100)
    assert await store.move_messages(tenant.conn, inbox.id, [uid], trash.id) == [(uid, 1)]
    counted = await fresh(tenant, alice)
    assert (counted.used_bytes, counted.used_messages) == (800, 1)
    with pytest.raises(QuotaExceeded):
        await store.copy_messages(tenant.conn, trash.id, [1], inbox.id)


async def test_the_exemption_of_a_move_ends_with_its_transaction(tenant: Tenant) -> None:
    alice = await tenant.account("alice", quota_bytes=1000)
    inbox, trash = await box(tenant, alice), await box(tenant, alice, "Trash")
    uid = (await store.append_message(tenant.conn, inbox.id, message(800))).uid
    await store.move_messages(tenant.conn, inbox.id, [uid], trash.id)
    with pytest.raises(QuotaExceeded):
        await store.append_message(tenant.conn, inbox.id, message(800))


async def test_a_delivery_inside_a_transaction_leaves_it_usable(tenant: Tenant) -> None:
    alice = await tenant.account("alice", quota_bytes=100)
    inbox = await box(tenant, alice)
    async with tenant.conn.transaction():
        with pytest.raises(QuotaExceeded):
            async with tenant.conn.transaction():
                await store.append_message(tenant.conn, inbox.id, message(800))
        cur = await tenant.conn.execute("SELECT 1 AS one")
        assert await cur.fetchone() == {"one": 1}


async def test_concurrent_deliveries_cannot_overshoot_the_quota(
    tenant: Tenant, database_url: str
) -> None:
    alice = await tenant.account("alice", quota_bytes=3000)
    inbox = await box(tenant, alice)
    conns = [await connect(database_url, autocommit=True) for _ in range(8)]
    try:

        async def deliver(n: int) -> bool:
            try:
                await store.append_message(
                    conns[n], inbox.id, message(1000), delivery_key=f"q{n}:{alice.id}"
                )
            except QuotaExceeded:
                return False
            return True

        stored = await asyncio.gather(*(deliver(n) for n in range(8)))
    finally:
        for c in conns:
            await c.close()
    assert stored.count(True) == 3
    counted = await fresh(tenant, alice)
    assert (counted.used_bytes, counted.used_messages) == (3000, 3)
    assert len(await store.list_uids(tenant.conn, inbox.id)) == 3


def test_room_and_fit_follow_the_account_as_read() -> None:
    from datetime import UTC, datetime

    def account(**kw: int | None) -> Account:
        return Account(store.AccountId(1), store.DomainId(1), "a@b.test", False, False,
                       created_at=datetime.now(UTC), **kw)  # type: ignore[arg-type]  # fmt: skip

    assert quota.room(account(quota_bytes=None)) is None
    assert quota.fits(account(quota_bytes=None), 10**12)
    assert quota.room(account(quota_bytes=100, used_bytes=150)) == 0
    assert quota.is_full(account(quota_bytes=100, used_bytes=100))
    assert quota.fits(account(quota_bytes=100, used_bytes=40), 60)
    assert not quota.fits(account(quota_bytes=100, used_bytes=40), 61)
    assert quota.is_full(account(quota_bytes=None, quota_messages=2, used_messages=2))
