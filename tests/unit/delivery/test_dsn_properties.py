"""DSNs are total: any sender, recipient, ORCPT, ENVID, Message-ID or reply text gives a DSN
that the stdlib email parser reads back with exactly the fields it should have."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from typing import get_args

from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.delivery.dsn import Action, RecipientStatus, build_dsn
from postroom.delivery.retry import transient
from postroom.store.types import BlobId, QueuedMessage, QueueId

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# Anything at all, with the characters that used to break DSNs well represented.
nasty = st.text(
    st.characters(codec=None) | st.sampled_from('\r\n\t\x00\x7f é;<>"\\+=()'), max_size=80
)
reply = st.lists(nasty, min_size=1, max_size=4).map("\r\n".join)  # multi-line replies
protocol = st.sampled_from([None, "ESMTP", "ESMTPSA", "UTF8SMTP", "UTF8SMTPS"])
original = st.binary(max_size=300) | st.builds(
    lambda h, b: h.encode("utf-8", "surrogatepass") + b"\r\n\r\n" + b,
    nasty,
    st.binary(max_size=50),
)


def queued(sender: str, env_id: str | None, message_id: str | None, proto: str | None,
           ret: str | None) -> QueuedMessage:  # fmt: skip
    return QueuedMessage(
        id=QueueId(7), blob_id=BlobId(1), reverse_path=sender, received_at=NOW, source="smtp",
        client_address=None, client_name=None, helo_name=None, protocol=proto, tls=None,
        auth_account_id=None, message_id=message_id, size=10, env_id=env_id, dsn_ret=ret,
        bounce_of=None,
    )  # fmt: skip


recipient = st.builds(
    RecipientStatus,
    final_recipient=nasty,
    original_recipient=st.none() | nasty | nasty.map(lambda a: f"rfc822;{a}"),
    action=st.just("failed"),
    status=st.sampled_from(["5.1.1", "4.4.1", "2.0.0", "x", ""]) | nasty,
    diagnostic=st.none() | reply,
    remote_mta=st.none() | nasty,
    last_attempt=st.none() | st.just(NOW),
)

TOP = {"From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted", "MIME-Version",
       "Content-Type"}  # fmt: skip
PER_MESSAGE = {"Reporting-MTA", "Original-Envelope-Id", "Arrival-Date"}
PER_RECIPIENT = {"Original-Recipient", "Final-Recipient", "Action", "Status", "Remote-MTA",
                 "Diagnostic-Code", "Last-Attempt-Date", "Will-Retry-Until"}  # fmt: skip


def status_blocks(dsn: bytes, boundary: str) -> list[EmailMessage]:
    """The header blocks of the (global-)delivery-status part, each read by the stdlib."""
    part = dsn.split(f"\r\n--{boundary}\r\n".encode())[2]  # after the text part
    raw = part.split(b"\r\n\r\n", 1)[1]
    blocks = [b for b in raw.split(b"\r\n\r\n") if b.strip()]
    parsed = []
    for block in blocks:
        msg = email.message_from_bytes(block + b"\r\n\r\n", policy=policy.default)
        assert isinstance(msg, EmailMessage)
        assert msg.defects == []
        assert msg.get_payload() == ""
        parsed.append(msg)
    return parsed


@settings(max_examples=200)
@given(
    sender=nasty,
    env_id=st.none() | nasty,
    message_id=st.none() | nasty | nasty.map(lambda m: f"<{m}>"),
    proto=protocol,
    ret=st.sampled_from([None, "FULL", "HDRS"]),
    action=st.sampled_from(get_args(Action)),
    recipients=st.lists(recipient, min_size=1, max_size=3),
    content=original,
)
def test_any_envelope_gives_a_dsn_with_exactly_the_expected_fields(
    sender: str,
    env_id: str | None,
    message_id: str | None,
    proto: str | None,
    ret: str | None,
    action: Action,
    recipients: list[RecipientStatus],
    content: bytes,
) -> None:
    message = queued(sender, env_id, message_id, proto, ret)
    statuses = [
        RecipientStatus(
            r.final_recipient, r.original_recipient, action, r.status, r.diagnostic,
            r.remote_mta, r.last_attempt,
        )
        for r in recipients
    ]  # fmt: skip
    raw = build_dsn(
        message=message,
        original=content,
        recipients=statuses,
        reporting_mta="mx.here.test",
        now=NOW,
        will_retry_until=NOW if action == "delayed" else None,
    )
    utf8 = (proto or "").startswith("UTF8") or not sender.isascii()
    assert utf8 or raw.isascii()
    assert b"\n" not in raw.replace(b"\r\n", b"")
    dsn = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(dsn, EmailMessage)
    assert set(dsn.keys()) - {"In-Reply-To", "References"} == TOP
    assert len(dsn.keys()) in (len(TOP), len(TOP) + 2)
    report = "global-delivery-status" if utf8 else "delivery-status"
    assert (dsn.get_content_type(), dsn.get_param("report-type")) == ("multipart/report", report)
    text, status, returned = dsn.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert status.get_content_type() == f"message/{report}"
    assert returned.get_content_type() in (
        "message/rfc822", "message/global-headers", "text/rfc822-headers",
    )  # fmt: skip
    boundary = dsn.get_boundary()
    assert boundary is not None
    per_message, *per_recipient = status_blocks(raw, boundary)
    assert set(per_message.keys()) <= PER_MESSAGE
    assert {"Reporting-MTA", "Arrival-Date"} <= set(per_message.keys())
    assert ("Original-Envelope-Id" in per_message) == bool(env_id)
    assert len(per_recipient) == len(statuses)
    for block, expected in zip(per_recipient, statuses, strict=True):
        names = list(block.keys())
        assert len(names) == len(set(names))
        assert set(names) <= PER_RECIPIENT
        assert {"Final-Recipient", "Action", "Status"} <= set(names)
        assert block["Action"] == action
        assert ("Original-Recipient" in block) == bool(expected.original_recipient)
        assert ("Will-Retry-Until" in block) == (action == "delayed")
        assert block["Final-Recipient"].split(";")[0] in ("rfc822", "utf-8")


@given(reply)
def test_reply_texts_are_stored_as_one_line(text: str) -> None:
    stored = transient(text).text or ""
    assert "\n" not in stored
    assert stored == " ".join(stored.split())


def test_non_ascii_recipient_of_a_plain_message_is_utf8_xtext() -> None:
    raw = build_dsn(
        message=queued("a@example.test", None, "<é@x>", "ESMTP", None),
        original=b"Subject: x\r\n\r\nbody\r\n",
        recipients=[RecipientStatus("jösé@example.test", None, "failed", "5.1.1", None, None,
                                    None)],
        reporting_mta="mx.here.test",
        now=NOW,
    )  # fmt: skip
    assert b"Final-Recipient: utf-8; j\\x{F6}s\\x{E9}@example.test\r\n" in raw
    assert b"In-Reply-To" not in raw  # a non-ASCII Message-ID is not returned in a 7-bit DSN


def test_smtputf8_original_gets_a_global_dsn_with_utf8_addresses() -> None:
    raw = build_dsn(
        message=queued("ñ@example.test", None, "<é@x>", "UTF8SMTPS", None),
        original="Subject: é\r\n\r\nbody\r\n".encode(),
        recipients=[RecipientStatus("jösé@example.test", None, "failed", "5.1.1", None, None,
                                    None)],
        reporting_mta="mx.here.test",
        now=NOW,
    )  # fmt: skip
    assert "Final-Recipient: utf-8; jösé@example.test\r\n".encode() in raw
    assert "In-Reply-To: <é@x>\r\n".encode() in raw
    assert b"Content-Type: message/global-headers" in raw
    assert "Subject: é\r\n".encode() in raw


def test_an_injected_diagnostic_stays_one_field() -> None:
    raw = build_dsn(
        message=queued("a@example.test", None, None, None, None),
        original=b"Subject: x\r\n\r\n",
        recipients=[RecipientStatus("b@r.test", None, "failed", "5.0.0",
                                    "smtp; 550 no\r\nX-Injected: yes\nAction: delivered", None,
                                    None)],
        reporting_mta="mx.here.test",
        now=NOW,
    )  # fmt: skip
    assert b"Diagnostic-Code: smtp; 550 no X-Injected: yes Action: delivered\r\n" in raw
    assert b"\r\nX-Injected" not in raw
