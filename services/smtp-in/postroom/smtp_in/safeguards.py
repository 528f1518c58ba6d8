"""What received mail may not make us do: go round a loop (the hop limit) or amplify (DSN
requests of senders who did not authenticate)."""

from __future__ import annotations

import dataclasses
import re

from postroom.config import Settings
from postroom.smtp_in.replies import Reply
from postroom.smtp_in.session import ACCEPT, Envelope, Hooks, MessageCheck, Verdict
from postroom.smtp_in.syntax import RecipientOptions

_RECEIVED = re.compile(rb"^received[ \t]*:", re.I | re.M)
# The header section is searched at most this far (a loop's Received fields are at the top).
MAX_HEADER_SCAN = 256 * 1024


def received_count(raw: bytes) -> int:
    """How many Received: fields the header section holds (RFC 5321 §4.4, §6.3)."""
    end = raw.find(b"\r\n\r\n")
    head = raw[: end + 2 if end >= 0 else MAX_HEADER_SCAN][:MAX_HEADER_SCAN]
    return len(_RECEIVED.findall(head))


def hop_limit(settings: Settings) -> MessageCheck:
    """RFC 5321 §6.3: a message that has crossed more hops than any sane path has is in a
    loop; refuse it (RFC 3463 5.4.6, routing loop detected) instead of passing it round."""
    limit = settings.max_hops

    async def check(txn: Envelope, raw: bytes) -> Verdict:
        hops = received_count(raw)
        if hops <= limit:
            return ACCEPT
        reply = Reply(554, "5.4.6", f"Too many hops ({hops} Received: fields): a mail loop?")
        return Verdict(reply=reply, reason="hop_limit")

    return check


def unauthenticated_dsn(settings: Settings) -> MessageCheck:
    """The DSN policy for senders who did not authenticate (anyone on port 25).

    Their envelope sender may be forged, so a success or delay DSN would send our words to
    a stranger's victim: RFC 3461 §4.1 lets NOTIFY be honoured as local policy allows.
    Only the kinds named in POSTROOM_UNAUTHENTICATED_NOTIFY (default FAILURE: a failure DSN
    for accepted mail, which RFC 5321 §6.1 requires) are kept; NOTIFY=SUCCESS alone becomes
    NEVER. A DSN of such mail never returns more than the headers (RET=FULL becomes HDRS,
    RFC 3461 §4.3). The same request is passed on to the next hop when the mail is
    forwarded, so no other server is made to amplify either.
    """
    allowed = set(settings.unauthenticated_notify)

    async def check(txn: Envelope, raw: bytes) -> Verdict:
        if txn.account is not None:
            return ACCEPT
        if txn.options.ret == "FULL":
            txn.options = dataclasses.replace(txn.options, ret="HDRS")
        for recipient in txn.recipients:
            options = txn.dsn.get(recipient)
            asked = (options.notify if options else None) or "FAILURE,DELAY"  # RFC 3461 §4.1
            if asked == "NEVER":
                continue
            kept = [word for word in asked.split(",") if word in allowed]
            notify = ",".join(kept) or "NEVER"
            if options is None:
                if set(kept) != {"FAILURE", "DELAY"}:
                    txn.dsn[recipient] = RecipientOptions(notify=notify)
            elif notify != options.notify:
                txn.dsn[recipient] = dataclasses.replace(options, notify=notify)
        return ACCEPT

    return check


def install(hooks: Hooks, settings: Settings) -> None:
    # Both read the header section (and the envelope) only: header checks.
    hooks.header_checks[:0] = [hop_limit(settings), unauthenticated_dsn(settings)]
