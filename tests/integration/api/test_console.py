"""The admin console's figures: the dashboard and every account's usage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from postroom.store import queue
from postroom.store.types import Arrival
from tests.integration.api.conftest import MakeUser, mail


async def test_dashboard_counts_this_hours_submissions_and_the_queue(
    make_user: MakeUser,
) -> None:
    admin = await make_user(is_admin=True)
    before = (await admin.client.get("/api/v1/admin/dashboard")).json()
    await queue.spool(
        admin.conn,
        mail("Out"),
        reverse_path=admin.account.address,
        recipients=["a@far.test", "b@far.test"],
        arrival=Arrival(source="api", protocol="HTTP"),
        now=datetime.now(UTC),
    )
    reply = await admin.client.get("/api/v1/admin/dashboard")
    assert reply.status_code == 200
    after = reply.json()
    assert len(after["hours"]) == 24
    assert after["hours"][-1]["submitted"] == before["hours"][-1]["submitted"] + 1
    assert after["queue"]["queued"] == before["queue"]["queued"] + 2
    start = datetime.fromisoformat(after["hours"][-1]["start"])
    assert datetime.now(UTC) - start < timedelta(hours=1)


async def test_usage_sums_each_accounts_messages_beside_its_quota(
    make_user: MakeUser,
) -> None:
    admin = await make_user(is_admin=True)
    carol = await make_user("carol")
    await carol.deliver(mail("One", "x" * 1000))
    await carol.deliver(mail("Two"), name="Archive")
    domain = carol.account.address.split("@")[1]
    reply = await admin.client.get("/api/v1/admin/usage", params={"domain": domain})
    usage = {u["address"]: u for u in reply.json()}
    assert usage[carol.account.address]["messages"] == 2
    assert usage[carol.account.address]["used_bytes"] > 1000
    assert usage[carol.account.address]["quota_bytes"] is None


async def test_usage_of_a_missing_domain_is_404(make_user: MakeUser) -> None:
    admin = await make_user(is_admin=True)
    reply = await admin.client.get("/api/v1/admin/usage", params={"domain": "nowhere.test"})
    assert reply.status_code == 404


async def test_dashboard_counts_the_spam_filters_actions(make_user: MakeUser) -> None:
    admin = await make_user(is_admin=True)
    before = {
        a["action"]: a["messages"]
        for a in (await admin.client.get("/api/v1/admin/dashboard")).json()["spam"]
    }
    for action in ("add header", "add header", "no action"):
        await queue.spool(
            admin.conn,
            mail("Checked"),
            reverse_path="someone@far.test",
            recipients=[admin.account.address],
            arrival=Arrival(source="smtp", checks={"spam": {"action": action, "score": 1.0}}),
            now=datetime.now(UTC),
        )
    after = {
        a["action"]: a["messages"]
        for a in (await admin.client.get("/api/v1/admin/dashboard")).json()["spam"]
    }
    assert after["add header"] == before.get("add header", 0) + 2
    assert after["no action"] == before.get("no action", 0) + 1
