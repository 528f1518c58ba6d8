"""The API's request and response bodies (pydantic models)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_UIDS = 1000
MailboxName = Field(min_length=1, max_length=1000)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- sessions -----------------------------------------------------------------------------


class Login(Strict):
    address: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    # The authenticator app's code (or a recovery code) when two-factor login is on.
    otp: str | None = Field(default=None, max_length=32)


class AccountPublic(BaseModel):
    id: int
    address: str
    is_admin: bool
    disabled: bool
    quota_bytes: int | None
    created_at: datetime
    # What the account's mailboxes hold (what the quotas limit) and the message-count limit.
    used_bytes: int
    used_messages: int
    quota_messages: int | None
    # Addresses and *@domain entries it may send as beyond its own and its aliases.
    send_as: list[str]


class SessionPublic(BaseModel):
    account: AccountPublic
    # The addresses it may send as: its own, its aliases, its exact send-as entries (the
    # *@domain ones are in account.send_as).
    addresses: list[str]
    csrf_token: str | None = None
    expires_at: datetime


class TokenPublic(BaseModel):
    token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the RFC 6750 scheme name
    expires_at: datetime
    account: AccountPublic


class SessionListed(BaseModel):
    """One of the caller's sessions (a browser's cookie or a bearer token), never its secret."""

    id: int
    kind: Literal["cookie", "bearer"]
    created_at: datetime
    expires_at: datetime
    client_address: str | None
    current: bool  # the session making this request


# --- folders ------------------------------------------------------------------------------


class FolderCreate(Strict):
    name: str = MailboxName


class FolderUpdate(Strict):
    name: str = MailboxName


class FolderPublic(BaseModel):
    id: int
    name: str
    special_use: str | None
    selectable: bool
    subscribed: bool
    messages: int
    unseen: int
    size: int
    uid_validity: int
    uid_next: int


# --- messages -----------------------------------------------------------------------------


class ConversationPublic(BaseModel):
    id: int
    messages: int = Field(description="how many of its messages the folder holds (that match)")
    unread: int
    newest: datetime


class MessageSummaryPublic(BaseModel):
    uid: int
    subject: str | None
    from_: str | None = Field(serialization_alias="from")
    to: str | None
    cc: str | None
    date: datetime | None
    received: datetime
    flags: list[str]
    size: int
    has_attachments: bool
    preview: str
    message_id: str | None
    thread_id: int | None = None
    # With group=conversation: the conversation this row stands for (its newest message).
    conversation: ConversationPublic | None = None


class MessagePage(BaseModel):
    mailbox_id: int
    total: int
    offset: int
    limit: int
    items: list[MessageSummaryPublic]


class AddressPublic(BaseModel):
    name: str | None
    address: str


class AttachmentPublic(BaseModel):
    part: str
    filename: str
    content_type: str
    size: int
    url: str
    # Shown in the page (raster images, PDF): the same part served inline.
    preview_url: str | None = None


class MessagePublic(BaseModel):
    uid: int
    mailbox_id: int
    subject: str | None
    from_: list[AddressPublic] = Field(serialization_alias="from")
    to: list[AddressPublic]
    cc: list[AddressPublic]
    reply_to: list[AddressPublic]
    date: datetime | None
    received: datetime
    message_id: str | None
    in_reply_to: str | None
    references: list[str]
    flags: list[str]
    size: int
    text: str | None
    has_html: bool
    html_url: str | None
    remote_images: bool
    # The reader chose to always see remote images from this sender.
    images_allowed: bool = False
    raw_url: str
    attachments: list[AttachmentPublic]
    zip_url: str | None = None


class FlagChange(Strict):
    add: list[str] = Field(default_factory=list, max_length=100)
    remove: list[str] = Field(default_factory=list, max_length=100)


class FlagsPublic(BaseModel):
    uid: int
    flags: list[str]


class Match(Strict):
    """Every message the list shows: the folder's messages that match its search (the search
    box's language) and filter, however many."""

    query: str | None = Field(default=None, max_length=1000)
    unread: bool | None = None
    flagged: bool | None = None


