"""`postroom queue delete ID --bounce`: the deliveries bounce and the sweep sends the DSN."""

from __future__ import annotations

from typing import Any

from postroom.delivery.sweep import dispatch_due
from postroom.store import queue as queue_store
from tests.integration.delivery.harness import message, settings_for
from tests.integration.test_cli import cli
from tests.support import Tenant


async def test_delete_with_bounce_sends_the_sender_a_dsn(
    database_url: str, tenant: Tenant, make_harness: Any
) -> None:
    await tenant.account("alice")
    h = await make_harness(settings_for())
    spooled = await h.spool(message(), tenant.address("alice"), ["bob@elsewhere.test"])
    result = cli("queue", "delete", str(spooled.message.id), "--bounce", database_url=database_url)
    assert (result.returncode, result.stdout) == (
        0,
        f"bounced 1 delivery of queue entry {spooled.message.id}\n",
    )
    [d] = (await queue_store.get_queue_entry(h.conn, spooled.message.id)).deliveries
    assert d.state == "bounced"
    await dispatch_due(h.courier)
    await h.run(h.dispatched.take())
    [dsn] = await h.inbox(tenant.address("alice"))
    assert b"Final-Recipient: rfc822; bob@elsewhere.test" in dsn
    assert b"Status: 5.0.0" in dsn
    assert b"Diagnostic-Code: X-Postroom; 5.0.0 deleted from the queue" in dsn


async def test_delete_without_bounce_removes_the_entry_silently(
    database_url: str, tenant: Tenant, make_harness: Any
) -> None:
    await tenant.account("alice")
    h = await make_harness(settings_for())
    spooled = await h.spool(message(), tenant.address("alice"), ["bob@elsewhere.test"])
    result = cli("queue", "delete", str(spooled.message.id), database_url=database_url)
    assert (result.returncode, result.stdout) == (0, f"deleted queue entry {spooled.message.id}\n")
    await dispatch_due(h.courier)
    assert h.dispatched.ids == []
