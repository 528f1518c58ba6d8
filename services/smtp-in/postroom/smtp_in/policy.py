"""Pure decisions of smtp-in: who may relay where, who may send as whom, and the limits."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Literal

from postroom.address import canonical, without_tag
from postroom.errors import InvalidInput
from postroom.smtp_in import replies as R
from postroom.smtp_in.replies import SmtpError
from postroom.store.types import Resolution

# Errors (5xx replies to bad commands) tolerated in one session before it is closed, as
# Postfix's smtpd_hard_error_limit: a garbage flood gets an answer, then the door.
MAX_ERRORS = 20
# Transactions in one session (a client resending forever gets a new connection).
MAX_TRANSACTIONS = 1000


class Port(enum.Enum):
    """The three ports: inbound MX, submission with STARTTLS, submission over implicit TLS."""

    INBOUND = "inbound"
    SUBMISSION = "submission"
    SUBMISSIONS = "submissions"

    @property
    def is_submission(self) -> bool:
        return self is not Port.INBOUND

    @property
    def source(self) -> str:
        return "smtp" if self is Port.INBOUND else "submission"


def require_auth(port: Port, authenticated: bool) -> None:
    """RFC 6409 §4.3: submission accepts mail only from authenticated users."""
    if port.is_submission and not authenticated:
        raise SmtpError(R.R530_AUTH_REQUIRED, "auth_required")


Ownership = Literal["own", "tag", "foreign"]


def ownership(address: str, owned: Iterable[str]) -> Ownership:
    """Whose address this is for an account owning ``owned``: its own (an alias of it, or an
    entry of its send-as list), a plus-tagged form of one (``own+tag``: the account's unless
    someone owns that very address, which the caller asks the store), or somebody else's."""
    try:
        wanted = canonical(address)
    except InvalidInput:
        return "foreign"
    mine = {a.lower() for a in owned}
    local, _, domain = wanted.rpartition("@")
    # The account's send-as setting may list more: an address, or ``*@domain`` for a domain.
    if wanted in mine or f"*@{domain}" in mine:
        return "own"
    base = without_tag(local)
    if base and f"{base}@{domain}" in mine:
        return "tag"
    return "foreign"


def check_sender(port: Port, reverse_path: str, owned: Iterable[str]) -> bool:
    """On submission the reverse-path must be one of the account's own addresses or aliases,
    or a plus-tagged form of one; on the inbound port anyone, the null path too. True when it
    is a tagged form, which is the account's only if nobody owns that very address."""
    if not port.is_submission:
        return False
    owner = ownership(reverse_path, owned)
    if owner == "foreign":
        raise SmtpError(R.R553_NOT_OWNER, "sender_not_owned")
    return owner == "tag"


def check_recipient(port: Port, resolution: Resolution | None) -> None:
    """Where a recipient may go: local domains always (550 5.1.1 for nobody there); other
    domains only from authenticated submission: never an open relay (RFC 5321 §3.9)."""
    if resolution is None:
        if not port.is_submission:
            raise SmtpError(R.R554_RELAY_DENIED, "relay_denied")
        return
    if resolution.empty:
        raise SmtpError(R.R550_NO_SUCH_USER, "unknown_user")


def check_recipient_count(accepted: int, max_recipients: int) -> None:
    # RFC 5321 §4.5.3.1.10: past the limit, 452 (the client sends the rest later).
    if accepted >= max_recipients:
        raise SmtpError(R.R452_TOO_MANY_RECIPIENTS, "too_many_recipients")
