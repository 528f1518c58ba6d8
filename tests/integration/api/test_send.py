"""Sending through the API: the queue like SMTP submission, Bcc only in the envelope, Sent copy,
replies and forwards."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from postroom import store
from postroom.store import queue
from postroom.store.types import QueueId
from tests.integration.api.conftest import User, mail


def _parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


async def _send(user: User, **fields: str) -> dict[str, object]:
    data = {"from": user.account.address, **fields}
    reply = await user.client.post("/api/v1/send", data=data)
    assert reply.status_code == 202, reply.text
    body: dict[str, object] = reply.json()
    return body


async def test_send_queues_one_delivery_per_recipient(alice: User, bob: User) -> None:
    result = await _send(
        alice,
        to=bob.account.address,
        cc="Carol <carol@remote.test>",
        bcc="dave@remote.test",
        subject="Plans",
        text="See you at noon.",
    )
    entry = await queue.get_queue_entry(alice.conn, QueueId(int(str(result["queue_id"]))))
    assert entry.message.source == "api"
    assert entry.message.reverse_path == alice.account.address
    assert entry.message.auth_account_id == alice.account.id
    assert [d.recipient for d in entry.deliveries] == [
        bob.account.address,
        "carol@remote.test",
        "dave@remote.test",
    ]


async def test_sent_message_has_headers_and_no_bcc(alice: User, bob: User) -> None:
    result = await _send(
        alice, to=bob.account.address, bcc="dave@remote.test", subject="Plans", text="Noon."
    )
    raw = await queue.read_queued_message(alice.conn, QueueId(int(str(result["queue_id"]))))
    message = _parse(raw)
    assert message["From"] == alice.account.address
    assert message["To"] == bob.account.address
    assert message["Subject"] == "Plans"
    assert message["Bcc"] is None
    assert message["Message-ID"] == result["message_id"]
    assert str(result["message_id"]).endswith(f"@{alice.account.address.split('@')[1]}>")
    assert message["Date"] is not None
    assert message.get_content().strip() == "Noon."


async def test_a_copy_goes_to_sent_marked_seen_with_its_bcc(alice: User, bob: User) -> None:
    result = await _send(alice, to=bob.account.address, bcc="dave@remote.test", subject="Copy")
    sent = await alice.mailbox("Sent")
    assert result["sent_mailbox_id"] == sent.id
    message = await store.get_message(alice.conn, sent.id, int(str(result["sent_uid"])))
    assert message is not None
    assert "\\Seen" in message.flags
    copy = _parse(await store.fetch_raw(alice.conn, sent.id, message.uid))
    assert copy["Bcc"] == "dave@remote.test"
    assert copy["Message-ID"] == result["message_id"]


async def test_sending_as_an_address_not_owned_is_403(alice: User, bob: User) -> None:
    reply = await alice.client.post(
        "/api/v1/send", data={"from": bob.account.address, "to": "x@remote.test"}
    )
    assert reply.status_code == 403
    assert reply.json()["detail"] == (
        f"you may not send as '{bob.account.address}'; your addresses: {alice.account.address}"
    )


async def test_sending_without_recipients_is_422(alice: User) -> None:
    reply = await alice.client.post("/api/v1/send", data={"from": alice.account.address})
    assert reply.status_code == 422
    assert reply.json()["detail"] == "name at least one recipient (to, cc or bcc)"


async def test_a_bad_recipient_is_422_naming_it(alice: User) -> None:
    reply = await alice.client.post(
        "/api/v1/send", data={"from": alice.account.address, "to": "bob@@nowhere"}
    )
    assert reply.status_code == 422
    assert "is not a" in reply.json()["detail"]


async def test_a_header_injection_in_the_subject_is_422(alice: User) -> None:
    reply = await alice.client.post(
        "/api/v1/send",
        data={"from": alice.account.address, "to": "x@remote.test", "subject": "a\r\nBcc: y@z"},
    )
    assert reply.status_code == 422
    assert reply.json()["detail"] == "the subject must be one line"


async def test_reply_sets_in_reply_to_references_and_answers_the_original(
    alice: User, bob: User
) -> None:
    uid = await alice.deliver(mail("Question", extra="References: <root@remote.test>\r\n"))
    inbox = await alice.mailbox()
    original = await store.fetch_content(alice.conn, inbox.id, [uid])
    parent = original[0].parsed["message_id"]
    result = await _send(
        alice,
        to="carol@remote.test",
        subject="Re: Question",
        text="Answer.",
        mode="reply",
        reply_to_mailbox_id=str(inbox.id),
        reply_to_uid=str(uid),
    )
    raw = await queue.read_queued_message(alice.conn, QueueId(int(str(result["queue_id"]))))
    message = _parse(raw)
    assert message["In-Reply-To"] == parent
    assert message["References"] == f"<root@remote.test> {parent}"
    answered = await store.get_message(alice.conn, inbox.id, uid)
    assert answered is not None
    assert "\\Answered" in answered.flags


async def test_forward_attaches_the_original_message(alice: User) -> None:
    uid = await alice.deliver(mail("Forward me", "original text"))
    inbox = await alice.mailbox()
    result = await _send(
        alice,
        to="carol@remote.test",
        subject="Fwd: Forward me",
        text="FYI",
        mode="forward",
        reply_to_mailbox_id=str(inbox.id),
        reply_to_uid=str(uid),
    )
    message = _parse(
        await queue.read_queued_message(alice.conn, QueueId(int(str(result["queue_id"]))))
    )
    attached = [p for p in message.iter_attachments() if p.get_content_type() == "message/rfc822"]
    assert len(attached) == 1
    inner = attached[0].get_content()
    assert inner["Subject"] == "Forward me"
    assert message["In-Reply-To"] is not None


async def test_uploaded_attachments_are_attached(alice: User) -> None:
    reply = await alice.client.post(
        "/api/v1/send",
        data={"from": alice.account.address, "to": "carol@remote.test", "subject": "Files"},
        files=[
            ("attachments", ("notes.txt", b"plain notes\n", "text/plain")),
            ("attachments", ("data.bin", b"\x00\x01\x02", "application/octet-stream")),
        ],
    )
    assert reply.status_code == 202, reply.text
    message = _parse(await queue.read_queued_message(alice.conn, QueueId(reply.json()["queue_id"])))
    files = {p.get_filename(): p.get_payload(decode=True) for p in message.iter_attachments()}
    assert files == {"notes.txt": b"plain notes\n", "data.bin": b"\x00\x01\x02"}


async def test_reply_needs_the_original(alice: User) -> None:
    reply = await alice.client.post(
        "/api/v1/send",
        data={"from": alice.account.address, "to": "x@remote.test", "mode": "reply"},
    )
    assert reply.status_code == 422
    assert reply.json()["detail"] == "mode=reply needs reply_to_mailbox_id and reply_to_uid"
