"""Local delivery to a mailbox without room: deferred, then bounced with 5.2.2."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from postroom import store
from postroom.store import queue as queue_store
from tests.integration.delivery.harness import message, settings_for
from tests.support import Tenant


async def full_account(tenant: Tenant, local: str) -> store.Account:
    """An account whose quota is already used up."""
    account = await tenant.account(local, quota_bytes=len(message()) + 200)
    inbox = await store.get_mailbox(tenant.conn, account.id, "INBOX")
    assert inbox is not None
    await store.append_message(tenant.conn, inbox.id, message())
    return account


async def test_a_full_mailbox_defers_the_delivery_with_4_2_2(
    tenant: Tenant, make_harness: Any
) -> None:
    bob = await full_account(tenant, "bob")
    h = await make_harness(settings_for())
    spooled = await h.spool(message(), "a@example.test", [bob.address])
    await h.deliver(spooled)
    [d] = (await queue_store.get_queue_entry(h.conn, spooled.message.id)).deliveries
    assert (d.state, d.attempts) == ("deferred", 1)
    assert d.last_error == f"452 4.2.2 <{bob.address}>: mailbox full"
    assert len(await h.inbox(bob.address)) == 1


async def test_the_deferred_message_is_delivered_once_there_is_room(
    tenant: Tenant, make_harness: Any
) -> None:
    bob = await full_account(tenant, "bob")
    h = await make_harness(settings_for())
    spooled = await h.spool(message(), "a@example.test", [bob.address])
    await h.deliver(spooled)
    await store.update_account(tenant.conn, bob.address, quota_bytes=None)
    h.clock.advance(timedelta(minutes=30))
    await h.deliver(spooled)
    [d] = (await queue_store.get_queue_entry(h.conn, spooled.message.id)).deliveries
    assert d.state == "delivered"
    assert len(await h.inbox(bob.address)) == 2


async def test_at_the_end_of_the_lifetime_a_full_mailbox_bounces_with_5_2_2(
    tenant: Tenant, make_harness: Any
) -> None:
    alice = await tenant.account("alice")
    bob = await full_account(tenant, "bob")
    h = await make_harness(settings_for(POSTROOM_MAX_QUEUE_LIFETIME="1h"))
    spooled = await h.spool(message(), alice.address, [bob.address])
    await h.deliver(spooled)
    h.clock.advance(timedelta(hours=1))
    await h.deliver(spooled)
    [d] = (await queue_store.get_queue_entry(h.conn, spooled.message.id)).deliveries
    assert (d.state, d.last_error) == ("bounced", f"552 5.2.2 <{bob.address}>: mailbox full")
    [dsn] = await h.inbox(alice.address)
    assert b"Status: 5.2.2" in dsn


async def test_with_over_quota_bounce_a_full_mailbox_bounces_at_once(
    tenant: Tenant, make_harness: Any
) -> None:
    alice = await tenant.account("alice")
    bob = await full_account(tenant, "bob")
    h = await make_harness(settings_for(POSTROOM_OVER_QUOTA_BOUNCE="true"))
    spooled = await h.spool(message(), alice.address, [bob.address])
    await h.deliver(spooled)
    [d] = (await queue_store.get_queue_entry(h.conn, spooled.message.id)).deliveries
    assert (d.state, d.attempts) == ("bounced", 1)
    [dsn] = await h.inbox(alice.address)
    assert b"Status: 5.2.2" in dsn


async def test_an_alias_delivers_to_the_accounts_with_room_once(
    tenant: Tenant, make_harness: Any
) -> None:
    carol = await tenant.account("carol")
    bob = await full_account(tenant, "bob")
    team = tenant.address("team")
    await store.add_alias(tenant.conn, team, carol.address)
    await store.add_alias(tenant.conn, team, bob.address)
    h = await make_harness(settings_for())
    spooled = await h.spool(message(), "a@example.test", [team])
    await h.deliver(spooled)
    await store.update_account(tenant.conn, bob.address, quota_bytes=None)
    h.clock.advance(timedelta(minutes=30))
    await h.deliver(spooled)
    assert len(await h.inbox(carol.address)) == 1
    assert len(await h.inbox(bob.address)) == 2
