"""The send-as setting over the API: the admin sets it on an account, the send route honours it."""

from __future__ import annotations

from postroom import store
from postroom.store import queue
from postroom.store.types import QueueId
from tests.integration.api.conftest import MakeUser, User


async def test_admin_sets_the_send_as_list_normalised(make_user: MakeUser, alice: User) -> None:
    admin = await make_user(is_admin=True)
    url = f"/api/v1/admin/accounts/{alice.account.address}"
    reply = await admin.client.patch(
        url, json={"send_as": ["Boss@Example.TEST", "*@Lists.Example.", "boss@example.test"]}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["send_as"] == ["*@lists.example", "boss@example.test"]
    listed = (await admin.client.get(f"/api/v1/admin/accounts/{alice.account.address}")).json()
    assert listed["send_as"] == ["*@lists.example", "boss@example.test"]
    cleared = await admin.client.patch(url, json={"send_as": []})
    assert cleared.json()["send_as"] == []


async def test_a_bad_send_as_entry_is_422_and_changes_nothing(
    make_user: MakeUser, alice: User
) -> None:
    admin = await make_user(is_admin=True)
    url = f"/api/v1/admin/accounts/{alice.account.address}"
    await admin.client.patch(url, json={"send_as": ["boss@example.test"]})
    reply = await admin.client.patch(url, json={"send_as": ["a*b@example.test"], "disabled": True})
    assert reply.status_code == 422
    assert reply.json()["detail"] == (
        "'a*b@example.test': a wildcard must be the whole local part (*@domain)"
    )
    account = await store.get_account(alice.conn, alice.account.address)
    assert account is not None
    assert (account.send_as, account.disabled) == (("boss@example.test",), False)


async def test_only_an_admin_sets_send_as(alice: User) -> None:
    reply = await alice.client.patch(
        f"/api/v1/admin/accounts/{alice.account.address}", json={"send_as": ["*@example.test"]}
    )
    assert reply.status_code == 403


async def test_the_send_route_accepts_an_address_the_list_allows(alice: User) -> None:
    await store.set_send_as(alice.conn, alice.account.address, ["*@lists.example"])
    reply = await alice.client.post(
        "/api/v1/send", data={"from": "News@Lists.Example", "to": "x@remote.test", "text": "Hi"}
    )
    assert reply.status_code == 202, reply.text


async def test_the_send_route_still_refuses_what_the_list_does_not_allow(alice: User) -> None:
    await store.set_send_as(alice.conn, alice.account.address, ["boss@example.test"])
    reply = await alice.client.post(
        "/api/v1/send", data={"from": "other@example.test", "to": "x@remote.test"}
    )
    assert reply.status_code == 403


async def test_a_draft_may_be_saved_from_an_address_the_list_allows(alice: User) -> None:
    await store.set_send_as(alice.conn, alice.account.address, ["boss@example.test"])
    allowed = await alice.client.post("/api/v1/drafts", data={"from": "boss@example.test"})
    assert allowed.status_code == 201, allowed.text
    refused = await alice.client.post("/api/v1/drafts", data={"from": "other@example.test"})
    assert refused.status_code == 403


async def test_the_session_and_identities_list_exact_send_as_addresses(alice: User) -> None:
    await store.set_send_as(
        alice.conn, alice.account.address, ["boss@example.test", "*@lists.example"]
    )
    session = (await alice.client.get("/api/v1/session")).json()
    assert session["addresses"] == [alice.account.address, "boss@example.test"]
    assert session["account"]["send_as"] == ["*@lists.example", "boss@example.test"]
    identities = (await alice.client.get("/api/v1/identities")).json()
    assert [i["address"] for i in identities] == [alice.account.address, "boss@example.test"]


async def test_a_send_as_address_gets_a_from_name(alice: User) -> None:
    await store.set_send_as(alice.conn, alice.account.address, ["boss@example.test"])
    saved = await alice.client.put(
        "/api/v1/identities/boss@example.test", json={"name": "The Boss", "signature": None}
    )
    assert saved.status_code == 200, saved.text
    reply = await alice.client.post(
        "/api/v1/send", data={"from": "boss@example.test", "to": "x@remote.test", "text": "Hi"}
    )
    assert reply.status_code == 202, reply.text
    raw = await queue.read_queued_message(alice.conn, QueueId(reply.json()["queue_id"]))
    assert b"From: The Boss <boss@example.test>\r\n" in raw


async def test_an_address_outside_a_send_as_domain_is_refused(alice: User) -> None:
    await store.set_send_as(alice.conn, alice.account.address, ["*@lists.example"])
    reply = await alice.client.post(
        "/api/v1/send", data={"from": "news@sub.lists.example", "to": "x@remote.test"}
    )
    assert reply.status_code == 403
    assert reply.json()["detail"].startswith("you may not send as 'news@sub.lists.example'")
    queued = await alice.conn.execute(
        "SELECT count(*) AS n FROM queue_messages WHERE reverse_path = %s",
        ("news@sub.lists.example",),
    )
    assert (await queued.fetchone()) == {"n": 0}


async def test_no_identity_for_an_address_one_may_not_send_as(alice: User) -> None:
    reply = await alice.client.put(
        "/api/v1/identities/boss@example.test", json={"name": "The Boss", "signature": None}
    )
    assert reply.status_code == 404
