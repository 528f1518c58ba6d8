"""Isolation: a poison queue entry fails alone, is held after N internal failures, and the
rest of the queue (deferred mail above all) keeps moving; release puts it back."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from postroom.delivery import bounce, remote
from postroom.delivery.sweep import dispatch_due
from postroom.store import queue as queue_store
from postroom.store.types import RecipientSpec
from tests.integration.delivery.harness import Sink, message, settings_for
from tests.integration.test_cli import cli
from tests.support import Tenant

POISON = "planted poison"


@pytest.fixture
def poisoned_dsns(monkeypatch: pytest.MonkeyPatch) -> None:
    """DSNs about the poison message raise, as any bug in building one would."""
    real = bounce.build_dsn

    def build_dsn(**kw: Any) -> bytes:
        if POISON.encode() in kw["original"]:
            raise RuntimeError("planted poison")
        return real(**kw)

    monkeypatch.setattr(bounce, "build_dsn", build_dsn)


async def test_a_poison_dsn_is_held_and_deferred_mail_is_still_retried(
    database_url: str, tenant: Tenant, make_harness: Any, sink: Sink, poisoned_dsns: None
) -> None:
    await tenant.account("alice")
    await tenant.account("bob")
    h = await make_harness(settings_for(sink, POSTROOM_MAX_INTERNAL_FAILURES="3"))
    poison = await h.spool(
        message(body=POISON),
        tenant.address("alice"),
        [RecipientSpec(tenant.address("bob"), None, "SUCCESS")],
    )
    await h.deliver(poison)  # delivered; its success DSN raises
    sink.handler.rcpt_replies["carol@remote.test"] = ["451 4.3.0 try later", "250 OK"]
    deferred = await h.spool(
        message(body="deferred, then retried"), tenant.address("alice"), ["carol@remote.test"]
    )
    await h.deliver(deferred)
    assert (await h.delivery(deferred.deliveries[0].id)).state == "deferred"

    h.clock.advance(timedelta(hours=1))
    await dispatch_due(h.courier)
    await h.run(h.dispatched.take())
    assert (await h.delivery(deferred.deliveries[0].id)).state == "delivered"
    assert [b"deferred, then retried" in r.content for r in sink.handler.received].count(True) == 1

    for _ in range(3):
        await dispatch_due(h.courier)
    [d] = (await queue_store.get_queue_entry(h.conn, poison.message.id)).deliveries
    assert (d.state, d.held_state, d.failures) == ("held", "delivered", 3)
    assert d.last_failure == "dsn failed: RuntimeError"


async def test_held_entry_is_listed_and_release_sends_its_dsn(
    database_url: str,
    tenant: Tenant,
    make_harness: Any,
    poisoned_dsns: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await tenant.account("alice")
    await tenant.account("bob")
    h = await make_harness(settings_for(POSTROOM_MAX_INTERNAL_FAILURES="1"))
    poison = await h.spool(
        message(body=POISON),
        tenant.address("alice"),
        [RecipientSpec(tenant.address("bob"), None, "SUCCESS")],
    )
    await h.deliver(poison)
    qid = poison.message.id
    listed = cli("queue", "list", database_url=database_url)
    assert listed.returncode == 0
    assert (
        f"held      <{tenant.address('bob')}> (dsn failed: RuntimeError;"
        f" release with: postroom queue release {qid})"
    ) in listed.stdout
    shown = cli("queue", "show", str(qid), database_url=database_url)
    assert "held after 1 internal failure(s), last: dsn failed: RuntimeError (was delivered)" in (
        shown.stdout
    )

    monkeypatch.undo()  # the bug is fixed
    released = cli("queue", "release", str(qid), database_url=database_url)
    assert (released.returncode, released.stdout) == (
        0,
        f"released queue entry {qid}: 0 pending deliveries due now\n",
    )
    [d] = (await queue_store.get_queue_entry(h.conn, qid)).deliveries
    assert (d.state, d.failures) == ("delivered", 0)
    await dispatch_due(h.courier)
    await h.run(h.dispatched.take())
    [dsn] = await h.inbox(tenant.address("alice"))
    assert b"Action: delivered" in dsn


async def test_an_exception_in_an_attempt_defers_and_then_holds(
    tenant: Tenant, make_harness: Any, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise UnicodeEncodeError("ascii", "é", 0, 1, "planted")

    monkeypatch.setattr(remote, "send", broken)
    h = await make_harness(settings_for(sink, POSTROOM_MAX_INTERNAL_FAILURES="2"))
    spooled = await h.spool(message(), "alice@example.test", ["carol@remote.test"])
    await h.deliver(spooled)
    d = await h.delivery(spooled.deliveries[0].id)
    assert (d.state, d.attempts, d.failures) == ("deferred", 1, 1)
    assert d.last_error == "4.3.0 internal error in remote delivery: UnicodeEncodeError"
    h.clock.advance(timedelta(hours=1))
    await h.deliver(spooled)
    d = await h.delivery(spooled.deliveries[0].id)
    assert (d.state, d.held_state, d.attempts) == ("held", "deferred", 2)
    h.clock.advance(timedelta(hours=1))
    await dispatch_due(h.courier)
    assert spooled.deliveries[0].id not in h.dispatched.take()  # held: never dispatched


async def test_a_delivery_whose_worker_died_too_often_is_held(
    tenant: Tenant, make_harness: Any
) -> None:
    h = await make_harness(settings_for(POSTROOM_MAX_INTERNAL_FAILURES="2"))
    spooled = await h.spool(message(), "alice@example.test", ["carol@remote.test"])
    [did] = [d.id for d in spooled.deliveries]
    for _ in range(2):  # a worker claims it and dies: the lease runs out with no outcome
        claimed = await queue_store.claim(
            h.conn, owner="dead", lease=timedelta(minutes=1), now=h.clock(), ids=[did]
        )
        assert len(claimed) == 1
        h.clock.advance(timedelta(minutes=2))
        assert (await h.delivery(did)).state == "queued"
    assert await h.courier.deliver([did]) == 0
    d = await h.delivery(did)
    assert (d.state, d.failures) == ("held", 2)
    assert d.last_failure == "the worker holding it stopped without an outcome 2 times"


async def test_a_held_delivery_can_be_bounced_from_the_queue(
    database_url: str, tenant: Tenant, make_harness: Any
) -> None:
    await tenant.account("alice")
    h = await make_harness(settings_for())
    spooled = await h.spool(message(), tenant.address("alice"), ["carol@remote.test"])
    [did] = [d.id for d in spooled.deliveries]
    assert await queue_store.note_failure(h.conn, [did], error="x", max_failures=1) == [did]
    result = cli("queue", "delete", str(spooled.message.id), "--bounce", database_url=database_url)
    assert result.stdout == f"bounced 1 delivery of queue entry {spooled.message.id}\n"
    d = await h.delivery(did)
    assert (d.state, d.held_state) == ("bounced", None)