class Selection(Strict):
    """Which messages: by UID, by conversation (each one's messages in the folder), or all
    that ``match`` (select-all of a folder or a search). Exactly one of the three."""

    uids: list[int] = Field(default_factory=list, max_length=MAX_UIDS)
    threads: list[int] = Field(default_factory=list, max_length=MAX_UIDS)
    match: Match | None = None

    @model_validator(mode="after")
    def one_kind(self) -> Selection:
        given = [bool(self.uids), bool(self.threads), self.match is not None]
        if sum(given) != 1:
            raise ValueError("name the messages by one of uids, threads or match")
        return self


class BulkFlagChange(Selection):
    add: list[str] = Field(default_factory=list, max_length=100)
    remove: list[str] = Field(default_factory=list, max_length=100)


class BulkFlagsResult(BaseModel):
    uids: list[int]


class ThreadMemberPublic(BaseModel):
    mailbox_id: int
    mailbox: str
    uid: int
    message_id: str | None
    subject: str | None
    from_: str | None = Field(serialization_alias="from")
    date: datetime | None
    received: datetime
    seen: bool
    flagged: bool
    preview: str


class UidList(Selection):
    pass


class Transfer(Selection):
    target_mailbox_id: int


class TransferResult(BaseModel):
    # (old UID, new UID) pairs, as RFC 4315 COPYUID reports them
    moved: list[tuple[int, int]] = Field(default_factory=list)
    copied: list[tuple[int, int]] = Field(default_factory=list)


class DeleteResult(BaseModel):
    moved_to_trash: list[tuple[int, int]] = Field(default_factory=list)
    deleted: list[int] = Field(default_factory=list)


# --- sending ------------------------------------------------------------------------------


class SendResult(BaseModel):
    queue_id: int
    message_id: str
    recipients: list[str]
    sent_mailbox_id: int | None
    sent_uid: int | None
    dispatched: bool


# --- admin --------------------------------------------------------------------------------


class DomainCreate(Strict):
    name: str = Field(min_length=1, max_length=255)


class DomainPublic(BaseModel):
    id: int
    name: str
    created_at: datetime


class AccountCreate(Strict):
    address: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    is_admin: bool = False
    quota_bytes: int | None = Field(default=None, ge=0, le=2**62)
    quota_messages: int | None = Field(default=None, ge=0, le=2**62)


class AccountUpdate(Strict):
    password: str | None = Field(default=None, min_length=1, max_length=1024)
    disabled: bool | None = None
    is_admin: bool | None = None
    quota_bytes: int | None = Field(default=None, ge=0, le=2**62)
    clear_quota: bool = False
    quota_messages: int | None = Field(default=None, ge=0, le=2**62)
    clear_quota_messages: bool = False
    # Replaces the send-as list: addresses, or *@domain for every address of a domain.
    send_as: list[Annotated[str, Field(min_length=3, max_length=320)]] | None = Field(
        default=None, max_length=100
    )


class AliasCreate(Strict):
    source: str = Field(min_length=2, max_length=320)
    destination: str = Field(min_length=3, max_length=320)


class AliasPublic(BaseModel):
    id: int
    source: str
    destination: str


class DeliveryPublic(BaseModel):
    id: int
    recipient: str
    original_recipient: str | None
    state: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    last_attempt_at: datetime | None
    finished_at: datetime | None
    dsn_queue_id: int | None
    # Internal failures since the last release; for a held delivery, the last one's text.
    failures: int = 0
    last_failure: str | None = None


class AttemptPublic(BaseModel):
    delivery_id: int
    recipient: str
    attempted_at: datetime
    outcome: str
    host: str | None
    reply_code: int | None
    reply_text: str | None
    tls: str | None


class QueueEntryPublic(BaseModel):
    id: int
    message_id: str | None
    reverse_path: str
    received_at: datetime
    source: str
    client_address: str | None
    client_name: str | None
    helo_name: str | None
    protocol: str | None
    tls: str | None
    size: int
    bounce_of: int | None
    deliveries: list[DeliveryPublic]


class TimelineEvent(BaseModel):
    at: datetime
    event: Literal[
        "received", "checked", "attempt", "delivered", "deferred", "bounced", "dsn", "queued"
    ]
    recipient: str | None = None
    detail: str


class TracePublic(QueueEntryPublic):
    attempts: list[AttemptPublic]
    timeline: list[TimelineEvent]
    # What smtp-in's checks found (sender authentication, spam filter) and the folder they
    # chose ("\\Junk"); absent for mail that was not checked.
    checks: dict[str, Any] | None = None
    target_special_use: str | None = None


class RetryResult(BaseModel):
    deliveries: int
    dispatched: bool
