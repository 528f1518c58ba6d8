"""DSN messages (RFC 3464, RFC 6533): built from whatever the envelope and the original hold.

Building a DSN never raises and never lets a value inject a line: every field value is
reduced to one line of printable characters (and cut) before it is written, and the message
is assembled line by line here rather than by the email package's generator, which refuses
or re-encodes such values unpredictably (a DSN that cannot be built is a message whose sender
is never told, and used to stop the queue sweep). The email package reads them back in the
tests.

A DSN goes to the original envelope sender with the null reverse path (RFC 5321 §4.5.5, so
it can never bounce back), From MAILER-DAEMON@<hostname>. It carries a readable first part,
the machine-readable status part, and the original message: whole (message/rfc822) when the
sender asked RET=FULL (RFC 3461 §4.3), the message is at most MAX_RETURNED_MESSAGE octets and
7-bit, so that the DSN stays small and goes anywhere; else its header (text/rfc822-headers).

When the original came with SMTPUTF8 (RFC 6531) its sender can read UTF-8, so the DSN is an
internationalized one (RFC 6533 §6): message/global-delivery-status with UTF-8 addresses
("utf-8" address type) and message/global-headers. Otherwise everything is ASCII: non-ASCII
addresses as utf-8-addr-xtext (RFC 6533 §3), other non-ASCII text as "?".
"""

from __future__ import annotations

import email.utils
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from postroom.store.types import QueuedMessage

Action = Literal["failed", "delayed", "delivered", "relayed"]
# Original headers returned in a DSN are cut at this size.
MAX_RETURNED_HEADER = 64 * 1024
# RET=FULL returns the whole message up to this size (Postfix's bounce_size_limit).
MAX_RETURNED_MESSAGE = 50_000
# One field value at most (RFC 5322 §2.1.1 allows 998 octets per line, with the name).
MAX_VALUE = 900

_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
_ADDRESS_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,30}")
_HOST = re.compile(r"[A-Za-z0-9.:\[\]-]{1,255}")


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    """One per-recipient block of the delivery-status part (RFC 3464 §2.3)."""

    final_recipient: str
    original_recipient: str | None
    action: Action
    status: str
    diagnostic: str | None
    remote_mta: str | None
    last_attempt: datetime | None


def is_smtputf8(message: QueuedMessage) -> bool:
    """Whether the message came with SMTPUTF8: its RFC 6531 §3.7.4 protocol name (UTF8SMTP,
    UTF8SMTPA, UTF8SMTPS, UTF8SMTPSA), or a non-ASCII envelope sender, which needs it."""
    return (message.protocol or "").upper().startswith("UTF8") or not message.reverse_path.isascii()


def one_line(text: str, *, utf8: bool, limit: int = MAX_VALUE) -> str:
    """Text as one line of printable characters: controls (CR and LF among them) become
    spaces, runs of white space one space; non-ASCII stays only when ``utf8``, else "?"."""
    out = []
    for ch in text:
        code = ord(ch)
        if code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0 or ch.isspace():
            out.append(" ")
        elif code > 0x7F and (not utf8 or 0xD800 <= code <= 0xDFFF or not ch.isprintable()):
            out.append("?")
        else:
            out.append(ch)
    return " ".join("".join(out).split())[:limit]


def utf8_addr_xtext(address: str) -> str:
    """RFC 6533 §3 utf-8-addr-xtext: printable ASCII as itself except "+", "=", "\\" and
    space; anything else as \\x{HEX} of its code point."""
    return "".join(
        ch if 0x21 <= ord(ch) <= 0x7E and ch not in "+=\\" else f"\\x{{{ord(ch):X}}}"
        for ch in address
    )


def typed_address(value: str, *, utf8: bool, typed: bool = True) -> str:
    """An address-type;address field value (RFC 3464 §2.3.1/§2.3.2, RFC 6533 §3), from a
    "type;address" value (an ORCPT) or, not ``typed``, from an envelope address."""
    addr_type, semicolon, address = value.partition(";")
    if not typed or not semicolon or not _ADDRESS_TYPE.fullmatch(addr_type.strip()):
        addr_type, address, bare = "rfc822", value, True
    else:
        addr_type, address, bare = addr_type.strip(), address.strip(), False
    plain = address.isascii() and address.isprintable() and " " not in address
    if addr_type.lower() in ("rfc822", "utf-8") and not plain:
        # RFC 6533 §3: an address that is not plain ASCII is of type utf-8; raw UTF-8 in a
        # global DSN, xtext-encoded in a plain one.
        if utf8 and one_line(address, utf8=True) == address:
            return f"utf-8; {address[:MAX_VALUE]}"
        return f"utf-8; {utf8_addr_xtext(address)[:MAX_VALUE]}"
    if not plain:
        return f"{addr_type}; {utf8_addr_xtext(address)[:MAX_VALUE]}"
    return f"rfc822; {address[:MAX_VALUE]}" if bare else f"{addr_type};{address[:MAX_VALUE]}"


