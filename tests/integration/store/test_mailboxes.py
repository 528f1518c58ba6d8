"""Mailboxes: hierarchy, rename and delete rules of RFC 3501 §6.3, UIDVALIDITY, status."""

from __future__ import annotations

import pytest

from postroom import store
from postroom.errors import AlreadyExists, InvalidInput, NotFound
from tests.support import Tenant

MSG = b"From: a@example.test\r\nSubject: hi\r\n\r\nbody\r\n"


async def names(tenant: Tenant, account_id: store.AccountId) -> dict[str, bool]:
    boxes = await store.list_mailboxes(tenant.conn, account_id)
    return {b.name: b.selectable for b in boxes}


async def test_create_makes_missing_parents(tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    await store.create_mailbox(tenant.conn, alice.id, "Projects/2026/Q4")
    got = await names(tenant, alice.id)
    assert got["Projects"]
    assert got["Projects/2026"]
    assert got["Projects/2026/Q4"]


async def test_create_existing_name_is_refused(tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    with pytest.raises(AlreadyExists):
        await store.create_mailbox(tenant.conn, alice.id, "Sent")


async def test_inbox_name_is_case_insensitive(tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    inbox = await store.get_mailbox(tenant.conn, alice.id, "inbox")
    assert inbox is not None
    assert inbox.name == "INBOX"
    with pytest.raises(AlreadyExists):
        await store.create_mailbox(tenant.conn, alice.id, "Inbox")


@pytest.mark.parametrize(
    "name",
    ["", "a//b", "/lead", "trail/", "wild*", "per%cent", "ctl\x01"],
    ids=["empty", "empty-level", "leading-slash", "trailing-slash", "star", "percent", "control"],
)
async def test_bad_names_are_refused(tenant: Tenant, name: str) -> None:
    alice = await tenant.account("alice")
    with pytest.raises(InvalidInput):
        await store.create_mailbox(tenant.conn, alice.id, name)


async def test_rename_keeps_children_and_contents(tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    work = await store.create_mailbox(tenant.conn, alice.id, "Work")
    await store.create_mailbox(tenant.conn, alice.id, "Work/Old")
    msg = await store.append_message(tenant.conn, work.id, MSG)
    renamed = await store.rename_mailbox(tenant.conn, alice.id, "Work", "Jobs/Current")
    got = await names(tenant, alice.id)
    assert "Work" not in got
    assert "Work/Old" not in got
    assert got["Jobs/Current"]
    assert got["Jobs/Current/Old"]
    assert "Jobs" in got
    assert renamed.id == work.id
    assert renamed.uid_validity == work.uid_validity
    assert [m.uid for m in await store.list_messages(tenant.conn, work.id)] == [msg.uid]


async def test_rename_onto_existing_name_is_refused(tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    with pytest.raises(AlreadyExists):
        await store.rename_mailbox(tenant.conn, alice.id, "Sent", "Drafts")


async def test_rename_inbox_moves_messages_and_leaves_new_empty_inbox(tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    inbox = await store.get_mailbox(tenant.conn, alice.id, "INBOX")
    assert inbox is not None
    await store.append_message(tenant.conn, inbox.id, MSG)
    await store.create_mailbox(tenant.conn, alice.id, "INBOX/Child")
    await store.rename_mailbox(tenant.conn, alice.id, "INBOX", "Old Inbox")
    new_inbox = await store.get_mailbox(tenant.conn, alice.id, "INBOX")
    old = await store.get_mailbox(tenant.conn, alice.id, "Old Inbox")
    assert new_inbox is not None
    assert old is not None
    assert new_inbox.uid_validity > inbox.uid_validity
    assert (await store.mailbox_status(tenant.conn, new_inbox.id)).messages == 0
    assert (await store.mailbox_status(tenant.conn, old.id)).messages == 1
    assert "INBOX/Child" in await names(tenant, alice.id)


async def test_inbox_cannot_be_deleted(tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    with pytest.raises(InvalidInput, match="INBOX cannot be deleted"):
        await store.delete_mailbox(tenant.conn, alice.id, "INBOX")


async def test_delete_with_children_leaves_noselect(tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    parent = await store.create_mailbox(tenant.conn, alice.id, "Lists")
    await store.create_mailbox(tenant.conn, alice.id, "Lists/python")
    await store.append_message(tenant.conn, parent.id, MSG)
    await store.delete_mailbox(tenant.conn, alice.id, "Lists")
    got = await names(tenant, alice.id)
    assert got["Lists"] is False
    assert got["Lists/python"] is True
    assert (await store.mailbox_status(tenant.conn, parent.id)).messages == 0
    with pytest.raises(NotFound):
        await store.append_message(tenant.conn, parent.id, MSG)


async def test_recreated_name_gets_a_new_uidvalidity(tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    first = await store.create_mailbox(tenant.conn, alice.id, "Tmp")
    await store.delete_mailbox(tenant.conn, alice.id, "Tmp")
    second = await store.create_mailbox(tenant.conn, alice.id, "Tmp")
    assert second.uid_validity > first.uid_validity


async def test_unsubscribe_and_subscribe(tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    await store.set_subscribed(tenant.conn, alice.id, "Junk", False)
    junk = await store.get_mailbox(tenant.conn, alice.id, "Junk")
    assert junk is not None
    assert junk.subscribed is False
    with pytest.raises(NotFound):
        await store.set_subscribed(tenant.conn, alice.id, "Nope", True)


async def test_status_counts_messages_unseen_recent_and_size(tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    inbox = await store.get_mailbox(tenant.conn, alice.id, "INBOX")
    assert inbox is not None
    a = await store.append_message(tenant.conn, inbox.id, MSG, flags=["\\Seen"])
    b = await store.append_message(tenant.conn, inbox.id, MSG + b"x")
    status = await store.mailbox_status(tenant.conn, inbox.id)
    assert (status.messages, status.unseen, status.recent) == (2, 1, 2)
    assert status.size == a.size + b.size
    assert status.first_unseen_uid == b.uid
    assert status.uid_next == b.uid + 1


async def test_recent_belongs_to_one_session_only(tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    inbox = await store.get_mailbox(tenant.conn, alice.id, "INBOX")
    assert inbox is not None
    m = await store.append_message(tenant.conn, inbox.id, MSG)
    first = await store.claim_recent(tenant.conn, inbox.id)
    second = await store.claim_recent(tenant.conn, inbox.id)
    assert first[0] <= m.uid < first[1]
    assert second == (first[1], first[1])


async def test_first_unseen_uid(tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    inbox = await store.get_mailbox(tenant.conn, alice.id, "INBOX")
    assert inbox is not None
    assert await store.first_unseen_uid(tenant.conn, inbox.id) is None
    await store.append_message(tenant.conn, inbox.id, MSG, flags=["\\Seen"])
    unseen = await store.append_message(tenant.conn, inbox.id, MSG)
    await store.append_message(tenant.conn, inbox.id, MSG)
    assert await store.first_unseen_uid(tenant.conn, inbox.id) == unseen.uid
