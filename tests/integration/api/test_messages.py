"""Messages over the API: list, sort, page, search, read, raw, parts, flags, move, delete."""

from __future__ import annotations

import asyncio
import contextlib
import json

import httpx
import pytest

from postroom import store
from postroom.api.routes.events import MAX_STREAMS_PER_ACCOUNT
from tests.integration.api.conftest import User, mail

MULTIPART = (
    b"From: Carol <carol@remote.test>\r\nTo: alice@example.test\r\nSubject: Report\r\n"
    b"Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nMessage-ID: <report@remote.test>\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
    b"--XX\r\nContent-Type: multipart/alternative; boundary=YY\r\n\r\n"
    b"--YY\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: "
    b"quoted-printable\r\n\r\nThe figures are attached. Caf=C3=A9.\r\n"
    b"--YY\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>The <b>figures</b></p>\r\n"
    b"--YY--\r\n"
    b"--XX\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; "
    b"filename*=UTF-8''r%C3%A9sum%C3%A9.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"JVBERi0xLjQK\r\n--XX--\r\n"
)


async def test_list_is_sorted_by_date_newest_first(alice: User) -> None:
    await alice.deliver(mail("older", date="Mon, 02 Nov 2026 10:00:00 +0000"))
    await alice.deliver(mail("newer", date="Tue, 24 Nov 2026 10:00:00 +0000"))
    inbox = await alice.mailbox()
    reply = await alice.client.get(f"/api/v1/mailboxes/{inbox.id}/messages")
    assert reply.status_code == 200
    page = reply.json()
    assert page["total"] == 2
    assert [m["subject"] for m in page["items"]] == ["newer", "older"]
    assert page["items"][0]["from"] == "Carol <carol@remote.test>"
    assert page["items"][0]["flags"] == []


@pytest.mark.parametrize(
    ("params", "subjects"),
    [
        ({"sort": "subject", "order": "asc"}, ["alpha", "beta", "gamma"]),
        ({"sort": "size", "order": "desc"}, ["gamma", "beta", "alpha"]),
        ({"sort": "subject", "order": "asc", "offset": 1, "limit": 1}, ["beta"]),
    ],
    ids=["subject", "size", "paged"],
)
async def test_list_sorts_and_pages(
    alice: User, params: dict[str, object], subjects: list[str]
) -> None:
    for subject, body in (("beta", "x" * 100), ("alpha", "x"), ("gamma", "x" * 1000)):
        await alice.deliver(mail(subject, body))
    inbox = await alice.mailbox()
    reply = await alice.client.get(f"/api/v1/mailboxes/{inbox.id}/messages", params=params)
    assert [m["subject"] for m in reply.json()["items"]] == subjects
    assert reply.json()["total"] == 3


@pytest.mark.parametrize(
    ("params", "subjects"),
    [
        ({"subject": "invoice"}, ["Invoice 42"]),
        ({"from": "dave@"}, ["Lunch"]),
        ({"body": "pineapple"}, ["Lunch"]),
        ({"q": "pineapple"}, ["Lunch"]),
        ({"unread": "true"}, ["Invoice 42"]),
        ({"since": "2026-11-20"}, ["Lunch"]),
        ({"before": "2026-11-20"}, ["Invoice 42"]),
    ],
    ids=["subject", "from", "body", "text", "unread", "since", "before"],
)
async def test_search(alice: User, params: dict[str, str], subjects: list[str]) -> None:
    await alice.deliver(mail("Invoice 42", "Please pay.", date="Mon, 02 Nov 2026 10:00:00 +0000"))
    await alice.deliver(
        mail(
            "Lunch",
            "Pizza with pineapple?",
            sender="dave@remote.test",
            date="Tue, 24 Nov 2026 10:00:00 +0000",
        ),
        flags=("\\Seen",),
    )
    inbox = await alice.mailbox()
    reply = await alice.client.get(f"/api/v1/mailboxes/{inbox.id}/messages", params=params)
    assert reply.status_code == 200
    assert [m["subject"] for m in reply.json()["items"]] == subjects


