"""RFC 5230 §4.5-§5 and RFC 3834: when a vacation reply goes out, and what it looks like."""

from __future__ import annotations

import email
from datetime import UTC, datetime

import pytest

from postroom.sieve import Envelope, MessageView, Vacation
from postroom.sieve.vacation import build_reply, refusal, tracking_key

BASE = (
    b"From: Bob <bob@example.org>\r\n"
    b"To: Alice <alice@example.test>\r\n"
    b"Subject: Lunch?\r\n"
    b"Message-ID: <q1@example.org>\r\n"
    b"References: <q0@example.org>\r\n"
)
ACTION = Vacation("I am away until Monday.", 7 * 86400)
ALICE = Envelope("bob@example.org", "alice@example.test")


def _why(extra: bytes = b"", envelope: Envelope = ALICE, base: bytes = BASE) -> str | None:
    return refusal(
        ACTION, MessageView(base + extra + b"\r\nhi\r\n"), envelope, ["alice@example.test"]
    )


def test_an_ordinary_message_gets_a_reply() -> None:
    assert _why() is None


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (b"List-Id: <dev.lists.example.org>\r\n", "message is from a mailing list"),
        (b"List-Unsubscribe: <mailto:x@example.org>\r\n", "message is from a mailing list"),
        (b"Precedence: bulk\r\n", "message is bulk mail"),
        (b"Precedence: junk\r\n", "message is bulk mail"),
        (b"Auto-Submitted: auto-replied\r\n", "message is auto-submitted"),
        (b"Auto-Submitted: auto-generated; type=dsn\r\n", "message is auto-submitted"),
    ],
)
def test_no_reply_to_lists_bulk_or_automatic_mail(extra: bytes, reason: str) -> None:
    assert _why(extra) == reason  # RFC 5230 §4.6, RFC 3834 §2


def test_auto_submitted_no_is_a_person() -> None:  # RFC 3834 §5
    assert _why(b"Auto-Submitted: no\r\n") is None


def test_no_reply_to_the_null_sender() -> None:  # RFC 5230 §4.6
    assert _why(envelope=Envelope("", "alice@example.test")) == "null sender"


def test_no_reply_to_oneself() -> None:  # RFC 5230 §4.6
    envelope = Envelope("alice@example.test", "alice@example.test")
    assert _why(envelope=envelope) == "sender is the recipient"


def test_no_reply_to_mailer_daemon() -> None:  # RFC 5230 §4.6
    envelope = Envelope("MAILER-DAEMON@example.org", "alice@example.test")
    assert _why(envelope=envelope) == "sender is a mailing program"


def test_no_reply_when_recipient_is_not_named() -> None:  # RFC 5230 §4.5
    base = BASE.replace(b"To: Alice <alice@example.test>", b"To: team@example.test")
    assert _why(base=base) == "recipient not named in the message's To, Cc or Bcc"


def test_addresses_name_the_recipient_too() -> None:  # RFC 5230 §4.5
    base = BASE.replace(b"To: Alice <alice@example.test>", b"To: team@example.test")
    action = Vacation("x", 60, addresses=("team@example.test",))
    assert refusal(action, MessageView(base + b"\r\n"), ALICE, ["alice@example.test"]) is None


def test_handle_names_the_tracking_key() -> None:  # RFC 5230 §4.2
    assert tracking_key(Vacation("a", 1, handle="h1")) == tracking_key(
        Vacation("b", 2, handle="h1")
    )
    assert tracking_key(Vacation("a", 1)) != tracking_key(Vacation("b", 1))


def test_reply_headers() -> None:  # RFC 5230 §5, RFC 3834 §3.1, §5
    raw = build_reply(
        ACTION,
        MessageView(BASE + b"\r\nhi\r\n"),
        ALICE,
        now=datetime(2026, 3, 10, tzinfo=UTC),
        hostname="mail.example.test",
    )
    reply = email.message_from_bytes(raw)
    assert reply["To"] == "bob@example.org"
    assert reply["From"] == "alice@example.test"
    assert reply["Subject"] == "Auto: Lunch?"
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["In-Reply-To"] == "<q1@example.org>"
    assert reply["References"] == "<q0@example.org> <q1@example.org>"
    assert reply["Message-ID"].endswith("@mail.example.test>")
    assert reply.get_payload(decode=True) == b"I am away until Monday.\r\n"


def test_reply_subject_and_from_from_the_action() -> None:  # RFC 5230 §4.2, §4.3
    action = Vacation("x", 60, subject="Out of office", from_address="Alice <a@example.test>")
    raw = build_reply(
        action, MessageView(BASE + b"\r\n"), ALICE, now=datetime.now(UTC), hostname="h.test"
    )
    reply = email.message_from_bytes(raw)
    assert (reply["Subject"], reply["From"]) == ("Out of office", "Alice <a@example.test>")


def test_mime_reason_is_the_whole_body_part() -> None:  # RFC 5230 §4.4
    action = Vacation(
        "Content-Type: text/html; charset=utf-8\r\n\r\n<p>Away</p>\r\n", 60, mime=True
    )
    raw = build_reply(
        action, MessageView(BASE + b"\r\n"), ALICE, now=datetime.now(UTC), hostname="h.test"
    )
    reply = email.message_from_bytes(raw)
    assert reply["MIME-Version"] == "1.0"
    assert reply.get_content_type() == "text/html"
    assert reply.get_payload() == "<p>Away</p>\r\n"
