"""Administration over the API: domains, accounts, aliases and the queue (admins only)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from postroom import store
from postroom.store import queue
from postroom.store.types import Arrival
from tests.integration.api.conftest import MakeUser, User

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


async def test_admin_adds_and_removes_a_domain(make_user: MakeUser) -> None:
    admin = await make_user(is_admin=True)
    name = f"d{secrets.token_hex(4)}.test"
    reply = await admin.client.post("/api/v1/admin/domains", json={"name": name.upper()})
    assert reply.status_code == 201
    assert reply.json()["name"] == name
    names = [d["name"] for d in (await admin.client.get("/api/v1/admin/domains")).json()]
    assert name in names
    assert (await admin.client.delete(f"/api/v1/admin/domains/{name}")).status_code == 204


async def test_a_domain_with_accounts_cannot_be_removed(make_user: MakeUser) -> None:
    admin = await make_user(is_admin=True)
    domain = admin.account.address.split("@")[1]
    reply = await admin.client.delete(f"/api/v1/admin/domains/{domain}")
    assert reply.status_code == 422
    assert reply.json()["detail"] == f"domain {domain} still has accounts; remove them first"


async def test_admin_creates_an_account_that_can_log_in(make_user: MakeUser) -> None:
    admin = await make_user(is_admin=True)
    address = f"new{secrets.token_hex(3)}@{admin.account.address.split('@')[1]}"
    reply = await admin.client.post(
        "/api/v1/admin/accounts",
        json={"address": address, "password": "s3cret!", "quota_bytes": 10**6},
    )
    assert reply.status_code == 201
    assert reply.json()["quota_bytes"] == 10**6
    login = await admin.client.post(
        "/api/v1/tokens", json={"address": address, "password": "s3cret!"}
    )
    assert login.status_code == 201


async def test_account_in_an_unknown_domain_is_404(make_user: MakeUser) -> None:
    admin = await make_user(is_admin=True)
    reply = await admin.client.post(
        "/api/v1/admin/accounts", json={"address": "x@nowhere.test", "password": "p"}
    )
    assert reply.status_code == 404
    assert reply.json()["detail"].startswith("domain nowhere.test is not a local domain")


async def test_password_reset_ends_sessions_and_sets_the_new_password(
    make_user: MakeUser, alice: User
) -> None:
    admin = await make_user(is_admin=True)
    reply = await admin.client.patch(
        f"/api/v1/admin/accounts/{alice.account.address}", json={"password": "brand-new"}
    )
    assert reply.status_code == 200
    assert (await alice.client.get("/api/v1/session")).status_code == 401
    login = await admin.client.post(
        "/api/v1/tokens", json={"address": alice.account.address, "password": "brand-new"}
    )
    assert login.status_code == 201


async def test_quota_and_disable(make_user: MakeUser, alice: User) -> None:
    admin = await make_user(is_admin=True)
    url = f"/api/v1/admin/accounts/{alice.account.address}"
    assert (await admin.client.patch(url, json={"quota_bytes": 5000})).json()["quota_bytes"] == 5000
    assert (await admin.client.patch(url, json={"clear_quota": True})).json()["quota_bytes"] is None
    reply = await admin.client.patch(url, json={"disabled": True})
    assert reply.json()["disabled"] is True
    assert (await alice.client.get("/api/v1/session")).status_code == 401


async def test_aliases(make_user: MakeUser, alice: User) -> None:
    admin = await make_user(is_admin=True)
    source = f"sales@{alice.account.address.split('@')[1]}"
    reply = await admin.client.post(
        "/api/v1/admin/aliases", json={"source": source, "destination": alice.account.address}
    )
    assert reply.status_code == 201
    session = (await alice.client.get("/api/v1/session")).json()
    assert session["addresses"] == [alice.account.address, source]
    reply = await admin.client.delete("/api/v1/admin/aliases", params={"source": source})
    assert reply.status_code == 204
    reply = await admin.client.delete("/api/v1/admin/aliases", params={"source": source})
    assert reply.status_code == 404


async def _spool(user: User, recipient: str = "far@remote.test") -> int:
    spooled = await queue.spool(
        user.conn,
        b"Subject: q\r\nMessage-ID: <q@x.test>\r\n\r\nbody\r\n",
        reverse_path=user.account.address,
        recipients=[recipient],
        arrival=Arrival(source="api", auth_account_id=user.account.id),
        now=NOW,
    )
    return spooled.message.id


async def test_queue_list_show_retry_delete(make_user: MakeUser, alice: User) -> None:
    admin = await make_user(is_admin=True)
    qid = await _spool(alice)
    listed = (await admin.client.get("/api/v1/admin/queue")).json()
    assert qid in [e["id"] for e in listed]
    shown = (await admin.client.get(f"/api/v1/admin/queue/{qid}")).json()
    assert shown["deliveries"][0]["recipient"] == "far@remote.test"
    assert shown["timeline"][0]["event"] == "received"
    retried = await admin.client.post(f"/api/v1/admin/queue/{qid}/retry")
    assert retried.status_code == 200
    assert retried.json()["deliveries"] == 1
    assert (await admin.client.delete(f"/api/v1/admin/queue/{qid}")).status_code == 204
    assert (await admin.client.get(f"/api/v1/admin/queue/{qid}")).status_code == 404


async def test_held_entry_is_listed_and_released(make_user: MakeUser, alice: User) -> None:
    admin = await make_user(is_admin=True)
    qid = await _spool(alice)
    entry = await queue.get_queue_entry(alice.conn, qid, with_attempts=False)
    await queue.note_failure(
        alice.conn, [entry.deliveries[0].id], error="dsn failed: RuntimeError", max_failures=1
    )
    [listed] = [
        e
        for e in (await admin.client.get("/api/v1/admin/queue?state=held")).json()
        if e["id"] == qid
    ]
    held = listed["deliveries"][0]
    assert (held["state"], held["failures"], held["last_failure"]) == (
        "held",
        1,
        "dsn failed: RuntimeError",
    )
    released = await admin.client.post(f"/api/v1/admin/queue/{qid}/release")
    assert released.status_code == 200
    assert released.json()["deliveries"] == 1
    shown = (await admin.client.get(f"/api/v1/admin/queue/{qid}")).json()
    assert (shown["deliveries"][0]["state"], shown["deliveries"][0]["failures"]) == ("queued", 0)


async def test_unknown_queue_entry_is_404(make_user: MakeUser) -> None:
    admin = await make_user(is_admin=True)
    reply = await admin.client.post(f"/api/v1/admin/queue/{2**62}/retry")
    assert reply.status_code == 404
    assert reply.json()["detail"] == f"queue entry {2**62} does not exist"


async def test_admin_cannot_delete_itself(make_user: MakeUser) -> None:
    admin = await make_user(is_admin=True)
    reply = await admin.client.delete(f"/api/v1/admin/accounts/{admin.account.address}")
    assert reply.status_code == 422
    assert await store.get_account(admin.conn, admin.account.address) is not None
