"""The list by conversation (group=conversation), the preference that keeps it on, and bulk
requests that name messages by conversation or as every match of the list (select-all)."""

from __future__ import annotations

from tests.integration.api.conftest import User, mail


def linked(subject: str, message_id: str, links: str = "") -> bytes:
    return (
        f"From: carol@remote.test\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\n"
        f"{links}\r\nHi.\r\n"
    ).encode()


async def thread_of_three(user: User) -> None:
    """A conversation of three (the middle one unread) and a message on its own."""
    await user.deliver(linked("Plan", "<p1@x>"), flags=("\\Seen",))
    await user.deliver(mail("Other"), flags=("\\Seen",))
    await user.deliver(linked("Re: Plan", "<p2@x>", "In-Reply-To: <p1@x>\r\n"))
    await user.deliver(
        linked("Re: Plan", "<p3@x>", "References: <p1@x> <p2@x>\r\n"), flags=("\\Seen",)
    )


async def test_the_list_by_conversation_has_one_row_for_each(alice: User) -> None:
    await thread_of_three(alice)
    inbox = await alice.mailbox()
    page = (
        await alice.client.get(
            f"/api/v1/mailboxes/{inbox.id}/messages", params={"group": "conversation"}
        )
    ).json()
    assert page["total"] == 2
    rows = [
        (m["subject"], m["conversation"]["messages"], m["conversation"]["unread"])
        for m in page["items"]
    ]
    assert rows == [("Re: Plan", 3, 1), ("Other", 1, 0)]


async def test_the_list_by_conversation_pages_by_conversation(alice: User) -> None:
    await thread_of_three(alice)
    inbox = await alice.mailbox()
    page = (
        await alice.client.get(
            f"/api/v1/mailboxes/{inbox.id}/messages",
            params={"group": "conversation", "offset": 1, "limit": 1},
        )
    ).json()
    assert (page["total"], [m["subject"] for m in page["items"]]) == (2, ["Other"])


async def test_the_preference_is_off_until_turned_on(alice: User, bob: User) -> None:
    assert (await alice.client.get("/api/v1/preferences")).json() == {"conversations": False}
    saved = await alice.client.put("/api/v1/preferences", json={"conversations": True})
    assert saved.json() == {"conversations": True}
    assert (await alice.client.get("/api/v1/preferences")).json() == {"conversations": True}
    assert (await bob.client.get("/api/v1/preferences")).json() == {"conversations": False}


async def test_flags_of_a_whole_conversation_by_its_id(alice: User) -> None:
    await thread_of_three(alice)
    inbox = await alice.mailbox()
    url = f"/api/v1/mailboxes/{inbox.id}/messages"
    [plan, _] = (await alice.client.get(url, params={"group": "conversation"})).json()["items"]
    reply = await alice.client.post(
        f"{url}/flags", json={"threads": [plan["conversation"]["id"]], "add": ["\\Flagged"]}
    )
    assert reply.status_code == 200, reply.text
    flagged = (await alice.client.get(url, params={"flagged": "true"})).json()
    assert sorted(m["subject"] for m in flagged["items"]) == ["Plan", "Re: Plan", "Re: Plan"]


async def test_select_all_marks_every_match_not_only_a_page(alice: User) -> None:
    for i in range(5):
        await alice.deliver(mail(f"Note {i}"))
    inbox = await alice.mailbox()
    url = f"/api/v1/mailboxes/{inbox.id}/messages"
    reply = await alice.client.post(f"{url}/flags", json={"match": {}, "add": ["\\Seen"]})
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["uids"]) == 5
    unread = (await alice.client.get(url, params={"unread": "true"})).json()
    assert unread["total"] == 0


async def test_select_all_of_a_search_moves_only_what_it_found(alice: User) -> None:
    await alice.deliver(mail("Invoice 1"))
    await alice.deliver(mail("Invoice 2"))
    await alice.deliver(mail("Lunch"))
    inbox = await alice.mailbox()
    archive = await alice.mailbox("Archive")
    url = f"/api/v1/mailboxes/{inbox.id}/messages"
    reply = await alice.client.post(
        f"{url}/move", json={"match": {"query": "subject:invoice"}, "target_mailbox_id": archive.id}
    )
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["moved"]) == 2
    left = (await alice.client.get(url)).json()
    assert [m["subject"] for m in left["items"]] == ["Lunch"]


async def test_select_all_of_unread_deletes_only_the_unread(alice: User) -> None:
    await alice.deliver(mail("Read"), flags=("\\Seen",))
    await alice.deliver(mail("New"))
    inbox = await alice.mailbox()
    url = f"/api/v1/mailboxes/{inbox.id}/messages"
    reply = await alice.client.post(f"{url}/delete", json={"match": {"unread": True}})
    assert reply.status_code == 200, reply.text
    assert [m["subject"] for m in (await alice.client.get(url)).json()["items"]] == ["Read"]


async def test_a_bulk_request_names_its_messages_one_way(alice: User) -> None:
    inbox = await alice.mailbox()
    url = f"/api/v1/mailboxes/{inbox.id}/messages"
    both = await alice.client.post(f"{url}/delete", json={"uids": [1], "match": {}})
    assert both.status_code == 422
    neither = await alice.client.post(f"{url}/delete", json={})
    assert neither.status_code == 422
