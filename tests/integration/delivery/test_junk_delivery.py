"""A queue entry that smtp-in's checks marked for quarantine is filed into Junk."""

from __future__ import annotations

from typing import Any

from postroom import store
from postroom.store import queue as queue_store
from tests.integration.delivery.harness import message, settings_for
from tests.support import Tenant


async def folder_sizes(conn: Any, address: str) -> dict[str, int]:
    account = await store.get_account(conn, address)
    sizes = {}
    for name in ("INBOX", "Junk"):
        box = await store.get_mailbox(conn, account.id, name)
        assert box is not None
        sizes[name] = len(await store.list_messages(conn, box.id))
    return sizes


async def test_quarantined_message_goes_to_junk(tenant: Tenant, make_harness: Any) -> None:
    await tenant.account("bob")
    h = await make_harness(settings_for())
    checks = {"spam": {"action": "add header", "score": 7.5, "symbols": ["GTUBE"]}}
    spooled = await h.spool(
        message(),
        "a@example.test",
        [tenant.address("bob")],
        target_special_use="\\Junk",
        checks=checks,
    )
    await h.deliver(spooled)
    assert await folder_sizes(h.conn, tenant.address("bob")) == {"INBOX": 0, "Junk": 1}
    entry = await queue_store.get_queue_entry(h.conn, spooled.message.id)
    assert (entry.message.target_special_use, entry.message.checks) == ("\\Junk", checks)


async def test_message_without_target_goes_to_inbox(tenant: Tenant, make_harness: Any) -> None:
    await tenant.account("bob")
    h = await make_harness(settings_for())
    await h.deliver(await h.spool(message(), "a@example.test", [tenant.address("bob")]))
    assert await folder_sizes(h.conn, tenant.address("bob")) == {"INBOX": 1, "Junk": 0}


async def test_account_without_junk_gets_it_in_inbox(tenant: Tenant, make_harness: Any) -> None:
    account = await tenant.account("bob")
    junk = await store.get_special_use(tenant.conn, account.id, "\\Junk")
    assert junk is not None
    await store.delete_mailbox(tenant.conn, account.id, junk.name)
    h = await make_harness(settings_for())
    spooled = await h.spool(
        message(), "a@example.test", [tenant.address("bob")], target_special_use="\\Junk"
    )
    await h.deliver(spooled)
    inbox = await store.get_mailbox(h.conn, account.id, "INBOX")
    assert inbox is not None
    assert len(await store.list_messages(h.conn, inbox.id)) == 1


async def test_queue_show_prints_the_checks(
    database_url: str, tenant: Tenant, make_harness: Any
) -> None:
    from tests.integration.test_cli import cli

    await tenant.account("bob")
    h = await make_harness(settings_for())
    checks = {
        "auth_summary": {"spf": "pass", "dkim": "pass", "dmarc": "pass", "arc": "none"},
        "auth": {"dmarc": {"from_domain": "signed.test", "policy": "reject"}},
        "spam": {"action": "no action", "score": -0.5, "required_score": 15, "symbols": {}},
    }
    spooled = await h.spool(message(), "a@example.test", [tenant.address("bob")], checks=checks)
    result = cli("queue", "show", str(spooled.message.id), database_url=database_url)
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith("checks:")] == [
        "checks:      authentication: spf=pass dkim=pass dmarc=pass arc=none"
        " (From signed.test p=reject)",
        "checks:      spam filter: no action, score -0.5 of 15",
    ]
