"""The values the store hands out: frozen dataclasses and id types, never database rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NewType

DomainId = NewType("DomainId", int)
AccountId = NewType("AccountId", int)
MailboxId = NewType("MailboxId", int)
MessageId = NewType("MessageId", int)
BlobId = NewType("BlobId", int)
QueueId = NewType("QueueId", int)
DeliveryId = NewType("DeliveryId", int)

DeliveryState = Literal["queued", "deferred", "delivered", "bounced", "held"]
Outcome = Literal["delivered", "deferred", "bounced"]
FlagMode = Literal["set", "add", "remove"]
Source = Literal["smtp", "submission", "api", "bounce", "local"]

# IMAP system flags (RFC 3501 §2.3.2) and the columns that keep them. \Recent is not stored
# per message: it is a property of the session (see Mailbox.first_recent_uid).
SYSTEM_FLAGS: dict[str, str] = {
    "\\Seen": "seen",
    "\\Answered": "answered",
    "\\Flagged": "flagged",
    "\\Deleted": "deleted",
    "\\Draft": "draft",
}

# The folders every new account gets, with their RFC 6154 special use.
DEFAULT_MAILBOXES: tuple[tuple[str, str | None], ...] = (
    ("INBOX", None),
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)


@dataclass(frozen=True, slots=True)
class Domain:
    id: DomainId
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Account:
    id: AccountId
    domain_id: DomainId
    address: str
    is_admin: bool
    disabled: bool
    quota_bytes: int | None
    created_at: datetime
    # What the account's mailboxes hold now, and the optional limit on their message count.
    used_bytes: int = 0
    used_messages: int = 0
    quota_messages: int | None = None
    # Addresses and ``*@domain`` entries it may send as beyond its own and its aliases.
    send_as: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Alias:
    id: int
    source: str
    destination: str


@dataclass(frozen=True, slots=True)
class Resolution:
    """Where mail for one address goes: local accounts and remote addresses (after aliases)."""

    accounts: tuple[Account, ...] = ()
    remote: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.accounts and not self.remote


@dataclass(frozen=True, slots=True)
class Mailbox:
    id: MailboxId
    account_id: AccountId
    name: str
    uid_validity: int
    uid_next: int
    highest_modseq: int
    first_recent_uid: int
    special_use: str | None
    subscribed: bool
    selectable: bool


@dataclass(frozen=True, slots=True)
class MailboxStatus:
    messages: int
    recent: int
    unseen: int
    uid_next: int
    uid_validity: int
    highest_modseq: int
    size: int
    first_unseen_uid: int | None
    # Messages flagged \Deleted and their octets (RFC 9208 §4.1.4 DELETED, DELETED-STORAGE).
    deleted: int = 0
    deleted_size: int = 0


@dataclass(frozen=True, slots=True)
class Message:
    """One message in one mailbox."""

    id: MessageId
    mailbox_id: MailboxId
    uid: int
    blob_id: BlobId
    size: int
    internal_date: datetime
    flags: frozenset[str]
    modseq: int


@dataclass(frozen=True, slots=True)
class MessageContent:
    """A message with what FETCH needs beyond the flags: the parsed structure and the prefix.

    ``parsed`` is ``postroom.message.ParsedMessage.to_json()`` of the blob; its byte offsets
    are relative to the blob, which follows ``header_prefix`` in the message as delivered.
    It is empty when the caller asked only for what ``imap_envelope`` and
    ``imap_bodystructure`` hold and both are there.
    """

    message: Message
    header_prefix: bytes
    blob_size: int
    header_size: int
    parsed: dict[str, Any]
    # ENVELOPE and BODYSTRUCTURE as IMAP writes them, kept since parsing (None: not kept).
    imap_envelope: bytes | None = None
    imap_bodystructure: bytes | None = None


@dataclass(frozen=True, slots=True)
class MailboxChanges:
    highest_modseq: int
    changed: tuple[Message, ...]  # new or with new flags, by UID
    expunged: tuple[int, ...]  # UIDs, ascending


@dataclass(frozen=True, slots=True)
class MailboxChange:
    """A NOTIFY: something in this mailbox changed at this modseq."""

    account_id: AccountId
    mailbox_id: MailboxId
    modseq: int


@dataclass(frozen=True, slots=True)
class Arrival:
    """How a message reached the queue (the first lines of its trace)."""

    source: Source
    client_address: str | None = None
    client_name: str | None = None
    helo_name: str | None = None
    protocol: str | None = None
    tls: str | None = None
    auth_account_id: AccountId | None = None
    env_id: str | None = None
    dsn_ret: Literal["FULL", "HDRS"] | None = None
    bounce_of: QueueId | None = None
    # Where local delivery files it (an RFC 6154 special use such as "\\Junk"; None: INBOX)
    # and what smtp-in's checks found (sender authentication, spam filter), for the trace.
    target_special_use: str | None = None
    checks: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class RecipientSpec:
    address: str
    original: str | None = None  # RFC 3461 ORCPT
    notify: str | None = None  # RFC 3461 NOTIFY, e.g. "FAILURE,DELAY"


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    id: QueueId
    blob_id: BlobId
    reverse_path: str
    received_at: datetime
    source: str
    client_address: str | None
    client_name: str | None
    helo_name: str | None
    protocol: str | None
    tls: str | None
    auth_account_id: AccountId | None
    message_id: str | None
    size: int
    env_id: str | None
    dsn_ret: str | None
    bounce_of: QueueId | None
    target_special_use: str | None = None
    checks: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    id: DeliveryId
    queue_message_id: QueueId
    recipient: str
    original_recipient: str | None
    notify: str | None
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    lease_until: datetime | None
    lease_owner: str | None
    last_error: str | None
    last_attempt_at: datetime | None
    finished_at: datetime | None
    delay_warned_at: datetime | None
    dsn_queue_message_id: QueueId | None
    # Internal failures since the last release; a held delivery returns to held_state.
    failures: int = 0
    last_failure: str | None = None
    held_state: DeliveryState | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    id: int
    delivery_id: DeliveryId
    attempted_at: datetime
    outcome: Outcome
    host: str | None
    reply_code: int | None
    reply_text: str | None
    tls: str | None = None  # the TLS version of a remote attempt, e.g. "TLSv1.3"


@dataclass(frozen=True, slots=True)
class Spooled:
    message: QueuedMessage
    deliveries: tuple[Delivery, ...]


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery leased to one worker, with the queue entry it belongs to."""

    delivery: Delivery
    message: QueuedMessage


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A queued message with all its deliveries (and, when asked, their attempts)."""

    message: QueuedMessage
    deliveries: tuple[Delivery, ...]
    attempts: tuple[Attempt, ...] = field(default=())