def _date(when: datetime) -> str:
    return email.utils.format_datetime(when)


def original_header(raw: bytes) -> str:
    """The header section of a message, as 7-bit text for text/rfc822-headers."""
    return (
        _header_bytes(raw).decode("ascii", "replace").replace("\ufffd", "?").replace("\r\n", "\n")
    )


_CONTROLS = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _header_bytes(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    head = raw[: end + 2] if end >= 0 else raw[:MAX_RETURNED_HEADER]
    return _CONTROLS.sub(b"?", head[:MAX_RETURNED_HEADER])


def _crlf_lines(data: bytes) -> bytes:
    """Bytes with every line ending CRLF (bare CR or LF included), ending in CRLF."""
    lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join(line + b"\r\n" for line in lines)


def returns_whole(message: QueuedMessage, original: bytes, action: Action) -> bool:
    """RET=FULL on a failure, for a small 7-bit message (delay warnings return headers)."""
    return (
        message.dsn_ret == "FULL"
        and action == "failed"
        and len(original) <= MAX_RETURNED_MESSAGE
        and original.isascii()
    )


def _msg_id(value: str | None, *, utf8: bool) -> str | None:
    """The original's Message-ID when it is one msg-id (RFC 5322 §3.6.4), else None."""
    if not value:
        return None
    value = value.strip()
    inner = value[1:-1]
    if (
        len(value) > MAX_VALUE
        or not (value.startswith("<") and value.endswith(">"))
        or not inner
        or one_line(inner, utf8=utf8) != inner
        or any(c in inner for c in ' <>"\\')
    ):
        return None
    return value


def _block(fields: Sequence[tuple[str, str | None]]) -> list[str]:
    return [f"{name}: {value}" for name, value in fields if value is not None]


def _text_part(recipients: Sequence[RecipientStatus], reporting_mta: str, action: Action,
               will_retry_until: datetime | None, utf8: bool) -> tuple[str, list[str]]:  # fmt: skip
    lines = [f"This is the mail system at host {reporting_mta}.", ""]
    if action == "failed":
        lines += [
            "I'm sorry to have to inform you that your message could not",
            "be delivered to one or more recipients. It's attached below.",
        ]
        subject = "Undelivered Mail Returned to Sender"
    elif action in ("delivered", "relayed"):
        lines += [
            "Your message was successfully delivered to the destination(s) listed below."
            if action == "delivered"
            else "Your message was passed on to the destination(s) listed below, which will "
            "not report on it further.",
            "This report was sent because you asked for one (NOTIFY=SUCCESS).",
        ]
        subject = "Successful Mail Delivery Report"
    else:
        lines += [
            "Your message could not be delivered yet to one or more recipients.",
            "The mail system will keep trying"
            + (f" until {_date(will_retry_until)}." if will_retry_until else "."),
            "You do not need to send it again.",
        ]
        subject = "Delayed Mail (still being retried)"
    lines.append("")
    for r in recipients:
        who = one_line(r.final_recipient, utf8=utf8, limit=320)
        what = one_line(r.diagnostic or r.status, utf8=utf8, limit=600)
        lines.append(f"<{who}>: {what}")
    return subject, lines


def build_dsn(
    *,
    message: QueuedMessage,
    original: bytes,
    recipients: Sequence[RecipientStatus],
    reporting_mta: str,
    now: datetime,
    will_retry_until: datetime | None = None,
) -> bytes:
    """The DSN for some recipients of ``message`` (all with the same action)."""
    utf8 = is_smtputf8(message)
    action = recipients[0].action
    mta = reporting_mta if _HOST.fullmatch(reporting_mta) else "localhost"
    subject, text = _text_part(recipients, mta, action, will_retry_until, utf8)

    envid = None
    if message.env_id is not None:
        envid = one_line(message.env_id, utf8=False)
        if envid != message.env_id:  # RFC 3464 §2.2.1: printable ASCII; xtext otherwise
            envid = utf8_addr_xtext(message.env_id)[:MAX_VALUE]
    status_lines = _block(
        [
            ("Reporting-MTA", f"dns; {mta}"),
            ("Original-Envelope-Id", envid or None),
            ("Arrival-Date", _date(message.received_at)),
        ]
    )
    for r in recipients:
        status = r.status if _STATUS.fullmatch(r.status) else f"{r.status[:1]}.0.0"
        if not _STATUS.fullmatch(status):
            status = "5.0.0" if action == "failed" else "4.0.0" if action == "delayed" else "2.0.0"
        remote = r.remote_mta if r.remote_mta and _HOST.fullmatch(r.remote_mta) else None
        diagnostic = one_line(r.diagnostic, utf8=utf8) if r.diagnostic else None
        status_lines.append("")
        status_lines += _block(
            [
                (
                    "Original-Recipient",
                    typed_address(r.original_recipient, utf8=utf8)
                    if r.original_recipient
                    else None,
                ),
                ("Final-Recipient", typed_address(r.final_recipient, utf8=utf8, typed=False)),
                ("Action", action),
                ("Status", status),
                ("Remote-MTA", f"dns; {remote}" if remote else None),
                ("Diagnostic-Code", diagnostic or None),
                ("Last-Attempt-Date", _date(r.last_attempt) if r.last_attempt else None),
                (
                    "Will-Retry-Until",
                    _date(will_retry_until) if action == "delayed" and will_retry_until else None,
                ),
            ]
        )

    if returns_whole(message, original, action):
        returned_type, description = "message/rfc822", "Undelivered Message"
        returned = _crlf_lines(original)
    elif utf8:
        # RFC 6533 §6.3: the header of an internationalized message, 8-bit as it came.
        returned_type, description = "message/global-headers", "Undelivered Message Headers"
        returned = _crlf_lines(_header_bytes(original))
    else:
        returned_type = 'text/rfc822-headers; charset="us-ascii"'
        description = "Undelivered Message Headers"
        returned = _crlf_lines(original_header(original).encode("ascii"))

    charset = "utf-8" if utf8 else "us-ascii"
    status_type = "message/global-delivery-status" if utf8 else "message/delivery-status"
    text_bytes = "\r\n".join(text).encode(charset) + b"\r\n"
    status_bytes = "\r\n".join(status_lines).encode(charset) + b"\r\n"
    boundary = _boundary(text_bytes, status_bytes, returned)
    # RFC 6522 §3 (report-type), RFC 6533 §6.2: global-delivery-status for a UTF-8 DSN.
    report_type = "global-delivery-status" if utf8 else "delivery-status"
    to = one_line(message.reverse_path, utf8=utf8, limit=320).replace("<", "").replace(">", "")
    head = [
        f"From: Mail Delivery System <MAILER-DAEMON@{mta}>",
        f"To: <{to}>",
        f"Subject: {subject}",
        f"Date: {_date(now)}",
        f"Message-ID: {email.utils.make_msgid(domain=mta)}",
        "Auto-Submitted: auto-replied",  # RFC 3834 §5
    ]
    if msg_id := _msg_id(message.message_id, utf8=utf8):
        head += [f"In-Reply-To: {msg_id}", f"References: {msg_id}"]
    head += [
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type={report_type}; boundary="{boundary}"',
    ]
    eight_bit = "8bit" if utf8 else "7bit"
    parts = [
        (f'text/plain; charset="{charset}"', eight_bit, "Notification", text_bytes),
        (status_type, eight_bit, "Delivery report", status_bytes),
        (
            returned_type,
            "8bit" if not returned.isascii() else "7bit",
            description,
            returned,
        ),
    ]
    out = ["\r\n".join(head).encode("ascii" if not utf8 else "utf-8") + b"\r\n\r\n"]
    for content_type, encoding, part_description, body in parts:
        out.append(
            f"--{boundary}\r\nContent-Type: {content_type}\r\n"
            f"Content-Description: {part_description}\r\n"
            f"Content-Transfer-Encoding: {encoding}\r\n\r\n".encode("ascii")
        )
        out.append(body)
    out.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(out)


def _boundary(*parts: bytes) -> str:
    """A boundary found in none of the parts (RFC 2046 §5.1.1)."""
    while True:
        boundary = f"=_dsn_{secrets.token_hex(12)}"
        if not any(boundary.encode() in part for part in parts):
            return boundary