async def test_bad_sort_key_is_422(alice: User) -> None:
    inbox = await alice.mailbox()
    reply = await alice.client.get(f"/api/v1/mailboxes/{inbox.id}/messages?sort=colour")
    assert reply.status_code == 422
    assert reply.json()["detail"].startswith("query.sort: Input should be")


async def test_read_message_gives_text_html_link_and_attachments(alice: User) -> None:
    uid = await alice.deliver(MULTIPART)
    inbox = await alice.mailbox()
    reply = await alice.client.get(f"/api/v1/mailboxes/{inbox.id}/messages/{uid}")
    assert reply.status_code == 200
    body = reply.json()
    assert body["subject"] == "Report"
    assert body["from"] == [{"name": "Carol", "address": "carol@remote.test"}]
    assert body["text"] == "The figures are attached. Café."
    assert body["has_html"] is True
    assert body["html_url"] == f"/api/v1/mailboxes/{inbox.id}/messages/{uid}/html"
    assert body["attachments"] == [
        {
            "part": "2",
            "filename": "résumé.pdf",
            "content_type": "application/pdf",
            "size": 9,
            "url": f"/api/v1/mailboxes/{inbox.id}/messages/{uid}/parts/2",
            "preview_url": f"/api/v1/mailboxes/{inbox.id}/messages/{uid}/parts/2?view=inline",
        }
    ]


async def test_attachment_downloads_with_type_and_safe_filename(alice: User) -> None:
    uid = await alice.deliver(MULTIPART)
    inbox = await alice.mailbox()
    reply = await alice.client.get(f"/api/v1/mailboxes/{inbox.id}/messages/{uid}/parts/2")
    assert reply.status_code == 200
    assert reply.content == b"%PDF-1.4\n"
    assert reply.headers["content-type"] == "application/pdf"
    assert reply.headers["content-disposition"] == (
        "attachment; filename=\"r_sum_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"
    )


async def test_missing_part_is_404(alice: User) -> None:
    uid = await alice.deliver(MULTIPART)
    inbox = await alice.mailbox()
    reply = await alice.client.get(f"/api/v1/mailboxes/{inbox.id}/messages/{uid}/parts/9")
    assert reply.status_code == 404
    assert reply.json()["detail"] == f"message {uid} has no part 9"


async def test_raw_download_is_the_stored_message(alice: User) -> None:
    uid = await alice.deliver(MULTIPART)
    inbox = await alice.mailbox()
    reply = await alice.client.get(f"/api/v1/mailboxes/{inbox.id}/messages/{uid}/raw")
    assert reply.status_code == 200
    assert reply.content == MULTIPART
    assert reply.headers["content-type"] == "message/rfc822"
    assert reply.headers["content-disposition"].startswith(
        f'attachment; filename="message-{uid}.eml"'
    )


async def test_flags_are_added_and_removed(alice: User) -> None:
    uid = await alice.deliver(mail())
    inbox = await alice.mailbox()
    url = f"/api/v1/mailboxes/{inbox.id}/messages/{uid}/flags"
    reply = await alice.client.post(url, json={"add": ["\\Seen", "\\Flagged", "project"]})
    assert reply.json() == {"uid": uid, "flags": ["\\Flagged", "\\Seen", "project"]}
    reply = await alice.client.post(url, json={"remove": ["\\Flagged"]})
    assert reply.json() == {"uid": uid, "flags": ["\\Seen", "project"]}


async def test_unknown_system_flag_is_422(alice: User) -> None:
    uid = await alice.deliver(mail())
    inbox = await alice.mailbox()
    url = f"/api/v1/mailboxes/{inbox.id}/messages/{uid}/flags"
    reply = await alice.client.post(url, json={"add": ["\\Recent"]})
    assert reply.status_code == 422
    assert reply.json()["detail"] == "\\Recent is not a flag that can be stored"


