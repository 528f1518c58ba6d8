"""Header fields smtp-in adds: the Received: trace (RFC 5321 §4.4) and, on submission, the
Message-ID and Date a client left out (RFC 6409 §8)."""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from email.utils import format_datetime

_HEADER_NAME = re.compile(rb"^(message-id|date)[ \t]*:", re.I | re.M)


def protocol_name(*, esmtp: bool, tls: bool, authenticated: bool, smtputf8: bool) -> str:
    """The WITH keyword: RFC 3848's ESMTP/ESMTPA/ESMTPS/ESMTPSA, RFC 6531 §3.7.3's UTF8 forms."""
    if not esmtp:
        return "SMTP"
    base = "UTF8SMTP" if smtputf8 else "ESMTP"
    return base + ("S" if tls else "") + ("A" if authenticated else "")


def received_header(
    *,
    helo: str,
    client_ip: str,
    hostname: str,
    protocol: str,
    transaction_id: str,
    tls: str | None,
    recipient: str | None,
    now: datetime,
) -> bytes:
    """``Received: from helo ([ip]) by host with PROTO id ID (TLS) for <rcpt>; date``.

    RFC 5321 §4.4: the FROM clause carries the EHLO name and the TCP-info (an address literal,
    no reverse DNS here); the recipient is named only when there is just one, so that a copy
    never reveals the other (perhaps blind) recipients.
    """
    literal = f"IPv6:{client_ip}" if ":" in client_ip else client_ip
    lines = [f"Received: from {_clean(helo)} ([{literal}])", f"\tby {hostname} (Postroom)"]
    lines.append(f"\twith {protocol} id {transaction_id}")
    if tls:
        version, _, cipher = tls.partition(" ")
        lines.append(f"\t(version={version} cipher={cipher or 'unknown'})")
    # A quoted local part may hold ";" or parentheses (<"x; date"@d>), which would end the
    # clause early and let the sender write the date: such a recipient is not named.
    if recipient and not any(c in recipient for c in ";()\\\r\n"):
        lines.append(f"\tfor <{recipient}>")
    lines[-1] += f"; {format_datetime(now)}"
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", "surrogateescape")


def _clean(text: str) -> str:
    # The EHLO name is the client's to choose: keep it from breaking the header's syntax.
    cleaned = "".join(c if c.isprintable() and c not in "()\\;" else "?" for c in text)
    return cleaned or "unknown"


def new_transaction_id() -> str:
    return secrets.token_hex(8).upper()


def add_submission_headers(
    data: bytes, *, hostname: str, now: datetime, message_id: str | None = None
) -> bytes:
    """Add Message-ID and Date at the end of the header section when missing (RFC 6409 §8.2,
    §8.3). Nothing else in the message changes."""
    if data.startswith(b"\r\n"):
        head_end = 0  # an empty header section: only a body
    else:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            head_end = end + 2
        else:
            # Header fields only; one without its final line end gets one before appending.
            if data and not data.endswith(b"\r\n"):
                data += b"\r\n"
            head_end = len(data)
    head = data[:head_end]
    present = {m.group(1).lower() for m in _HEADER_NAME.finditer(head)}
    added = b""
    if b"date" not in present:
        added += b"Date: " + format_datetime(now).encode() + b"\r\n"
    if b"message-id" not in present:
        mid = message_id or f"<{secrets.token_hex(12)}@{hostname}>"
        added += b"Message-ID: " + mid.encode() + b"\r\n"
    if not added:
        return data
    return data[:head_end] + added + data[head_end:]
