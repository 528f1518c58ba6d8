"""Local delivery: aliases, plus addressing, catch-all, trace fields, idempotency."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage
from typing import Any

from postroom import srs, store
from postroom.store import queue as queue_store
from postroom.store.types import RecipientSpec
from tests.integration.delivery.harness import SRS_SECRET, message, settings_for
from tests.support import Tenant


async def test_local_recipient_gets_the_message_with_return_path_and_delivered_to(
    tenant: Tenant, make_harness: Any
) -> None:
    await tenant.account("bob")
    h = await make_harness(settings_for())
    spooled = await h.spool(message(), "alice@example.test", [tenant.address("bob")])
    await h.deliver(spooled)
    [raw] = await h.inbox(tenant.address("bob"))
    assert raw.startswith(
        b"Return-Path: <alice@example.test>\r\n"
        + f"Delivered-To: {tenant.address('bob')}\r\n".encode()
        + b"From: <alice@example.test>"
    )
    [d] = (await queue_store.get_queue_entry(h.conn, spooled.message.id)).deliveries
    assert (d.state, d.attempts) == ("delivered", 1)


async def test_null_sender_gets_an_empty_return_path(tenant: Tenant, make_harness: Any) -> None:
    await tenant.account("bob")
    h = await make_harness(settings_for())
    await h.deliver(await h.spool(message(), "", [tenant.address("bob")]))
    [raw] = await h.inbox(tenant.address("bob"))
    assert raw.startswith(b"Return-Path: <>\r\n")


async def test_plus_address_goes_to_the_account(tenant: Tenant, make_harness: Any) -> None:
    await tenant.account("bob")
    h = await make_harness(settings_for())
    await h.deliver(await h.spool(message(), "a@example.test", [tenant.address("bob+lists")]))
    assert len(await h.inbox(tenant.address("bob"))) == 1


async def test_alias_fans_out_to_every_local_account(tenant: Tenant, make_harness: Any) -> None:
    await tenant.account("bob")
    await tenant.account("carol")
    await store.add_alias(tenant.conn, tenant.address("team"), tenant.address("bob"))
    await store.add_alias(tenant.conn, tenant.address("team"), tenant.address("carol"))
    h = await make_harness(settings_for())
    await h.deliver(await h.spool(message(), "a@example.test", [tenant.address("team")]))
    [bob] = await h.inbox(tenant.address("bob"))
    [carol] = await h.inbox(tenant.address("carol"))
    assert f"Delivered-To: {tenant.address('carol')}\r\n".encode() in carol
    assert f"Delivered-To: {tenant.address('bob')}\r\n".encode() in bob


async def test_catch_all_takes_unknown_local_parts(tenant: Tenant, make_harness: Any) -> None:
    await tenant.account("bob")
    await store.add_alias(tenant.conn, f"@{tenant.domain.name}", tenant.address("bob"))
    h = await make_harness(settings_for())
    await h.deliver(await h.spool(message(), "a@example.test", [tenant.address("nobody")]))
    assert len(await h.inbox(tenant.address("bob"))) == 1


async def test_alias_to_a_remote_address_is_spooled_for_remote_delivery(
    tenant: Tenant, make_harness: Any, sink: Any
) -> None:
    await store.add_alias(tenant.conn, tenant.address("fwd"), "far@remote.test")
    h = await make_harness(settings_for(sink))
    spooled = await h.spool(message(), "a@example.test", [tenant.address("fwd")])
    await h.deliver(spooled)
    [received] = sink.handler.received
    assert received.rcpt_tos == ["far@remote.test"]
    # The forward leaves with an SRS sender of the alias's domain, which reverses to the sender.
    assert received.mail_from.startswith("SRS0=")
    assert received.mail_from.endswith(f"=example.test=a@{tenant.domain.name}")
    assert srs.reverse(received.mail_from, SRS_SECRET.encode(), 21) == "a@example.test"


async def test_alias_forward_keeps_a_local_sender(
    tenant: Tenant, make_harness: Any, sink: Any
) -> None:
    await store.add_alias(tenant.conn, tenant.address("fwd"), "far@remote.test")
    h = await make_harness(settings_for(sink))
    await h.deliver(await h.spool(message(), tenant.address("alice"), [tenant.address("fwd")]))
    [received] = sink.handler.received
    assert received.mail_from == tenant.address("alice")


async def test_alias_forward_keeps_the_null_sender(
    tenant: Tenant, make_harness: Any, sink: Any
) -> None:
    await store.add_alias(tenant.conn, tenant.address("fwd"), "far@remote.test")
    h = await make_harness(settings_for(sink))
    await h.deliver(await h.spool(message(), "", [tenant.address("fwd")]))
    [received] = sink.handler.received
    assert received.mail_from == "<>"  # the null reverse-path, as the sink shows it


async def test_unknown_local_recipient_bounces_to_the_local_sender(
    tenant: Tenant, make_harness: Any
) -> None:
    await tenant.account("alice")
    h = await make_harness(settings_for())
    spooled = await h.spool(message(), tenant.address("alice"), [tenant.address("ghost")])
    await h.deliver(spooled)
    [dsn] = await h.inbox(tenant.address("alice"))
    assert b"Status: 5.1.1" in dsn
    assert f"Final-Recipient: rfc822; {tenant.address('ghost')}".encode() in dsn


async def test_redelivery_after_a_crash_before_the_outcome_stores_no_second_copy(
    tenant: Tenant, make_harness: Any
) -> None:
    """The append commits, the worker dies before record_outcome; the retry finds the copy."""
    bob = await tenant.account("bob")
    h = await make_harness(settings_for())
    spooled = await h.spool(message(), "a@example.test", [tenant.address("bob")])
    [delivery] = spooled.deliveries
    inbox = await store.get_mailbox(h.conn, bob.id, "INBOX")
    assert inbox is not None
    # What the crashed run left behind: the copy, and the delivery still pending.
    await store.append_message(
        h.conn,
        inbox.id,
        blob_id=spooled.message.blob_id,
        header_prefix=b"Return-Path: <a@example.test>\r\n",
        delivery_key=f"{delivery.id}:{bob.id}",
    )
    await h.deliver(spooled)
    assert len(await h.inbox(tenant.address("bob"))) == 1
    assert (await h.delivery(delivery.id)).state == "delivered"


async def test_a_delivery_already_claimed_elsewhere_is_skipped(
    tenant: Tenant, make_harness: Any
) -> None:
    await tenant.account("bob")
    h = await make_harness(settings_for())
    spooled = await h.spool(message(), "a@example.test", [tenant.address("bob")])
    ids = [d.id for d in spooled.deliveries]
    claimed = await queue_store.claim(
        h.conn, owner="other", lease=h.courier.settings.delivery_lease, now=h.clock(), ids=ids
    )
    assert len(claimed) == 1
    assert await h.courier.deliver(ids) == 0
    assert await h.inbox(tenant.address("bob")) == []


async def test_notify_success_gets_a_delivered_dsn_once(tenant: Tenant, make_harness: Any) -> None:
    await tenant.account("alice")
    await tenant.account("bob")
    h = await make_harness(settings_for())
    spooled = await h.spool(
        b"Subject: hi\r\n\r\nhi\r\n",
        tenant.address("alice"),
        [RecipientSpec(tenant.address("bob"), notify="SUCCESS,FAILURE")],
    )
    await h.deliver(spooled)
    await h.run([d.id for d in spooled.deliveries])  # a late duplicate changes nothing
    assert len(await h.inbox(tenant.address("bob"))) == 1
    [raw] = await h.inbox(tenant.address("alice"))
    dsn = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(dsn, EmailMessage)
    _, status, _ = dsn.get_payload()  # type: ignore[misc]
    per_recipient = status.get_payload()[1]
    assert per_recipient["Action"] == "delivered"
    assert per_recipient["Final-Recipient"] == f"rfc822; {tenant.address('bob')}"


async def test_a_message_already_delivered_to_the_account_is_refused_as_a_loop(
    tenant: Tenant, make_harness: Any
) -> None:
    bob = (await tenant.account("bob")).address
    h = await make_harness(settings_for())
    looped = f"Delivered-To: {bob.upper()}\r\n".encode() + message()
    spooled = await h.spool(looped, "", [bob])
    await h.deliver(spooled)
    d = await h.delivery(spooled.deliveries[0].id)
    assert (d.state, d.last_error) == (
        "bounced",
        f"554 5.4.6 <{bob}>: mail loop, already delivered to {bob}",
    )
    assert await h.inbox(bob) == []


async def test_a_forwarded_copy_names_the_alias_and_is_refused_when_it_comes_back(
    tenant: Tenant, make_harness: Any, sink: Any
) -> None:
    alias = tenant.address("fwd")
    await store.add_alias(tenant.conn, alias, "far@remote.test")
    h = await make_harness(settings_for(sink))
    await h.deliver(await h.spool(message(), "", [alias]))
    [out] = sink.handler.received
    assert out.content.startswith(f"Delivered-To: {alias}\r\n".encode())
    back = await h.spool(out.content, "", [alias])
    await h.deliver(back)
    d = await h.delivery(back.deliveries[0].id)
    assert d.state == "bounced"
    assert d.last_error == f"554 5.4.6 <{alias}>: mail loop, already delivered to {alias}"
    assert len(sink.handler.received) == 1


async def test_forward_refused_by_the_remote_side_bounces_to_the_original_sender(
    tenant: Tenant, make_harness: Any, sink: Any
) -> None:
    """The forwarded copy's sender is our SRS address; its DSN goes to the sender behind it."""
    await store.add_alias(tenant.conn, tenant.address("fwd"), "gone@remote.test")
    sink.handler.rcpt_replies["gone@remote.test"] = ["550 5.1.1 no such user"]
    h = await make_harness(settings_for(sink))
    await h.deliver(await h.spool(message(), "alice@remote.test", [tenant.address("fwd")]))
    [dsn] = sink.handler.received
    assert (dsn.mail_from, dsn.rcpt_tos) == ("<>", ["alice@remote.test"])
    assert b"Status: 5.1.1" in dsn.content