async def test_move_to_another_folder(alice: User) -> None:
    uid = await alice.deliver(mail("moving"))
    inbox, archive = await alice.mailbox(), await alice.mailbox("Archive")
    reply = await alice.client.post(
        f"/api/v1/mailboxes/{inbox.id}/messages/move",
        json={"uids": [uid], "target_mailbox_id": archive.id},
    )
    assert reply.status_code == 200
    assert reply.json()["moved"] == [[uid, 1]]
    assert await store.get_message(alice.conn, inbox.id, uid) is None
    assert await store.get_message(alice.conn, archive.id, 1) is not None


async def test_copy_keeps_the_original(alice: User) -> None:
    uid = await alice.deliver(mail("copying"))
    inbox, archive = await alice.mailbox(), await alice.mailbox("Archive")
    reply = await alice.client.post(
        f"/api/v1/mailboxes/{inbox.id}/messages/copy",
        json={"uids": [uid], "target_mailbox_id": archive.id},
    )
    assert reply.json()["copied"] == [[uid, 1]]
    assert await store.get_message(alice.conn, inbox.id, uid) is not None


async def test_delete_moves_to_trash_then_deletes_for_real(alice: User) -> None:
    uid = await alice.deliver(mail("doomed"))
    inbox, trash = await alice.mailbox(), await alice.mailbox("Trash")
    reply = await alice.client.post(
        f"/api/v1/mailboxes/{inbox.id}/messages/delete", json={"uids": [uid]}
    )
    assert reply.json() == {"moved_to_trash": [[uid, 1]], "deleted": []}
    reply = await alice.client.post(
        f"/api/v1/mailboxes/{trash.id}/messages/delete", json={"uids": [1]}
    )
    assert reply.json() == {"moved_to_trash": [], "deleted": [1]}
    assert await store.get_message(alice.conn, trash.id, 1) is None


async def test_missing_message_is_404(alice: User) -> None:
    inbox = await alice.mailbox()
    reply = await alice.client.get(f"/api/v1/mailboxes/{inbox.id}/messages/999")
    assert reply.status_code == 404
    assert reply.json()["detail"] == "message 999 does not exist"


async def test_huge_uid_is_404_not_500(alice: User) -> None:
    inbox = await alice.mailbox()
    reply = await alice.client.get(f"/api/v1/mailboxes/{inbox.id}/messages/{2**70}")
    assert reply.status_code == 404


async def test_event_stream_announces_new_mail(alice: User, live_url: str) -> None:
    inbox = await alice.mailbox()
    client = httpx.AsyncClient(base_url=live_url, headers=alice.client.headers, timeout=10)
    async with client, client.stream("GET", "/api/v1/events") as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        lines = reply.aiter_lines()

        async def next_event() -> tuple[str, str]:
            event = data = ""
            async for line in lines:
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "" and event:
                    return event, data
            raise AssertionError("stream ended")

        assert (await asyncio.wait_for(next_event(), 10))[0] == "ready"
        await alice.deliver(mail("live"))
        event, data = await asyncio.wait_for(next_event(), 10)
    assert event == "change"
    assert json.loads(data) == {"mailboxes": [inbox.id], "all": False}


async def test_event_streams_per_account_are_limited(alice: User, live_url: str) -> None:
    client = httpx.AsyncClient(base_url=live_url, headers=alice.client.headers, timeout=10)
    async with client, contextlib.AsyncExitStack() as streams:
        readers = []  # held: a line reader closes its stream when it is collected
        for _ in range(MAX_STREAMS_PER_ACCOUNT):
            reply = await streams.enter_async_context(client.stream("GET", "/api/v1/events"))
            assert reply.status_code == 200
            readers.append(reply.aiter_lines())
            async for line in readers[-1]:
                if line == "event: ready":
                    break
        refused = await client.get("/api/v1/events")
        assert refused.status_code == 429
        assert refused.json()["detail"] == (
            f"at most {MAX_STREAMS_PER_ACCOUNT} event streams per account; close one"
        )
