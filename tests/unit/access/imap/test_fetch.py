"""FETCH rendering: the direct ENVELOPE/BODYSTRUCTURE encoders match the generic one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.access.imap import fetch, wire
from postroom.message import parse_message

MESSAGES = {
    "plain": b"From: A <a@example.test>\r\nTo: b@example.test, c@example.test\r\n"
    b"Subject: hi\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n",
    "no-headers": b"\r\njust a body\r\n",
    "group-and-quotes": b'From: "Q \\"uote\\"" <q@example.test>\r\n'
    b"To: friends: x@example.test, y@example.test;\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\r\nx\r\n",
    "eight-bit": "Subject: café\r\nFrom: Zoë <z@example.test>\r\n\r\nx\r\n".encode(),
    "multipart": b"From: a@example.test\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Language: en, de\r\n\r\nfirst\r\n"
    b'--b\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline; filename="m.eml"\r\n\r\n'
    b"Subject: inner\r\nFrom: i@example.test\r\n\r\ninner body\r\n--b\r\n"
    b'Content-Type: multipart/alternative; boundary="c"\r\n\r\n--c\r\n'
    b"Content-Type: text/html\r\nContent-Location: http://example.test/x\r\n\r\n<p>x</p>\r\n"
    b"--c--\r\n--b--\r\n",
}


@pytest.mark.parametrize("raw", list(MESSAGES.values()), ids=list(MESSAGES))
@pytest.mark.parametrize("extensible", [True, False], ids=["bodystructure", "body"])
def test_direct_encoders_give_the_generic_octets(raw: bytes, extensible: bool) -> None:
    parsed = parse_message(raw).to_json()
    envelope = parsed["envelope"]
    assert fetch.envelope_bytes(envelope) == wire.encode_value(fetch.envelope_value(envelope))
    body = parsed["body"]
    assert fetch.body_bytes(body, extensible=extensible) == wire.encode_value(
        fetch.body_value(body, extensible=extensible)
    )


@given(
    subject=st.text(
        alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00\r\n"),
        max_size=40,
    ),
    name=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
)
def test_envelope_strings_encode_like_wire_quote(subject: str, name: str) -> None:
    envelope = {
        "date": None, "subject": subject, "from": [[name, None, "a", "example.test"]],
        "sender": None, "reply_to": None, "to": None, "cc": None, "bcc": None,
        "in_reply_to": None, "message_id": None,
    }  # fmt: skip
    assert fetch.envelope_bytes(envelope) == wire.encode_value(fetch.envelope_value(envelope))
