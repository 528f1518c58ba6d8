"""DSNs as RFC 3464 lays them out, read back with the email package."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy
from typing import Literal

from postroom.delivery.dsn import RecipientStatus, build_dsn, original_header
from postroom.store.types import BlobId, QueuedMessage, QueueId

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ORIGINAL = (
    b"From: a@example.test\r\nSubject: hello\r\nMessage-ID: <m1@example.test>\r\n\r\nbody\r\n"
)


def queued(env_id: str | None = None, ret: Literal["FULL", "HDRS"] | None = None) -> QueuedMessage:
    return QueuedMessage(
        id=QueueId(7), blob_id=BlobId(1), reverse_path="a@example.test", received_at=NOW,
        source="smtp", client_address=None, client_name=None, helo_name=None, protocol=None,
        tls=None, auth_account_id=None, message_id="<m1@example.test>", size=len(ORIGINAL),
        env_id=env_id, dsn_ret=ret, bounce_of=None,
    )  # fmt: skip


def failed(recipient: str, **kw: object) -> RecipientStatus:
    fields: dict[str, object] = {
        "final_recipient": recipient, "original_recipient": None, "action": "failed",
        "status": "5.1.1", "diagnostic": "smtp; 550 5.1.1 unknown", "remote_mta": "mx.remote.test",
        "last_attempt": NOW,
    }  # fmt: skip
    fields.update(kw)
    return RecipientStatus(**fields)  # type: ignore[arg-type]


def parse(raw: bytes) -> email.message.EmailMessage:
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


def test_dsn_is_a_multipart_report_of_three_parts() -> None:
    raw = build_dsn(message=queued(), original=ORIGINAL, recipients=[failed("b@r.test")],
                    reporting_mta="mx.here.test", now=NOW)  # fmt: skip
    dsn = parse(raw)
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    assert [p.get_content_type() for p in dsn.iter_parts()] == [
        "text/plain", "message/delivery-status", "text/rfc822-headers",
    ]  # fmt: skip
    assert dsn["From"] == "Mail Delivery System <MAILER-DAEMON@mx.here.test>"
    assert dsn["To"] == "a@example.test"
    assert dsn["Auto-Submitted"] == "auto-replied"
    assert dsn["In-Reply-To"] == "<m1@example.test>"


def test_delivery_status_fields_per_message_and_per_recipient() -> None:
    raw = build_dsn(
        message=queued(env_id="ENV1"), original=ORIGINAL,
        recipients=[failed("b@r.test", original_recipient="rfc822;B@r.test"), failed("c@r.test")],
        reporting_mta="mx.here.test", now=NOW,
    )  # fmt: skip
    _, status, headers = parse(raw).iter_parts()
    per_message, first, second = status.get_payload()  # type: ignore[misc]
    assert per_message["Reporting-MTA"] == "dns; mx.here.test"
    assert per_message["Original-Envelope-Id"] == "ENV1"
    assert per_message["Arrival-Date"] == "Sun, 01 Mar 2026 12:00:00 +0000"
    assert first["Original-Recipient"] == "rfc822;B@r.test"
    assert first["Final-Recipient"] == "rfc822; b@r.test"
    assert (first["Action"], first["Status"]) == ("failed", "5.1.1")
    assert first["Remote-MTA"] == "dns; mx.remote.test"
    assert first["Diagnostic-Code"] == "smtp; 550 5.1.1 unknown"
    assert second["Final-Recipient"] == "rfc822; c@r.test"
    assert "Subject: hello" in headers.get_content()


def test_returned_header_stops_at_the_body_and_stays_7bit() -> None:
    assert original_header("Subject: Grüße\r\n\r\nbody".encode()) == "Subject: Gr????e\n"


def test_ret_full_returns_the_whole_message_byte_for_byte() -> None:
    raw = build_dsn(message=queued(ret="FULL"), original=ORIGINAL, recipients=[failed("b@r.test")],
                    reporting_mta="mx.here.test", now=NOW)  # fmt: skip
    parts = list(parse(raw).iter_parts())
    assert parts[2].get_content_type() == "message/rfc822"
    assert ORIGINAL in raw
    assert parts[2].get_payload(0)["Subject"] == "hello"


def test_ret_full_of_a_large_or_8bit_message_returns_its_header_only() -> None:
    big = ORIGINAL + b"x" * 60_000 + b"\r\n"
    eight_bit = ORIGINAL.replace(b"body", "bödy".encode())
    for original in (big, eight_bit):
        raw = build_dsn(message=queued(ret="FULL"), original=original,
                        recipients=[failed("b@r.test")], reporting_mta="mx.here.test",
                        now=NOW)  # fmt: skip
        assert list(parse(raw).iter_parts())[2].get_content_type() == "text/rfc822-headers"


def test_ret_full_of_a_delay_warning_returns_the_header_only() -> None:
    raw = build_dsn(message=queued(ret="FULL"), original=ORIGINAL,
                    recipients=[failed("b@r.test", action="delayed", status="4.4.1")],
                    reporting_mta="mx.here.test", now=NOW, will_retry_until=NOW)  # fmt: skip
    assert list(parse(raw).iter_parts())[2].get_content_type() == "text/rfc822-headers"
