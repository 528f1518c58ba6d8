"""What a failed attempt leads to: another attempt later, or a bounce (and with what status)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from postroom.config import Settings
from postroom.store.types import Outcome

ResultKind = Literal["delivered", "transient", "permanent"]

# RFC 3463 §2: class.subject.detail, at the start of the reply text (RFC 2034 §3).
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")


@dataclass(frozen=True, slots=True)
class Result:
    """What one attempt at one recipient came to."""

    kind: ResultKind
    code: int | None = None  # the SMTP reply code, when a server (or we, in its place) replied
    text: str | None = None  # the reply text or our own reason, starting with an RFC 3463 status
    host: str | None = None  # "local", or the remote MTA as name[address]:port
    tls: str | None = None  # the TLS version of the connection, e.g. "TLSv1.3"
    # The next hop took the RFC 3461 DSN request with the recipient: it reports from now on.
    dsn_passed: bool = False
    # The attempt failed inside Postroom (an exception), not at the next hop: it is deferred
    # like a 4xx and also counts towards holding the delivery (POSTROOM_MAX_INTERNAL_FAILURES).
    internal: bool = False


def delivered(host: str, code: int = 250, text: str = "2.0.0 OK", tls: str | None = None) -> Result:
    return Result("delivered", code, text, host, tls)


def one_line(text: str) -> str:
    """A reply or error text as one line: line breaks and other controls become spaces,
    runs of white space one space, so it can be stored, logged and put in a DSN field
    without injecting anything (a multi-line reply or an exception's text)."""
    return " ".join(
        "".join(" " if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 else c for c in text).split()
    )


def transient(text: str, code: int | None = None, host: str | None = None) -> Result:
    return Result("transient", code, one_line(text), host)


def internal_failure(exc: BaseException, where: str) -> Result:
    """An unexpected exception in an attempt: a deferral, never a silent re-claim loop."""
    return Result(
        "transient",
        None,
        f"4.3.0 internal error in {where}: {type(exc).__name__}",
        None,
        internal=True,
    )


def permanent(text: str, code: int | None = None, host: str | None = None) -> Result:
    return Result("permanent", code, one_line(text), host)


def from_reply(code: int, text: str, host: str | None, tls: str | None = None) -> Result:
    """An SMTP reply: 2xx/3xx success, 4xx transient, 5xx permanent (RFC 5321 §4.2.1)."""
    text = one_line(text)
    if 200 <= code < 400:
        return Result("delivered", code, text, host, tls)
    kind: ResultKind = "permanent" if code >= 500 else "transient"
    return Result(kind, code, text, host, tls)


def enhanced_status(code: int | None, text: str | None, kind: ResultKind) -> str:
    """The RFC 3463 status of a reply: its own enhanced code, else one from the reply class."""
    match = _ENHANCED.match(text or "")
    if match:
        return f"{match[1]}.{match[2]}.{match[3]}"
    if code is not None and 200 <= code < 600:
        return f"{code // 100}.0.0"
    return {"delivered": "2.0.0", "transient": "4.0.0", "permanent": "5.0.0"}[kind]


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    next_attempt_at: datetime | None = None
    text: str | None = None  # what the attempts log records (the reply, or why it expired)


def decide(
    result: Result, *, attempts: int, received_at: datetime, now: datetime, settings: Settings
) -> Decision:
    """The next state of a delivery after an attempt; ``attempts`` counts the earlier ones.

    Transient failures are tried again after the configured interval or backoff, but never
    later than the end of the queue lifetime, when one last failure bounces the message
    (Postfix's maximal_queue_lifetime).
    """
    if result.kind == "delivered":
        return Decision("delivered", text=result.text)
    if result.kind == "permanent":
        return Decision("bounced", text=result.text)
    expiry = received_at + settings.max_queue_lifetime
    if now >= expiry:
        reason = f"4.4.7 delivery time expired (queued for {_span(settings.max_queue_lifetime)})"
        last = " ".join(str(p) for p in (result.code, result.text) if p)
        return Decision("bounced", text=f"{reason}; last error: {last}" if last else reason)
    next_at = min(now + settings.retry_delay(attempts + 1), expiry)
    return Decision("deferred", next_attempt_at=next_at, text=result.text)


def _span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
