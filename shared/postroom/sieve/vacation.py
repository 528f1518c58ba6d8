"""Vacation replies (RFC 5230, RFC 3834): whether to answer a message, and the answer itself."""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from datetime import datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import SMTP
from email.utils import format_datetime, getaddresses, make_msgid

from postroom.sieve.actions import Vacation
from postroom.sieve.mail import Envelope, MessageView

# RFC 2369 and RFC 2919: a message that carries any of these came through a mailing list.
_LIST_HEADERS = (
    "list-id",
    "list-help",
    "list-subscribe",
    "list-unsubscribe",
    "list-post",
    "list-owner",
    "list-archive",
)
# RFC 5230 §4.6 (examples) and RFC 3834 §2: senders that are programs, not people.
_ROBOT_LOCALPARTS = ("mailer-daemon", "listserv", "majordomo", "postmaster", "noreply", "no-reply")
_RECIPIENT_HEADERS = ("to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc")


def refusal(
    action: Vacation, message: MessageView, envelope: Envelope, own: Collection[str]
) -> str | None:
    """Why no reply may be sent (None: reply). ``own`` are the recipient's addresses."""
    sender = envelope.sender.lower()
    mine = {a.lower() for a in (*own, *action.addresses)}
    if not sender:
        return "null sender"  # RFC 5230 §4.6, RFC 3834 §2
    if sender in mine:
        return "sender is the recipient"  # RFC 5230 §4.6: never reply to oneself
    local = sender.rpartition("@")[0]
    if local in _ROBOT_LOCALPARTS or local.startswith("owner-") or local.endswith("-request"):
        return "sender is a mailing program"  # RFC 5230 §4.6
    for value in message.header_values("auto-submitted"):
        if value.split(";")[0].strip().lower() != "no":
            return "message is auto-submitted"  # RFC 3834 §2, §5
    if any(message.raw_values(name) for name in _LIST_HEADERS):
        return "message is from a mailing list"  # RFC 5230 §4.6
    for value in message.header_values("precedence"):
        if value.lower() in ("bulk", "list", "junk"):
            return "message is bulk mail"  # RFC 3834 §2
    # RFC 5230 §4.5: only answer when the message was addressed to the user in its headers.
    named = {
        addr.lower()
        for header in _RECIPIENT_HEADERS
        for _name, addr in getaddresses(message.raw_values(header))
    }
    if not named & mine:
        return "recipient not named in the message's To, Cc or Bcc"
    return None


def tracking_key(action: Vacation) -> str:
    """RFC 5230 §4.2: the :handle, or else one derived from the reply's own arguments."""
    if action.handle:
        return "h:" + action.handle
    digest = hashlib.sha256(
        "\0".join(
            [action.reason, action.subject or "", action.from_address or "", str(action.mime)]
        ).encode()
    ).hexdigest()
    return "d:" + digest[:32]


def build_reply(
    action: Vacation, message: MessageView, envelope: Envelope, *, now: datetime, hostname: str
) -> bytes:
    """RFC 5230 §5: the reply; sent with the null reverse path to the envelope sender."""
    original_subject = (message.header_values("subject") or [""])[0]
    reply = EmailMessage(policy=SMTP)
    # RFC 5230 §5.3: From is :from or the recipient's own address.
    reply["From"] = action.from_address or envelope.recipient
    reply["To"] = envelope.sender  # RFC 5230 §5.2: to the envelope sender
    # RFC 5230 §5.4: the default subject is "Auto:" and the original subject.
    reply["Subject"] = action.subject if action.subject is not None else f"Auto: {original_subject}"
    reply["Date"] = format_datetime(now)
    reply["Message-ID"] = make_msgid(domain=hostname)
    original_id = (message.raw_values("message-id") or [""])[0].strip()
    if original_id:
        # RFC 5230 §5.8, RFC 5322 §3.6.4: In-Reply-To and References name the original.
        reply["In-Reply-To"] = original_id
        references = " ".join(v.strip() for v in message.raw_values("references"))
        reply["References"] = f"{references} {original_id}".strip()
    reply["Auto-Submitted"] = "auto-replied"  # RFC 3834 §5, RFC 5230 §5.6
    if action.mime:
        # RFC 5230 §4.4: with :mime the reason is a whole MIME entity (headers and body).
        part = BytesParser(policy=SMTP).parsebytes(action.reason.encode())
        if "MIME-Version" not in part:
            reply["MIME-Version"] = "1.0"  # RFC 2045 §4
        for name, value in part.items():
            reply[name] = value
        reply.set_payload(part.get_payload())
    else:
        reply.set_content(action.reason, charset="utf-8")
    return reply.as_bytes()
