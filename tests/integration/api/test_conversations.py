"""The list's search language, bulk flags, conversations and "show original" over the API."""

from __future__ import annotations

from tests.integration.api.conftest import User, mail


def linked(subject: str, message_id: str, links: str = "", day: int = 26) -> bytes:
    return (
        f"From: Carol <carol@remote.test>\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
        f"Date: {day} Nov 2026 12:00:00 +0000\r\nMessage-ID: {message_id}\r\n{links}"
        "\r\nBody.\r\n"
    ).encode()


async def test_query_searches_with_operators(alice: User) -> None:
    await alice.deliver(mail("Budget", sender="Ann <ann@corp.test>"), flags=("\\Seen",))
    await alice.deliver(mail("Party", sender="Bob <bob@home.test>"))
    inbox = await alice.mailbox()
    reply = await alice.client.get(
        f"/api/v1/mailboxes/{inbox.id}/messages", params={"query": "is:unread"}
    )
    assert reply.status_code == 200
    assert [m["subject"] for m in reply.json()["items"]] == ["Party"]
    assert reply.json()["mailbox_id"] == inbox.id


async def test_query_in_folder_lists_that_folder(alice: User) -> None:
    await alice.deliver(mail("Filed"), name="Archive")
    inbox = await alice.mailbox()
    archive = await alice.mailbox("Archive")
    reply = await alice.client.get(
        f"/api/v1/mailboxes/{inbox.id}/messages", params={"query": "in:Archive"}
    )
    assert reply.json()["mailbox_id"] == archive.id
    assert [m["subject"] for m in reply.json()["items"]] == ["Filed"]


async def test_query_naming_a_missing_folder_is_404(alice: User) -> None:
    inbox = await alice.mailbox()
    reply = await alice.client.get(
        f"/api/v1/mailboxes/{inbox.id}/messages", params={"query": "in:Nowhere"}
    )
    assert reply.status_code == 404
    assert reply.json()["detail"] == "there is no folder 'Nowhere'"


async def test_a_bad_operator_value_is_422_with_the_reason(alice: User) -> None:
    inbox = await alice.mailbox()
    reply = await alice.client.get(
        f"/api/v1/mailboxes/{inbox.id}/messages", params={"query": "after:soon"}
    )
    assert reply.status_code == 422
    assert "after: wants a date as YYYY-MM-DD" in reply.json()["detail"]


async def test_bulk_flags_change_every_named_message(alice: User) -> None:
    uids = [await alice.deliver(mail(f"n{n}")) for n in range(3)]
    inbox = await alice.mailbox()
    reply = await alice.client.post(
        f"/api/v1/mailboxes/{inbox.id}/messages/flags",
        json={"uids": uids[:2], "add": ["\\Seen", "\\Flagged"]},
    )
    assert reply.json() == {"uids": uids[:2]}
    listed = await alice.client.get(
        f"/api/v1/mailboxes/{inbox.id}/messages", params={"sort": "arrival", "order": "asc"}
    )
    assert [m["flags"] for m in listed.json()["items"]] == [
        ["\\Flagged", "\\Seen"],
        ["\\Flagged", "\\Seen"],
        [],
    ]


async def test_a_thread_follows_references_and_in_reply_to_across_folders(alice: User) -> None:
    first = await alice.deliver(linked("Trip", "<a1@x.test>"))
    await alice.deliver(
        linked("Re: Trip", "<a2@x.test>", "In-Reply-To: <a1@x.test>\r\n"), name="Sent"
    )
    await alice.deliver(
        linked("Re: Trip", "<a3@x.test>", "References: <a1@x.test> <a2@x.test>\r\n", day=27)
    )
    await alice.deliver(mail("Unrelated"))
    inbox = await alice.mailbox()
    reply = await alice.client.get(f"/api/v1/mailboxes/{inbox.id}/messages/{first}/thread")
    assert reply.status_code == 200
    assert [(t["mailbox"], t["subject"]) for t in reply.json()] == [
        ("INBOX", "Trip"),
        ("Sent", "Re: Trip"),
        ("INBOX", "Re: Trip"),
    ]


async def test_a_message_alone_is_a_thread_of_one(alice: User) -> None:
    uid = await alice.deliver(mail("Alone"))
    inbox = await alice.mailbox()
    reply = await alice.client.get(f"/api/v1/mailboxes/{inbox.id}/messages/{uid}/thread")
    assert [t["uid"] for t in reply.json()] == [uid]


async def test_show_original_is_plain_text_shown_inline(alice: User) -> None:
    uid = await alice.deliver(mail("Raw", "<b>not markup</b>"))
    inbox = await alice.mailbox()
    reply = await alice.client.get(f"/api/v1/mailboxes/{inbox.id}/messages/{uid}/raw?view=text")
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"
    assert reply.headers["content-disposition"] == "inline"
    assert "<b>not markup</b>" in reply.text
