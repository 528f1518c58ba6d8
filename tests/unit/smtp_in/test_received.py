"""Trace and submission header fields."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from postroom.smtp_in.received import add_submission_headers, protocol_name, received_header

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
DATE = b"Date: Thu, 26 Nov 2026 12:00:00 +0000\r\n"


@pytest.mark.parametrize(
    ("esmtp", "tls", "auth", "utf8", "name"),
    [(False, False, False, False, "SMTP"), (True, False, False, False, "ESMTP"),
     (True, True, False, False, "ESMTPS"), (True, False, True, False, "ESMTPA"),
     (True, True, True, False, "ESMTPSA"), (True, True, True, True, "UTF8SMTPSA")],
)  # fmt: skip
def test_protocol_names_of_rfc_3848_and_6531(
    esmtp: bool, tls: bool, auth: bool, utf8: bool, name: str
) -> None:
    assert protocol_name(esmtp=esmtp, tls=tls, authenticated=auth, smtputf8=utf8) == name


def test_received_with_tls_and_one_recipient() -> None:
    header = received_header(
        helo="client.example", client_ip="::1", hostname="mx.example", protocol="ESMTPS",
        transaction_id="ABC", tls="TLSv1.3 TLS_AES_256_GCM_SHA384", recipient="a@b.example",
        now=NOW,
    )  # fmt: skip
    assert header == (
        b"Received: from client.example ([IPv6:::1])\r\n\tby mx.example (Postroom)\r\n"
        b"\twith ESMTPS id ABC\r\n\t(version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384)\r\n"
        b"\tfor <a@b.example>; Thu, 26 Nov 2026 12:00:00 +0000\r\n"
    )


def test_a_recipient_cannot_write_the_date_of_the_header() -> None:
    """<"x; Mon, 1 Jan 2001"@d> would end the FOR clause and bring its own date."""
    header = received_header(
        helo="c", client_ip="127.0.0.1", hostname="mx", protocol="SMTP", transaction_id="1",
        tls=None, recipient='"x; Mon, 1 Jan 2001 00:00:00 +0000"@b.example', now=NOW,
    )  # fmt: skip
    assert header.endswith(b"\twith SMTP id 1; Thu, 26 Nov 2026 12:00:00 +0000\r\n")
    assert b"2001" not in header


def test_a_hostile_helo_cannot_break_the_header() -> None:
    header = received_header(
        helo="x(y);z", client_ip="127.0.0.1", hostname="mx", protocol="SMTP",
        transaction_id="1", tls=None, recipient=None, now=NOW,
    )  # fmt: skip
    assert header.startswith(b"Received: from x?y??z ([127.0.0.1])\r\n")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (b"Subject: s\r\n\r\nbody\r\n",
         b"Subject: s\r\n" + DATE + b"Message-ID: <m@h>\r\n\r\nbody\r\n"),
        (b"Subject: s\r\n", b"Subject: s\r\n" + DATE + b"Message-ID: <m@h>\r\n"),
        (b"Subject: s", b"Subject: s\r\n" + DATE + b"Message-ID: <m@h>\r\n"),
        (b"\r\nbody\r\n", DATE + b"Message-ID: <m@h>\r\n\r\nbody\r\n"),
        (b"date: x\r\nMESSAGE-ID: <y>\r\n\r\nb\r\n", b"date: x\r\nMESSAGE-ID: <y>\r\n\r\nb\r\n"),
        (b"Subject: s\r\n\r\nDate: in the body\r\n",
         b"Subject: s\r\n" + DATE + b"Message-ID: <m@h>\r\n\r\nDate: in the body\r\n"),
    ],
    ids=["normal", "headers-only", "no-final-crlf", "no-headers", "both-present", "date-in-body"],
)  # fmt: skip
def test_submission_headers_are_added_when_missing(message: bytes, expected: bytes) -> None:
    assert add_submission_headers(message, hostname="h", now=NOW, message_id="<m@h>") == expected
