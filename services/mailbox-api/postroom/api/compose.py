"""Building an outgoing message with the ``email`` package: headers, bodies, attachments."""

from __future__ import annotations

import email.policy
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid

from postroom.address import parse_address
from postroom.errors import InvalidInput

MAX_HEADER_TEXT = 998
MAX_REFERENCES = 50
_TOKEN = re.compile(r"^[a-z0-9!#$&^_.+-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Upload:
    filename: str
    content_type: str | None
    data: bytes


@dataclass
class Draft:
    sender: str
    to: list[str]
    sender_name: str | None = None
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    subject: str = ""
    text: str = ""
    html: str | None = None
    attachments: list[Upload] = field(default_factory=list)
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    forwarded: bytes | None = None  # the original, attached as message/rfc822


def parse_recipients(values: list[str], field_name: str) -> list[str]:
    """Addresses from comma-separated fields such as ``Bob <bob@x.test>, carol@y.test``."""
    out: list[str] = []
    for text in values:
        if any(c in text for c in "\r\n\x00"):
            raise InvalidInput(f"{field_name}: line breaks are not allowed")
        for _name, addr in getaddresses([text]):
            if not addr:
                if text.strip():
                    raise InvalidInput(f"{field_name}: {text.strip()!r} is not a mail address")
                continue
            parsed = parse_address(addr)
            out.append(str(parsed))
    return out


def single_line(value: str, what: str) -> str:
    if any(c in value for c in "\r\n\x00"):
        raise InvalidInput(f"{what} must be one line")
    if len(value) > MAX_HEADER_TEXT:
        raise InvalidInput(f"{what} is longer than {MAX_HEADER_TEXT} characters")
    return value


def _msg_id(value: str) -> str:
    value = value.strip()
    if not value.startswith("<"):
        value = f"<{value}>"
    return single_line(value, "a Message-ID")


def build(draft: Draft, *, domain: str, now: datetime) -> EmailMessage:
    """The message as it will be sent (Bcc is left out of it: it lives in the envelope)."""
    message = EmailMessage(policy=email.policy.SMTP)
    local, _, host = draft.sender.rpartition("@")
    message["From"] = (
        HeaderAddress(
            display_name=single_line(draft.sender_name or "", "the name"), addr_spec=draft.sender
        )
        if local and host
        else draft.sender
    )
    if draft.to:
        message["To"] = ", ".join(draft.to)
    if draft.cc:
        message["Cc"] = ", ".join(draft.cc)
    message["Subject"] = single_line(draft.subject, "the subject")
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=domain)
    if draft.in_reply_to:
        message["In-Reply-To"] = _msg_id(draft.in_reply_to)
    if draft.references:
        message["References"] = " ".join(_msg_id(r) for r in draft.references[-MAX_REFERENCES:])
    message["MIME-Version"] = "1.0"
    message.set_content(draft.text or "", subtype="plain", charset="utf-8", cte="quoted-printable")
    if draft.html:
        message.add_alternative(draft.html, subtype="html", charset="utf-8", cte="quoted-printable")
    for upload in draft.attachments:
        ctype = (
            upload.content_type
            or mimetypes.guess_type(upload.filename)[0]
            or "application/octet-stream"
        ).lower()
        maintype, _, subtype = ctype.partition("/")
        if not _TOKEN.match(maintype) or not _TOKEN.match(subtype):
            maintype, subtype = "application", "octet-stream"
        if maintype == "multipart" or (maintype, subtype) == ("message", "rfc822"):
            maintype, subtype = "application", "octet-stream"
        name = single_line(upload.filename, "an attachment name") or "attachment"
        # As bytes (base64), so the file arrives exactly as uploaded, line endings included.
        message.add_attachment(upload.data, maintype=maintype, subtype=subtype, filename=name)
    if draft.forwarded is not None:
        original = email.message_from_bytes(draft.forwarded, policy=email.policy.SMTP)
        message.add_attachment(original, filename="forwarded.eml")
    return message
