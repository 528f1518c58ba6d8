"""Folders over the API: list with counts, create, rename, delete."""

from __future__ import annotations

import pytest

from tests.integration.api.conftest import User, mail


async def test_new_account_lists_its_standard_folders_with_counts(alice: User) -> None:
    await alice.deliver(mail("one"))
    await alice.deliver(mail("two"), flags=("\\Seen",))
    reply = await alice.client.get("/api/v1/mailboxes")
    assert reply.status_code == 200
    folders = {f["name"]: f for f in reply.json()}
    assert sorted(folders) == ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]
    assert (folders["INBOX"]["messages"], folders["INBOX"]["unseen"]) == (2, 1)
    assert folders["Sent"]["special_use"] == "\\Sent"


async def test_create_folder_returns_it(alice: User) -> None:
    reply = await alice.client.post("/api/v1/mailboxes", json={"name": "Projects/2026"})
    assert reply.status_code == 201
    assert reply.json()["name"] == "Projects/2026"
    assert reply.json()["messages"] == 0


async def test_creating_an_existing_folder_is_409(alice: User) -> None:
    reply = await alice.client.post("/api/v1/mailboxes", json={"name": "Trash"})
    assert reply.status_code == 409
    assert reply.json()["detail"] == "mailbox Trash already exists"


@pytest.mark.parametrize(
    ("name", "detail"),
    [
        ("a//b", "mailbox name 'a//b' has an empty level"),
        ("x*", "a mailbox name must not contain the wildcards * or %"),
        ("tab\there", "a mailbox name must not contain control characters"),
    ],
    ids=["empty-level", "wildcard", "control"],
)
async def test_bad_folder_name_is_422_with_the_reason(alice: User, name: str, detail: str) -> None:
    reply = await alice.client.post("/api/v1/mailboxes", json={"name": name})
    assert reply.status_code == 422
    assert reply.json()["detail"] == detail


async def test_rename_folder(alice: User) -> None:
    created = (await alice.client.post("/api/v1/mailboxes", json={"name": "Old"})).json()
    reply = await alice.client.patch(f"/api/v1/mailboxes/{created['id']}", json={"name": "New"})
    assert reply.status_code == 200
    assert reply.json()["name"] == "New"


async def test_delete_folder(alice: User) -> None:
    created = (await alice.client.post("/api/v1/mailboxes", json={"name": "Gone"})).json()
    assert (await alice.client.delete(f"/api/v1/mailboxes/{created['id']}")).status_code == 204
    assert (await alice.client.get(f"/api/v1/mailboxes/{created['id']}")).status_code == 404


async def test_inbox_cannot_be_deleted(alice: User) -> None:
    inbox = await alice.mailbox()
    reply = await alice.client.delete(f"/api/v1/mailboxes/{inbox.id}")
    assert reply.status_code == 422
    assert reply.json()["detail"] == "INBOX cannot be deleted"


async def test_unknown_body_field_is_422(alice: User) -> None:
    reply = await alice.client.post("/api/v1/mailboxes", json={"name": "X", "colour": "red"})
    assert reply.status_code == 422
    assert reply.json()["detail"] == "colour: Extra inputs are not permitted"
