"""Drafts saved by the web mail are messages of the Drafts folder: an IMAP client (imaplib on
a real socket) sees the same draft, flagged \\Draft, attachments included, and a new save
replaces it, carrying the attachments it keeps; a send from the draft sends them."""

from __future__ import annotations

import email
import email.policy
import imaplib
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from postroom import store
from postroom.store import queue
from postroom.store.types import QueueId
from tests.integration.access.imap_support import ImapEndpoint, running_imap
from tests.integration.access.pop3_support import in_thread
from tests.integration.api.conftest import User


@pytest.fixture
async def imap(database_url: str, tmp_path: Path) -> AsyncIterator[ImapEndpoint]:
    async with running_imap(database_url, tmp_path) as endpoint:
        yield endpoint


def drafts_over_imap(endpoint: ImapEndpoint, address: str, password: str) -> list[bytes]:
    client = imaplib.IMAP4(endpoint.host, endpoint.port, timeout=30)
    try:
        client.login(address, password)
        client.select("Drafts", readonly=True)
        _typ, data = client.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT TO)])")
        client.logout()
        return [part for item in data if isinstance(item, tuple) for part in item]
    except BaseException:
        client.shutdown()
        raise


async def test_a_saved_draft_is_the_one_imap_sees(imap: ImapEndpoint, alice: User) -> None:
    form = {"from": alice.account.address, "to": "bob@far.test, half", "subject": "Plan"}
    first = await alice.client.post("/api/v1/drafts", data={**form, "text": "v1"})
    assert first.status_code == 201, first.text
    second = await alice.client.post(
        "/api/v1/drafts",
        data={**form, "subject": "Plan, second try", "replace_uid": str(first.json()["uid"])},
    )
    assert second.status_code == 201, second.text
    seen = await in_thread(drafts_over_imap, imap, alice.account.address, alice.password)
    assert len(seen) == 2  # one message: its FETCH line and its header fields
    assert b"\\Draft" in seen[0]
    assert b"Subject: Plan, second try" in seen[1]
    assert b"To: bob@far.test, half" in seen[1]


PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40  # binary, CR and LF bytes included


async def save(
    user: User, files: list[tuple[str, bytes, str]] | None = None, **form: object
) -> dict[str, Any]:
    data = {"from": user.account.address, "subject": "Report", **form}
    reply = await user.client.post(
        "/api/v1/drafts",
        data=data,
        files=[("attachments", f) for f in files or []] or None,
    )
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


def parsed(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


async def test_a_draft_keeps_its_attachments_as_mime_parts(alice: User) -> None:
    saved = await save(alice, [("report.pdf", PDF, "application/pdf")], text="See attached.")
    assert [(a["filename"], a["content_type"], a["size"]) for a in saved["attachments"]] == [
        ("report.pdf", "application/pdf", len(PDF))
    ]
    raw = await store.fetch_raw(alice.conn, saved["mailbox_id"], saved["uid"])
    [part] = parsed(raw).iter_attachments()
    assert part.get_filename() == "report.pdf"
    assert part.get_content() == PDF


async def test_a_new_save_carries_the_kept_attachments_and_drops_the_rest(alice: User) -> None:
    first = await save(
        alice, [("a.pdf", PDF, "application/pdf"), ("b.txt", b"notes\n", "text/plain")]
    )
    keep = [a["part"] for a in first["attachments"] if a["filename"] == "a.pdf"]
    second = await save(
        alice,
        [("c.csv", b"x,y\r\n1,2\r\n", "text/csv")],
        replace_uid=str(first["uid"]),
        keep=keep,
    )
    assert [a["filename"] for a in second["attachments"]] == ["a.pdf", "c.csv"]
    raw = await store.fetch_raw(alice.conn, second["mailbox_id"], second["uid"])
    contents = {p.get_filename(): p.get_content() for p in parsed(raw).iter_attachments()}
    assert contents == {"a.pdf": PDF, "c.csv": "x,y\r\n1,2\r\n"}
    drafts = await store.list_messages(alice.conn, second["mailbox_id"])
    assert [m.uid for m in drafts] == [second["uid"]]


async def test_keeping_a_part_the_draft_does_not_have_is_422(alice: User) -> None:
    first = await save(alice, [("a.pdf", PDF, "application/pdf")])
    reply = await alice.client.post(
        "/api/v1/drafts",
        data={"from": alice.account.address, "replace_uid": str(first["uid"]), "keep": ["1"]},
    )
    assert reply.status_code == 422
    assert reply.json()["detail"] == f"draft {first['uid']} has no attachment '1'"


async def test_keeping_parts_of_a_message_that_is_no_draft_is_404(alice: User) -> None:
    uid = await alice.deliver(
        b"From: c@remote.test\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
        b"Content-Type: text/plain\r\n\r\nhi\r\n--B\r\nContent-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename=x.pdf\r\n\r\nPDF\r\n--B--\r\n",
        name="Drafts",
    )
    reply = await alice.client.post(
        "/api/v1/send",
        data={
            "from": alice.account.address,
            "to": "x@remote.test",
            "draft_uid": str(uid),
            "keep": ["2"],
        },
    )
    assert reply.status_code == 404
    assert reply.json()["detail"] == f"draft {uid} does not exist"


async def test_sending_from_a_draft_sends_its_kept_attachments(alice: User) -> None:
    draft = await save(alice, [("a.pdf", PDF, "application/pdf")], to="x@remote.test")
    reply = await alice.client.post(
        "/api/v1/send",
        data={
            "from": alice.account.address,
            "to": "x@remote.test",
            "subject": "Report",
            "draft_uid": str(draft["uid"]),
            "keep": [a["part"] for a in draft["attachments"]],
        },
        files=[("attachments", ("b.txt", b"more\n", "text/plain"))],
    )
    assert reply.status_code == 202, reply.text
    raw = await queue.read_queued_message(alice.conn, QueueId(reply.json()["queue_id"]))
    contents = {p.get_filename(): p.get_content() for p in parsed(raw).iter_attachments()}
    assert contents == {"a.pdf": PDF, "b.txt": "more\n"}
    assert await store.list_messages(alice.conn, draft["mailbox_id"]) == []


async def test_imap_sees_the_draft_with_its_attachment(imap: ImapEndpoint, alice: User) -> None:
    await save(alice, [("report.pdf", PDF, "application/pdf")], text="See attached.")
    structure = await in_thread(
        bodystructure_over_imap, imap, alice.account.address, alice.password
    )
    assert b'("application" "pdf"' in structure.lower()
    assert b'"report.pdf"' in structure


def bodystructure_over_imap(endpoint: ImapEndpoint, address: str, password: str) -> bytes:
    client = imaplib.IMAP4(endpoint.host, endpoint.port, timeout=30)
    try:
        client.login(address, password)
        client.select("Drafts", readonly=True)
        _typ, data = client.fetch("1", "(BODYSTRUCTURE)")
        client.logout()
        return b"".join(d if isinstance(d, bytes) else b"".join(d) for d in data if d)
    except BaseException:
        client.shutdown()
        raise
