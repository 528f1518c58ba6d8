"""The send-as setting over the API: the admin sets it on an account, the send route honours it."""

from __future__ import annotations

from postroom import store
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
