"""IMAP command reader: client bytes in, typed commands and parse errors out, no I/O.

The reader frames commands (lines, synchronizing and LITERAL+ literals, size limits) and
the grammar functions turn a framed command into a `Command` per the formal syntax of
RFC 3501 §9 plus the extensions the server announces: IDLE, UIDPLUS, MOVE, NAMESPACE, ID,
ENABLE, UNSELECT, SASL-IR and LITERAL+. What a command means, and whether it is allowed in
the session's state, is left to the session.

`UID FETCH`, `UID SEARCH` and the other UID variants parse to the sub-command's name with
``uid=True``: ``UID FETCH 1:* FLAGS`` is ``Command(tag, "FETCH", Fetch(...), uid=True)``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Final, Literal, Protocol, TypeAlias

from postroom import sasl
from postroom.access.imap import wire
from postroom.spool import InflightBudget

__all__ = [
    "MAX_APPEND_SIZE",
    "MAX_LINE_LENGTH",
    "MAX_LITERAL_SIZE",
    "MAX_SEARCH_DEPTH",
    "All",
    "And",
    "Append",
    "AppendMessage",
    "Arguments",
    "Authenticate",
    "BodyKey",
    "Command",
    "CommandReader",
    "Compress",
    "CopyMessages",
    "DateKey",
    "Enable",
    "ErrorKind",
    "Event",
    "Fetch",
    "FetchAttribute",
    "FetchBinary",
    "FetchBody",
    "FetchItem",
    "FlagKey",
    "HeaderKey",
    "Id",
    "ImapSyntaxError",
    "Line",
    "ListMailboxes",
    "LiteralSink",
    "Login",
    "MailboxArgument",
    "NeedContinuation",
    "NoArguments",
    "Not",
    "Or",
    "ParseError",
    "Partial",
    "QuotaRoot",
    "Rename",
    "Search",
    "SearchKey",
    "Section",
    "SequenceKey",
    "SequenceSet",
    "SizeKey",
    "Sort",
    "SortCriterion",
    "Status",
    "Store",
    "StoreMode",
    "TextKey",
    "Thread",
    "TooBig",
    "UidExpunge",
    "parse_auth_response",
    "parse_date_time",
    "parse_idle_done",
]

MAX_LINE_LENGTH: Final = 64 * 1024
"""Default limit on the octets of one command outside its literals."""
MAX_LITERAL_SIZE: Final = 64 * 1024
"""Default limit on the literal octets of one command other than APPEND."""
MAX_APPEND_SIZE: Final = 50 * 1024 * 1024
"""Default limit on the message literal of APPEND (the store's largest message)."""
MAX_SEARCH_DEPTH: Final = 64
STREAM_AT: Final = 256 * 1024
"""APPEND literals larger than this go to the reader's `LiteralSink` as they arrive."""
"""How deeply NOT, OR and parentheses may nest in SEARCH criteria."""

_MAX_NUMBER: Final = 4_294_967_295  # RFC 3501 §9: number is an unsigned 32-bit integer.
_CONTINUE_TEXT: Final = "Ready for literal data"
# Octets of the early syntax check (see CommandReader._check_before_literal) a command may
# spend, as a multiple of the line limit: it re-parses the command at each literal.
_CHECK_BUDGET: Final = 4

# RFC 3501 §9 character classes, over octets. CHAR is %x01-7F, so 8-bit octets are never
# ATOM-CHARs; CTL is %x00-1F / %x7F.
# ATOM-CHAR: any CHAR except atom-specials = "(" ")" "{" SP CTL list-wildcards
# quoted-specials resp-specials.
_ATOM: Final = re.compile(rb'[^(){ \x00-\x1f\x7f-\xff%*"\\\]]+')
# ASTRING-CHAR = ATOM-CHAR / resp-specials.
_ASTRING_CHARS: Final = re.compile(rb'[^(){ \x00-\x1f\x7f-\xff%*"\\]+')
# list-char = ATOM-CHAR / list-wildcards / resp-specials.
_LIST_CHARS: Final = re.compile(rb'[^(){ \x00-\x1f\x7f-\xff"\\]+')
# tag = 1*<any ASTRING-CHAR except "+">.
_TAG: Final = re.compile(rb'[^(){ \x00-\x1f\x7f-\xff%*"\\+]+')
# A sequence set, a search key or a command name: ATOM-CHARs and "*".
_WORD: Final = re.compile(rb'[^(){ \x00-\x1f\x7f-\xff%"\\\]]+')
# quoted = DQUOTE *QUOTED-CHAR DQUOTE. 8-bit octets are accepted as UTF-8, as RFC 6855
# clients send them; NUL, CR and LF never are.
_QUOTED: Final = re.compile(rb'"([^"\\\r\n\x00]*(?:\\["\\][^"\\\r\n\x00]*)*)"')
_QUOTED_ESCAPE: Final = re.compile(rb'\\(["\\])')
# literal = "{" number ["+"] "}" CRLF *CHAR8 (RFC 3501 §9, RFC 7888 §8).
_LITERAL: Final = re.compile(rb"\{(\d{1,20})(\+?)\}")
# RFC 3516 §4.4: literal8 = "~{" number ["+"] "}" CRLF *OCTET, for APPEND's message.
_LITERAL_AT_END: Final = re.compile(rb"~?\{(\d{1,20})(\+?)\}\Z")
_LITERAL8: Final = re.compile(rb"~\{(\d{1,20})(\+?)\}")
_NUMBER: Final = re.compile(rb"\d+")
_NIL: Final = re.compile(rb"NIL(?=[ )]|\Z)", re.IGNORECASE)
_FETCH_NAME: Final = re.compile(rb"[A-Za-z0-9.]+")
_SECTION_PART: Final = re.compile(rb"\d+(?:\.\d+)*")
_SECTION_TEXT: Final = re.compile(rb"[A-Za-z]+(?:\.[A-Za-z]+)*")
_BASE64: Final = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_SEQUENCE_ITEM: Final = re.compile(r"([1-9]\d{0,9}|\*)(?::([1-9]\d{0,9}|\*))?")
_DATE: Final = re.compile(r"(\d{1,2})-([A-Za-z]{3})-(\d{4})")
_DATE_TIME: Final = re.compile(
    r"( \d|\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})"
)
_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
        start=1,
    )
}

_SP: Final = 0x20
_OPEN: Final = ord("(")
_CLOSE: Final = ord(")")
_DQUOTE: Final = ord('"')
_LBRACE: Final = ord("{")
_TILDE: Final = ord("~")


# --- sequence sets ------------------------------------------------------------------------


def _check_sequence_number(value: int | None) -> None:
    if value is not None and not 1 <= value <= _MAX_NUMBER:
        raise ValueError(f"sequence number out of range: {value}")


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """A sequence-set (RFC 3501 §9): ranges of message sequence numbers or UIDs.

    Each range is ``(low, high)`` with None standing for ``*``, the largest number in use.
    Ranges are normalised on construction: ``5:2`` becomes ``(2, 5)`` and ``*:4`` becomes
    ``(4, None)`` (RFC 3501 §9: "the range 4:2 ... are equivalent to 2:4"). Their order
    and any overlaps are kept, so `str` gives back an equivalent wire form.
    """

    ranges: tuple[tuple[int | None, int | None], ...]
    # RFC 5182 §2.1: "$", the saved search result; its messages are the session's to say
    # (``ranges`` is empty and `resolve` names nothing).
    saved: bool = False

    def __post_init__(self) -> None:
        if not self.ranges and not self.saved:
            raise ValueError("a sequence set holds at least one range")
        normalised: list[tuple[int | None, int | None]] = []
        for low, high in self.ranges:
            _check_sequence_number(low)
            _check_sequence_number(high)
            if low is None or high is None:
                known = high if low is None else low
                normalised.append((known, None))
            else:
                normalised.append((min(low, high), max(low, high)))
        object.__setattr__(self, "ranges", tuple(normalised))

    @classmethod
    def parse(cls, text: str) -> SequenceSet:
        """Parse ``1:4,7,9:*``; ValueError for anything else (``0``, ``1:``, ``,``...)."""
        if text == "$":
            return cls((), saved=True)  # RFC 5182 §4: seq-last-command = "$"
        ranges: list[tuple[int | None, int | None]] = []
        for item in text.split(","):
            match = _SEQUENCE_ITEM.fullmatch(item)
            if match is None:
                raise ValueError(f"Invalid sequence set {text!r}")
            low = None if match[1] == "*" else int(match[1])
            high = low if match[2] is None else None if match[2] == "*" else int(match[2])
            ranges.append((low, high))
        try:
            return cls(tuple(ranges))
        except ValueError as exc:
            raise ValueError(f"Invalid sequence set {text!r}") from exc

    @classmethod
    def of(cls, *numbers: int) -> SequenceSet:
        """The set of the given numbers, one range each."""
        return cls(tuple((number, number) for number in numbers))

    def __str__(self) -> str:
        if self.saved:
            return "$"
        items: list[str] = []
        for low, high in self.ranges:
            first = "*" if low is None else str(low)
            if low == high:
                items.append(first)
            else:
                items.append(f"{first}:{'*' if high is None else high}")
        return ",".join(items)

    def resolve(self, max_value: int) -> tuple[range, ...]:
        """The numbers of the set within 1..max_value, as sorted, disjoint ranges.

        ``*`` stands for `max_value`, so with max_value 5 the set ``10:*`` is ``5:10`` and
        resolves to ``range(5, 6)``: RFC 3501 §6.4.8, a UID range ending in ``*`` always
        includes the last message.
        """
        spans: list[tuple[int, int]] = []
        for low, high in self.ranges:
            first = max_value if low is None else low
            last = max_value if high is None else high
            first, last = max(min(first, last), 1), min(max(first, last), max_value)
            if first <= last:
                spans.append((first, last))
        spans.sort()
        merged: list[list[int]] = []
        for first, last in spans:
            if merged and first <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], last)
            else:
                merged.append([first, last])
        return tuple(range(first, last + 1) for first, last in merged)

    def contains(self, number: int, max_value: int) -> bool:
        """Whether `number` is in the set when ``*`` stands for `max_value`."""
        return any(number in span for span in self.resolve(max_value))

    def numbers(self, max_value: int) -> Iterator[int]:
        """Each number of the set within 1..max_value, ascending, once."""
        for span in self.resolve(max_value):
            yield from span

    def largest_explicit(self) -> int | None:
        """The largest number written out (not ``*``), to check it against EXISTS."""
        written = [bound for pair in self.ranges for bound in pair if bound is not None]
        return max(written, default=None)


# --- command arguments --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoArguments:
    """CAPABILITY, NOOP, LOGOUT, STARTTLS, CHECK, CLOSE, EXPUNGE, NAMESPACE, UNSELECT, IDLE."""


@dataclass(frozen=True, slots=True)
class Login:
    """LOGIN userid password (RFC 3501 §6.2.3)."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Authenticate:
    """AUTHENTICATE mechanism [initial-response] (RFC 3501 §6.2.2, RFC 4959 §3).

    `initial_response` is None when the client sent none, b"" for ``=`` (an empty one).
    """

    mechanism: str
    initial_response: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class MailboxArgument:
    """SELECT, EXAMINE, CREATE, DELETE, SUBSCRIBE or UNSUBSCRIBE of one mailbox.

    Mailbox names (here and in the other arguments) are kept as sent: whether they are
    modified UTF-7 or UTF-8 depends on the session (RFC 9051 §5.1, Appendix A.1), which
    decodes them (`wire.decode_mailbox`).

    SELECT and EXAMINE may carry RFC 7162 parameters: ``(CONDSTORE)`` or
    ``(QRESYNC (uidvalidity modseq [known-uids]))``.
    """

    mailbox: bytes
    condstore: bool = False
    qresync: Qresync | None = None
    # RFC 6154 §3: CREATE mailbox (USE (attributes)), as written.
    use: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Qresync:
    """RFC 7162 §3.2.5: what the client knew of the mailbox when it last had it open."""

    uid_validity: int
    modseq: int
    known_uids: SequenceSet | None = None


@dataclass(frozen=True, slots=True)
class QuotaRoot:
    """GETQUOTA quota-root (RFC 9208 §4.1.1)."""

    name: str


@dataclass(frozen=True, slots=True)
class Rename:
    """RENAME existing-mailbox new-mailbox (RFC 3501 §6.3.5)."""

    mailbox: bytes
    new_mailbox: bytes


@dataclass(frozen=True, slots=True)
class ListMailboxes:
    """LIST or LSUB reference pattern (RFC 3501 §6.3.8); the pattern keeps ``*`` and ``%``.

    LIST may take the RFC 5258 extended form: selection options before the reference,
    several patterns in parentheses, and return options (RFC 5819 STATUS, RFC 6154 §5.1
    SPECIAL-USE) after them. `pattern` is then the first pattern and `more` the others
    others; options are upper-cased. The reference and the patterns are kept as sent.
    """

    reference: bytes
    pattern: bytes
    more: tuple[bytes, ...] = ()
    select: frozenset[str] = frozenset()
    returns: frozenset[str] = frozenset()
    status: tuple[str, ...] = ()  # RFC 5819: RETURN (STATUS (items))
    extended: bool = False  # any of the RFC 5258 syntax was used

    def patterns(self) -> tuple[bytes, ...]:
        return (self.pattern, *self.more)


@dataclass(frozen=True, slots=True)
class Status:
    """STATUS mailbox (items) with items upper-cased (RFC 3501 §6.3.10)."""

    mailbox: bytes
    items: tuple[str, ...]


class LiteralSink(Protocol):
    """Where the reader puts a large APPEND literal as it arrives, instead of memory (a
    `postroom.spool.SpoolFile`); closed by the reader once the command has been answered."""

    size: int

    def write(self, data: bytes) -> None: ...

    def read_all(self) -> bytes: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class AppendMessage:
    """One message of an APPEND: [flags] [date-time] literal (in memory, or in a sink)."""

    flags: tuple[str, ...]
    date_time: datetime | None
    message: bytes | LiteralSink = field(repr=False)
    binary: bool = False  # sent as a literal8 (RFC 3516 §4.4)

    def content(self) -> bytes:
        """The message's octets (read back from its sink, if it went to one)."""
        return self.message if isinstance(self.message, bytes) else self.message.read_all()

    @property
    def size(self) -> int:
        return len(self.message) if isinstance(self.message, bytes) else self.message.size


@dataclass(frozen=True, slots=True)
class Append:
    """APPEND mailbox [flags] [date-time] message (RFC 3501 §6.3.11); with MULTIAPPEND
    (RFC 3502 §6.3.11) further messages follow, in `more`."""

    mailbox: bytes
    flags: tuple[str, ...]
    date_time: datetime | None
    message: bytes | LiteralSink = field(repr=False)
    more: tuple[AppendMessage, ...] = ()
    binary: bool = False  # the first message was a literal8 (RFC 3516 §4.4)

    def messages(self) -> tuple[AppendMessage, ...]:
        first = AppendMessage(self.flags, self.date_time, self.message, self.binary)
        return (first, *self.more)


@dataclass(frozen=True, slots=True)
class CopyMessages:
    """COPY or MOVE sequence-set mailbox (RFC 3501 §6.4.7, RFC 6851 §3)."""

    sequence_set: SequenceSet
    mailbox: bytes


@dataclass(frozen=True, slots=True)
class UidExpunge:
    """UID EXPUNGE sequence-set (RFC 4315 §2.1)."""

    sequence_set: SequenceSet


@dataclass(frozen=True, slots=True)
class Id:
    """ID with its field/value pairs, or None for ``ID NIL`` (RFC 2971 §3.1)."""

    parameters: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True, slots=True)
class Compress:
    """COMPRESS mechanism, upper-cased (RFC 4978 §3)."""

    mechanism: str


@dataclass(frozen=True, slots=True)
class Enable:
    """ENABLE with the capability names upper-cased (RFC 5161 §3.1)."""

    capabilities: tuple[str, ...]


StoreMode: TypeAlias = Literal["replace", "add", "remove"]


@dataclass(frozen=True, slots=True)
class Store:
    """STORE sequence-set [+|-]FLAGS[.SILENT] flags (RFC 3501 §6.4.6).

    `mode` is "replace" for FLAGS, "add" for +FLAGS and "remove" for -FLAGS.
    """

    sequence_set: SequenceSet
    mode: StoreMode
    silent: bool
    flags: tuple[str, ...]
    unchanged_since: int | None = None  # RFC 7162 §3.1.3 UNCHANGEDSINCE


# FETCH (RFC 3501 §6.4.5)


@dataclass(frozen=True, slots=True)
class Section:
    """A body section (RFC 3501 §6.4.5): part numbers, then an optional text specifier.

    `text` is None (the whole part), "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT",
    "TEXT" or "MIME"; `fields` holds the header names of HEADER.FIELDS(.NOT) as sent.
    ``BODY[]`` is ``Section()``.
    """

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        spec = ".".join(str(number) for number in self.part)
        if self.text is not None:
            spec = f"{spec}.{self.text}" if spec else self.text
        if self.fields:
            names = b" ".join(wire.astring(name) for name in self.fields)
            spec += " (" + names.decode("utf-8") + ")"
        return spec


@dataclass(frozen=True, slots=True)
class Partial:
    """``<offset.count>``: `count` octets from `offset` (RFC 3501 §6.4.5)."""

    offset: int
    count: int


@dataclass(frozen=True, slots=True)
class FetchBody:
    """BODY[section]<partial> or BODY.PEEK[section]<partial>."""

    section: Section
    peek: bool = False
    partial: Partial | None = None

    def label(self) -> str:
        """The name of this item in the FETCH response: ``BODY[1.TEXT]<0>``.

        RFC 3501 §7.4.2: BODY.PEEK is answered as BODY, and a partial fetch names only its
        origin octet.
        """
        suffix = "" if self.partial is None else f"<{self.partial.offset}>"
        return f"BODY[{self.section}]{suffix}"


@dataclass(frozen=True, slots=True)
class FetchBinary:
    """RFC 3516 §4.2: BINARY[part]<partial>, BINARY.PEEK[part]<partial> (the part's content
    with its Content-Transfer-Encoding undone) or BINARY.SIZE[part] (its decoded size)."""

    part: tuple[int, ...] = ()
    peek: bool = False
    partial: Partial | None = None
    size_only: bool = False

    def label(self) -> str:
        """``BINARY[1.2]<0>`` or ``BINARY.SIZE[1]``; BINARY.PEEK is answered as BINARY."""
        section = ".".join(str(n) for n in self.part)
        name = "BINARY.SIZE" if self.size_only else "BINARY"
        suffix = "" if self.partial is None else f"<{self.partial.offset}>"
        return f"{name}[{section}]{suffix}"


@dataclass(frozen=True, slots=True)
class FetchItem:
    """A FETCH attribute without section: ENVELOPE, FLAGS, INTERNALDATE, RFC822,
    RFC822.HEADER, RFC822.SIZE, RFC822.TEXT, BODY, BODYSTRUCTURE or UID."""

    name: str


FetchAttribute: TypeAlias = FetchItem | FetchBody | FetchBinary

_FETCH_ITEMS: Final = frozenset(
    {
        "ENVELOPE",
        "FLAGS",
        "INTERNALDATE",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.SIZE",
        "RFC822.TEXT",
        "BODY",
        "BODYSTRUCTURE",
        "UID",
        "MODSEQ",  # RFC 7162 §3.1.4.2
    }
)
# RFC 3501 §6.4.5: the macros ALL, FAST and FULL.
_FETCH_MACROS: Final[dict[str, tuple[FetchAttribute, ...]]] = {
    "ALL": tuple(FetchItem(name) for name in ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE")),
    "FAST": tuple(FetchItem(name) for name in ("FLAGS", "INTERNALDATE", "RFC822.SIZE")),
    "FULL": tuple(
        FetchItem(name) for name in ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY")
    ),
}


@dataclass(frozen=True, slots=True)
class Fetch:
    """FETCH sequence-set items, macros expanded (RFC 3501 §6.4.5)."""

    sequence_set: SequenceSet
    items: tuple[FetchAttribute, ...]
    # RFC 7162 §3.1.4.1 CHANGEDSINCE modifier, §3.2.6 VANISHED (UID FETCH only).
    changed_since: int | None = None
    vanished: bool = False


# SEARCH (RFC 3501 §6.4.4)


@dataclass(frozen=True, slots=True)
class All:
    """ALL: every message."""


@dataclass(frozen=True, slots=True)
class FlagKey:
    """A message has (`is_set`) or lacks a flag.

    ANSWERED is ``FlagKey("\\Answered", True)``, UNSEEN ``FlagKey("\\Seen", False)``,
    KEYWORD k ``FlagKey(k, True)``, RECENT ``FlagKey("\\Recent", True)``; NEW is
    ``And((RECENT, UNSEEN))`` and OLD ``FlagKey("\\Recent", False)``, as §6.4.4 defines them.
    """

    flag: str
    is_set: bool


@dataclass(frozen=True, slots=True)
class HeaderKey:
    """A header field contains a substring: HEADER name value, and BCC, CC, FROM,
    SUBJECT, TO as ``HeaderKey("Bcc", value)`` and so on. An empty value matches every
    message that has the field (RFC 3501 §6.4.4)."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class BodyKey:
    """BODY: the body (after the header) contains a substring."""

    value: str


@dataclass(frozen=True, slots=True)
class TextKey:
    """TEXT: the header or body contains a substring."""

    value: str


@dataclass(frozen=True, slots=True)
class DateKey:
    """BEFORE, ON, SINCE (the internal date) and SENTBEFORE, SENTON, SENTSINCE (the Date
    header), dates compared disregarding time and time zone."""

    which: Literal["internal", "sent"]
    relation: Literal["before", "on", "since"]
    day: date


@dataclass(frozen=True, slots=True)
class SizeKey:
    """LARGER n and SMALLER n: the RFC822.SIZE compared with n."""

    relation: Literal["larger", "smaller"]
    size: int


@dataclass(frozen=True, slots=True)
class SequenceKey:
    """A sequence set, or UID sequence-set (`uid`)."""

    sequence_set: SequenceSet
    uid: bool = False


@dataclass(frozen=True, slots=True)
class Not:
    """NOT key."""

    key: SearchKey


@dataclass(frozen=True, slots=True)
class Or:
    """OR key1 key2."""

    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class And:
    """Keys that must all match: a parenthesised list, or several top-level keys."""

    keys: tuple[SearchKey, ...]


@dataclass(frozen=True, slots=True)
class ModSeqKey:
    """RFC 7162 §3.1.5 MODSEQ: messages whose mod-sequence is at least ``modseq``."""

    modseq: int


SearchKey: TypeAlias = (
    All
    | FlagKey
    | HeaderKey
    | BodyKey
    | TextKey
    | DateKey
    | SizeKey
    | SequenceKey
    | ModSeqKey
    | Not
    | Or
    | And
)


@dataclass(frozen=True, slots=True)
class Search:
    """SEARCH [CHARSET charset] criteria (RFC 3501 §6.4.4).

    `charset` is the upper-cased CHARSET argument, None when absent; strings are decoded
    as UTF-8 either way (US-ASCII is a subset). Several top-level keys make an `And`.
    """

    charset: str | None
    criteria: SearchKey
    # RFC 4731 §3.1 RETURN options, upper-cased; None without RETURN (a plain SEARCH).
    returns: tuple[str, ...] | None = None


SORT_KEYS: Final = frozenset({"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO"})
THREAD_ALGORITHMS: Final = frozenset({"ORDEREDSUBJECT", "REFERENCES"})


@dataclass(frozen=True, slots=True)
class SortCriterion:
    """sort-criterion = ["REVERSE" SP] sort-key (RFC 5256 §5); `key` upper-cased."""

    key: str
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class Sort:
    """SORT (sort-criteria) charset search-key... (RFC 5256 §3)."""

    criteria: tuple[SortCriterion, ...]
    charset: str
    search: SearchKey


@dataclass(frozen=True, slots=True)
class Thread:
    """THREAD thread-alg charset search-key... (RFC 5256 §3); `algorithm` upper-cased."""

    algorithm: str
    charset: str
    search: SearchKey


Arguments: TypeAlias = (
    NoArguments
    | Login
    | Authenticate
    | MailboxArgument
    | QuotaRoot
    | Rename
    | ListMailboxes
    | Status
    | Append
    | Search
    | Sort
    | Thread
    | Fetch
    | Store
    | CopyMessages
    | UidExpunge
    | Id
    | Enable
    | Compress
)


# --- events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """A complete, parsed command. `name` is upper-case; UID variants set `uid`."""

    tag: str
    name: str
    args: Arguments = NoArguments()
    uid: bool = False


@dataclass(frozen=True, slots=True)
class NeedContinuation:
    """A synchronizing literal was announced and will be accepted: send ``+ text`` before
    the client may send it (RFC 3501 §7.5). `tag` and `command` name the command, so the
    session may instead refuse it (`CommandReader.refuse_literal`) and answer tagged."""

    tag: str
    command: str
    text: str = _CONTINUE_TEXT

    def response(self) -> bytes:
        return b"+ " + self.text.encode("ascii") + b"\r\n"


class ErrorKind(enum.Enum):
    """Why a command was refused; decides the response (see `ParseError.response`)."""

    SYNTAX = "syntax"
    UNKNOWN_COMMAND = "unknown-command"
    BAD_CHARSET = "bad-charset"
    MAILBOX_NAME = "mailbox-name"


@dataclass(frozen=True, slots=True)
class ParseError:
    """A command that could not be parsed; the reader has already skipped it.

    `tag` is None when the line did not start with a valid tag (answer ``* BAD``).
    """

    tag: str | None
    message: str
    kind: ErrorKind = ErrorKind.SYNTAX

    def response(self) -> bytes:
        if self.kind is ErrorKind.BAD_CHARSET:
            # RFC 3501 §6.4.4: an unsupported charset is a tagged NO (not a BAD) that
            # SHOULD carry BADCHARSET with the supported charsets.
            return _status_line(self.tag, "NO", f"[BADCHARSET (UTF-8 US-ASCII)] {self.message}")
        if self.kind is ErrorKind.MAILBOX_NAME:
            # A well-formed astring that names no mailbox this server can have: the command
            # is understood, so it fails with NO (RFC 3501 §6.3.1), as for a missing mailbox.
            return _status_line(self.tag, "NO", f"[CANNOT] {self.message}")
        return _status_line(self.tag, "BAD", self.message)


@dataclass(frozen=True, slots=True)
class TooBig:
    """A literal over its limit (`status` "NO", answered ``NO [TOOBIG]``) or a line over
    the line limit ("BAD"). The reader has already skipped what it must."""

    tag: str | None
    message: str
    status: Literal["NO", "BAD"]
    # RFC 5530 §3: TOOBIG for a literal over the size limit, LIMIT when the process's budget
    # of messages being received has no room for it.
    code: str = "TOOBIG"

    def response(self) -> bytes:
        text = f"[{self.code}] {self.message}" if self.status == "NO" else self.message
        return _status_line(self.tag, self.status, text)


@dataclass(frozen=True, slots=True)
class Line:
    """A raw line without its CRLF, read after `CommandReader.expect_line`."""

    data: bytes = field(repr=False)


Event: TypeAlias = Command | NeedContinuation | ParseError | TooBig | Line


def _status_line(tag: str | None, status: str, text: str) -> bytes:
    return f"{tag or '*'} {status} {text}\r\n".encode()


class ImapSyntaxError(ValueError):
    """Input that does not follow the grammar; `message` is the text for ``BAD``."""

    def __init__(self, message: str, kind: ErrorKind = ErrorKind.SYNTAX) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


class _NeedLiteral(Exception):
    """The parser reached a literal that has not arrived yet."""


# --- lexical level ------------------------------------------------------------------------


def _shown(token: bytes, limit: int = 40) -> str:
    """A client's token, safe and short enough to quote back in an error."""
    text = token[:limit].decode("ascii", "replace")
    return "".join(char if " " < char < "\x7f" else "?" for char in text)


class _Cursor:
    """Reads the tokens of a framed command: its lines, with each literal after the line
    that announces it."""

    def __init__(self, lines: list[bytes], literals: list[bytes | LiteralSink]) -> None:
        self._lines = lines
        self._literals = literals
        self._index = 0
        self.line = lines[0]
        self.pos = 0

    def eol(self) -> bool:
        return self.pos >= len(self.line)

    def peek(self) -> int | None:
        return self.line[self.pos] if self.pos < len(self.line) else None

    def take(self, octet: int) -> bool:
        if self.peek() == octet:
            self.pos += 1
            return True
        return False

    def match(self, pattern: re.Pattern[bytes]) -> re.Match[bytes] | None:
        found = pattern.match(self.line, self.pos)
        if found is not None:
            self.pos = found.end()
        return found

    def missing_or(self, message: str) -> ImapSyntaxError:
        return ImapSyntaxError("Missing argument" if self.eol() else message)

    def sp(self) -> None:
        """RFC 3501 §9 note 2: SP is exactly one space."""
        if not self.take(_SP):
            raise self.missing_or("Expected space")

    def close(self) -> None:
        if not self.take(_CLOSE):
            raise ImapSyntaxError("Missing ')'" if self.eol() else "Expected ')'")

    def end(self) -> None:
        if not self.eol():
            raise ImapSyntaxError("Unexpected extra arguments")

    def word(self) -> bytes:
        """ATOM-CHARs and ``*``: a command name, sequence set or search key."""
        found = self.match(_WORD)
        if found is None:
            raise self.missing_or("Expected atom")
        return found[0]

    def atom(self) -> str:
        found = self.match(_ATOM)
        if found is None:
            raise self.missing_or("Expected atom")
        return found[0].decode("ascii")

    def number(self) -> int:
        found = self.match(_NUMBER)
        if found is None:
            raise self.missing_or("Expected number")
        if len(found[0]) > 10 or int(found[0]) > _MAX_NUMBER:
            raise ImapSyntaxError("Number out of range")
        return int(found[0])

    def number64(self) -> int:
        # RFC 7162 §7: mod-sequence-value = 1*DIGIT, at most 2^63-1.
        found = self.match(_NUMBER)
        if found is None:
            raise self.missing_or("Expected number")
        if len(found[0]) > 19 or int(found[0]) >= 1 << 63:
            raise ImapSyntaxError("Number out of range")
        return int(found[0])

    def literal(self) -> bytes:
        data = self.message_literal()
        if not isinstance(data, bytes):
            raise ImapSyntaxError("Literal too big")  # only a message may be that large
        return data

    def message_literal(self, *, binary: bool = False) -> bytes | LiteralSink:
        found = (_LITERAL8 if binary else _LITERAL).match(self.line, self.pos)
        if found is None or found.end() != len(self.line):
            raise ImapSyntaxError("Invalid literal")
        if self._index >= len(self._literals):
            raise _NeedLiteral
        data = self._literals[self._index]
        self._index += 1
        self.line = self._lines[self._index]
        self.pos = 0
        return data

    def quoted(self) -> bytes:
        found = self.match(_QUOTED)
        if found is None:
            raise ImapSyntaxError(_quoted_error(self.line[self.pos + 1 :]))
        return _QUOTED_ESCAPE.sub(rb"\1", found[1])

    def string(self) -> bytes:
        """string = quoted / literal."""
        octet = self.peek()
        if octet == _DQUOTE:
            return self.quoted()
        if octet == _LBRACE:
            return self.literal()
        raise self.missing_or("Expected string")

    def astring(self, chars: re.Pattern[bytes] = _ASTRING_CHARS) -> bytes:
        """astring = 1*ASTRING-CHAR / string."""
        octet = self.peek()
        if octet in (_DQUOTE, _LBRACE):
            return self.string()
        found = self.match(chars)
        if found is None:
            raise self.missing_or("Expected string")
        return found[0]

    def text(self) -> str:
        return _utf8(self.astring())

    def nil(self) -> bool:
        return self.match(_NIL) is not None

    def mailbox(self) -> bytes:
        """mailbox = "INBOX" / astring, as sent (the session decodes it)."""
        return self.astring()

    def sequence_set(self) -> SequenceSet:
        return _sequence_set(self.word())

    def flag(self) -> str:
        """flag = "\\Answered" / "\\Flagged" / "\\Deleted" / "\\Seen" / "\\Draft" /
        flag-keyword / flag-extension; system flags are case-normalised."""
        if self.take(ord("\\")):
            found = self.match(_ATOM)
            name = "" if found is None else found[0].decode("ascii")
            system = _SYSTEM_FLAGS.get(name.upper())
            if system is None:
                # \Recent cannot be stored (RFC 3501 §2.3.2), and no flag-extension is
                # defined: refuse them rather than store a flag clients cannot parse.
                raise ImapSyntaxError(f"Invalid system flag \\{name}" if name else "Invalid flag")
            return system
        found = self.match(_ATOM)
        if found is None:
            raise self.missing_or("Invalid flag")
        return found[0].decode("ascii")

    def flag_list(self) -> tuple[str, ...]:
        """flag-list = "(" [flag *(SP flag)] ")"."""
        if not self.take(_OPEN):
            raise self.missing_or("Expected flag list")
        flags: list[str] = []
        if not self.take(_CLOSE):
            flags.append(self.flag())
            while self.take(_SP):
                flags.append(self.flag())
            self.close()
        return tuple(flags)


def _quoted_error(rest: bytes) -> str:
    """Why a quoted string that failed to match is invalid; `rest` follows its DQUOTE."""
    index = 0
    while index < len(rest):
        octet = rest[index : index + 1]
        if octet == b"\\":
            if rest[index + 1 : index + 2] not in (b'"', b"\\"):
                # QUOTED-CHAR: only quoted-specials may follow a backslash.
                return "Invalid escape in quoted string"
            index += 2
            continue
        if octet == b"\x00":
            return "NUL in quoted string"
        index += 1
    return "Unterminated quoted string"


_SYSTEM_FLAGS: Final = {
    flag.upper()[1:]: flag for flag in ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
}


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImapSyntaxError("Invalid UTF-8 in string") from exc


def _sequence_set(token: bytes) -> SequenceSet:
    try:
        return SequenceSet.parse(token.decode("ascii"))
    except ValueError as exc:
        raise ImapSyntaxError("Invalid sequence set") from exc


def parse_date_time(text: str) -> datetime:
    """Parse an RFC 3501 §9 date-time (without its quotes): ``17-Jul-1996 02:44:25 -0700``.

    The day may be written as one digit, a space and a digit, or two digits. Returns an
    aware datetime; ValueError for anything malformed or impossible.
    """
    found = _DATE_TIME.fullmatch(text)
    month = None if found is None else _MONTHS.get(found[2].upper())
    if found is None or month is None:
        raise ValueError(f"Invalid date-time {text!r}")
    hours, minutes = int(found[8]), int(found[9])
    if minutes >= 60:
        raise ValueError(f"Invalid date-time {text!r}")
    offset = timedelta(hours=hours, minutes=minutes)
    try:
        zone = timezone(-offset if found[7] == "-" else offset)
        return datetime(
            int(found[3]),
            month,
            int(found[1]),
            int(found[4]),
            int(found[5]),
            int(found[6]),
            tzinfo=zone,
        )
    except ValueError as exc:
        raise ValueError(f"Invalid date-time {text!r}") from exc


def _parse_date(text: str) -> date:
    """date-text = date-day "-" date-month "-" date-year."""
    found = _DATE.fullmatch(text)
    month = None if found is None else _MONTHS.get(found[2].upper())
    if found is None or month is None:
        raise ImapSyntaxError("Invalid date")
    try:
        return date(int(found[3]), month, int(found[1]))
    except ValueError as exc:
        raise ImapSyntaxError("Invalid date") from exc


def _date(cursor: _Cursor) -> date:
    """date = date-text / DQUOTE date-text DQUOTE."""
    raw = cursor.quoted() if cursor.peek() == _DQUOTE else cursor.atom().encode("ascii")
    return _parse_date(raw.decode("ascii", "replace"))


# --- grammar: one function per command ---------------------------------------------------


def _no_arguments(cursor: _Cursor) -> Arguments:
    return NoArguments()


def _login(cursor: _Cursor) -> Arguments:
    cursor.sp()
    username = cursor.text()
    cursor.sp()
    return Login(username, cursor.text())


def _authenticate(cursor: _Cursor) -> Arguments:
    cursor.sp()
    mechanism = cursor.atom().upper()
    if not cursor.take(_SP):
        return Authenticate(mechanism)
    # RFC 4959 §3: initial-response = base64 / "=", where "=" is an empty response.
    found = cursor.match(_BASE64)
    token = b"" if found is None else found[0]
    if not token:
        raise cursor.missing_or("Invalid initial response")
    try:
        return Authenticate(mechanism, sasl.decode_response(token))
    except sasl.SaslError:
        raise ImapSyntaxError("Invalid initial response") from None


def _mailbox_argument(cursor: _Cursor) -> Arguments:
    cursor.sp()
    return MailboxArgument(cursor.mailbox())


def _quota_root(cursor: _Cursor) -> Arguments:
    # getquota = "GETQUOTA" SP quota-root-name; quota-root-name = astring (RFC 9208 §7)
    cursor.sp()
    return QuotaRoot(cursor.astring().decode("utf-8", "replace"))


def _create(cursor: _Cursor) -> Arguments:
    # RFC 6154 §6: create-param = "USE" SP "(" [use-attr *(SP use-attr)] ")"
    cursor.sp()
    mailbox = cursor.mailbox()
    if not cursor.take(_SP):
        return MailboxArgument(mailbox)
    if not cursor.take(_OPEN) or cursor.atom().upper() != "USE":
        raise ImapSyntaxError("Invalid CREATE parameter")
    cursor.sp()
    if not cursor.take(_OPEN):
        raise ImapSyntaxError("Invalid CREATE parameter")
    use: list[str] = []
    if not cursor.take(_CLOSE):
        while True:
            # use-attr = "\All" / "\Archive" / ... / use-attr-ext ("\" atom)
            if not cursor.take(ord("\\")):
                raise ImapSyntaxError("Invalid special-use attribute")
            use.append("\\" + cursor.atom())
            if not cursor.take(_SP):
                break
        cursor.close()
    cursor.close()
    return MailboxArgument(mailbox, use=tuple(use))


def _select(cursor: _Cursor) -> Arguments:
    # RFC 7162 §3.1.8, §3.2.5: select-params = SP "(" select-param *(SP select-param) ")"
    cursor.sp()
    mailbox = cursor.mailbox()
    if not cursor.take(_SP):
        return MailboxArgument(mailbox)
    if not cursor.take(_OPEN):
        raise ImapSyntaxError("Unexpected extra arguments")
    condstore, qresync = False, None
    while True:
        name = cursor.atom().upper()
        if name == "CONDSTORE":
            condstore = True
        elif name == "QRESYNC":
            # "QRESYNC" SP "(" uidvalidity SP mod-sequence-value [SP known-uids]
            #     [SP seq-match-data] ")"; seq-match-data is accepted and not used.
            cursor.sp()
            if not cursor.take(_OPEN):
                raise ImapSyntaxError("Invalid QRESYNC parameter")
            uid_validity = cursor.number()
            cursor.sp()
            modseq = cursor.number64()
            known = None
            if cursor.take(_SP):
                if cursor.peek() != _OPEN:
                    known = cursor.sequence_set()
                    cursor.take(_SP)
                if cursor.take(_OPEN):
                    cursor.sequence_set()
                    cursor.sp()
                    cursor.sequence_set()
                    cursor.close()
            cursor.close()
            if uid_validity == 0:
                raise ImapSyntaxError("Invalid QRESYNC parameter")
            qresync = Qresync(uid_validity, modseq, known)
        else:
            raise ImapSyntaxError(f"Invalid SELECT parameter {_shown(name.encode())}")
        if not cursor.take(_SP):
            break
    cursor.close()
    return MailboxArgument(mailbox, condstore, qresync)


def _rename(cursor: _Cursor) -> Arguments:
    cursor.sp()
    mailbox = cursor.mailbox()
    cursor.sp()
    return Rename(mailbox, cursor.mailbox())


def _list(cursor: _Cursor) -> Arguments:
    # list = "LIST" SP mailbox SP list-mailbox; list-mailbox = 1*list-char / string.
    cursor.sp()
    reference = cursor.mailbox()
    cursor.sp()
    return ListMailboxes(reference, cursor.astring(_LIST_CHARS))


# RFC 5258 §6: list-select-base-opt "SUBSCRIBED", list-select-independent-opt "REMOTE",
# list-select-mod-opt "RECURSIVEMATCH"; RFC 6154 §6: list-select-base-opt =/ "SPECIAL-USE".
_LIST_SELECT: Final = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
_LIST_SELECT_BASE: Final = frozenset({"SUBSCRIBED", "SPECIAL-USE"})
# RFC 5258 §6 return-option "SUBSCRIBED" / "CHILDREN"; RFC 6154 §6 =/ "SPECIAL-USE";
# RFC 5819 §4 =/ "STATUS" SP "(" status-att *(SP status-att) ")".
_LIST_RETURN: Final = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"})


def _list_pattern(cursor: _Cursor) -> bytes:
    """list-mailbox = 1*list-char / string, as sent."""
    return cursor.astring(_LIST_CHARS)


def _list_extended(cursor: _Cursor) -> Arguments:
    # RFC 5258 §6: list = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat
    #                     [SP list-return-opts]
    # mbox-or-pat = list-mailbox / patterns; patterns = "(" list-mailbox *(SP ...) ")"
    cursor.sp()
    select: set[str] = set()
    extended = False
    if cursor.take(_OPEN):
        extended = True
        if not cursor.take(_CLOSE):
            while True:
                option = cursor.atom().upper()
                if option not in _LIST_SELECT:
                    raise ImapSyntaxError(
                        f"Unknown LIST selection option {_shown(option.encode())}"
                    )
                select.add(option)
                if not cursor.take(_SP):
                    break
            cursor.close()
        # RFC 5258 §3: RECURSIVEMATCH alone (without a base option) is a BAD.
        if "RECURSIVEMATCH" in select and not select & _LIST_SELECT_BASE:
            raise ImapSyntaxError("RECURSIVEMATCH needs another selection option")
        cursor.sp()
    reference = cursor.mailbox()
    cursor.sp()
    patterns: list[bytes] = []
    if cursor.take(_OPEN):
        extended = True
        patterns.append(_list_pattern(cursor))
        while cursor.take(_SP):
            patterns.append(_list_pattern(cursor))
        cursor.close()
    else:
        patterns.append(_list_pattern(cursor))
    returns: set[str] = set()
    status: list[str] = []
    if cursor.take(_SP):
        extended = True
        if cursor.atom().upper() != "RETURN":
            raise ImapSyntaxError("Unexpected extra arguments")
        cursor.sp()
        if not cursor.take(_OPEN):
            raise cursor.missing_or("Expected return options")
        if not cursor.take(_CLOSE):
            while True:
                option = cursor.atom().upper()
                if option not in _LIST_RETURN:
                    raise ImapSyntaxError(f"Unknown LIST return option {_shown(option.encode())}")
                returns.add(option)
                if option == "STATUS":
                    cursor.sp()
                    status.extend(i for i in _status_items(cursor) if i not in status)
                if not cursor.take(_SP):
                    break
            cursor.close()
    return ListMailboxes(
        reference,
        patterns[0],
        more=tuple(patterns[1:]),
        select=frozenset(select),
        returns=frozenset(returns),
        status=tuple(status),
        extended=extended,
    )


_STATUS_ITEMS: Final = frozenset(
    {"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "DELETED-STORAGE"}
    | {"HIGHESTMODSEQ", "SIZE", "APPENDLIMIT"}
)  # RFC 9208 §4.1.4: DELETED, DELETED-STORAGE; RFC 7162 §3.1.3: HIGHESTMODSEQ;
# RFC 8438: SIZE; RFC 7889: APPENDLIMIT


def _status(cursor: _Cursor) -> Arguments:
    # status = "STATUS" SP mailbox SP "(" status-att *(SP status-att) ")"
    cursor.sp()
    mailbox = cursor.mailbox()
    cursor.sp()
    return Status(mailbox, _status_items(cursor))


def _status_items(cursor: _Cursor) -> tuple[str, ...]:
    # "(" status-att *(SP status-att) ")"
    if not cursor.take(_OPEN):
        raise cursor.missing_or("Expected STATUS item list")
    items: list[str] = []
    while True:
        item = cursor.atom().upper()
        if item not in _STATUS_ITEMS:
            raise ImapSyntaxError(f"Invalid STATUS item {_shown(item.encode())}")
        items.append(item)
        if not cursor.take(_SP):
            break
    cursor.close()
    return tuple(items)


def _append(cursor: _Cursor) -> Arguments:
    # RFC 3502 §6.3.11: append = "APPEND" SP mailbox 1*append-message;
    # append-message = [SP flag-list] [SP date-time] SP literal
    cursor.sp()
    mailbox = cursor.mailbox()
    messages = [_append_message(cursor)]
    while not cursor.eol():
        messages.append(_append_message(cursor))
    first, *more = messages
    return Append(mailbox, first.flags, first.date_time, first.message, tuple(more), first.binary)


def _append_message(cursor: _Cursor) -> AppendMessage:
    cursor.sp()
    flags: tuple[str, ...] = ()
    moment: datetime | None = None
    if cursor.peek() == _OPEN:
        flags = cursor.flag_list()
        cursor.sp()
    if cursor.peek() == _DQUOTE:
        raw = cursor.quoted()
        try:
            moment = parse_date_time(raw.decode("ascii"))
        except ValueError as exc:
            raise ImapSyntaxError("Invalid date-time") from exc
        cursor.sp()
    binary = cursor.peek() == _TILDE
    if cursor.peek() != _LBRACE and not binary:
        raise cursor.missing_or("Expected message literal")
    return AppendMessage(flags, moment, cursor.message_literal(binary=binary), binary)


def _copy(cursor: _Cursor) -> Arguments:
    cursor.sp()
    sequence_set = cursor.sequence_set()
    cursor.sp()
    return CopyMessages(sequence_set, cursor.mailbox())


def _uid_expunge(cursor: _Cursor) -> Arguments:
    cursor.sp()
    return UidExpunge(cursor.sequence_set())


def _id(cursor: _Cursor) -> Arguments:
    # RFC 2971 §4: id = "ID" SPACE id_params_list;
    # id_params_list = "(" #(string SPACE nstring) ")" / nil
    cursor.sp()
    if cursor.nil():
        return Id(None)
    if not cursor.take(_OPEN):
        raise cursor.missing_or("Expected ID parameter list")
    parameters: list[tuple[str, str | None]] = []
    if not cursor.take(_CLOSE):
        while True:
            key = _utf8(cursor.string())
            cursor.sp()
            value = None if cursor.nil() else _utf8(cursor.string())
            parameters.append((key, value))
            if not cursor.take(_SP):
                break
        cursor.close()
    return Id(tuple(parameters))


def _compress(cursor: _Cursor) -> Arguments:
    # RFC 4978 §3: command-auth =/ compress; compress = "COMPRESS" SP algorithm
    cursor.sp()
    return Compress(cursor.atom().upper())


def _enable(cursor: _Cursor) -> Arguments:
    # RFC 5161 §4: enable = "ENABLE" 1*(SP capability)
    cursor.sp()
    capabilities = [cursor.atom().upper()]
    while cursor.take(_SP):
        capabilities.append(cursor.atom().upper())
    return Enable(tuple(capabilities))


_STORE_MODES: Final[dict[str, StoreMode]] = {"": "replace", "+": "add", "-": "remove"}


def _store(cursor: _Cursor) -> Arguments:
    # store-att-flags = (["+" / "-"] "FLAGS" [".SILENT"]) SP (flag-list / (flag *(SP flag)))
    cursor.sp()
    sequence_set = cursor.sequence_set()
    cursor.sp()
    unchanged_since = None
    if cursor.take(_OPEN):
        # RFC 7162 §3.1.3: store-modifier = "UNCHANGEDSINCE" SP mod-sequence-valzer
        if cursor.atom().upper() != "UNCHANGEDSINCE":
            raise ImapSyntaxError("Invalid STORE modifier")
        cursor.sp()
        unchanged_since = cursor.number64()
        cursor.close()
        cursor.sp()
    item = cursor.atom().upper()
    sign = item[:1] if item[:1] in ("+", "-") else ""
    name = item[len(sign) :]
    if name not in ("FLAGS", "FLAGS.SILENT"):
        raise ImapSyntaxError(f"Invalid STORE item {_shown(item.encode())}")
    cursor.sp()
    if cursor.peek() == _OPEN:
        flags = cursor.flag_list()
    else:
        single = [cursor.flag()]
        while cursor.take(_SP):
            single.append(cursor.flag())
        flags = tuple(single)
    return Store(sequence_set, _STORE_MODES[sign], name.endswith(".SILENT"), flags, unchanged_since)


def _fetch(cursor: _Cursor) -> Arguments:
    # fetch = "FETCH" SP sequence-set SP ("ALL" / "FULL" / "FAST" /
    #         fetch-att / "(" fetch-att *(SP fetch-att) ")")
    cursor.sp()
    sequence_set = cursor.sequence_set()
    cursor.sp()
    if cursor.take(_OPEN):
        items = [_fetch_attribute(cursor)]
        while cursor.take(_SP):
            items.append(_fetch_attribute(cursor))
        cursor.close()
        return _fetch_modifiers(cursor, Fetch(sequence_set, tuple(items)))
    found = _FETCH_NAME.match(cursor.line, cursor.pos)
    macro = None if found is None else _FETCH_MACROS.get(found[0].upper().decode("ascii"))
    if found is not None and macro is not None:
        cursor.pos = found.end()
        return _fetch_modifiers(cursor, Fetch(sequence_set, macro))
    return _fetch_modifiers(cursor, Fetch(sequence_set, (_fetch_attribute(cursor),)))


def _fetch_modifiers(cursor: _Cursor, fetch: Fetch) -> Fetch:
    # RFC 7162 §3.1.4.1, §3.2.6: fetch-modifiers = SP "(" fetch-modifier *(SP ...) ")";
    # "CHANGEDSINCE" SP mod-sequence-value / "VANISHED"
    if not cursor.take(_SP):
        return fetch
    if not cursor.take(_OPEN):
        raise ImapSyntaxError("Unexpected extra arguments")
    changed_since, vanished = None, False
    while True:
        name = cursor.atom().upper()
        if name == "CHANGEDSINCE":
            cursor.sp()
            changed_since = cursor.number64()
        elif name == "VANISHED":
            vanished = True
        else:
            raise ImapSyntaxError(f"Invalid FETCH modifier {_shown(name.encode())}")
        if not cursor.take(_SP):
            break
    cursor.close()
    if vanished and changed_since is None:
        raise ImapSyntaxError("VANISHED needs CHANGEDSINCE")  # RFC 7162 §3.2.6
    return Fetch(fetch.sequence_set, fetch.items, changed_since, vanished)


def _fetch_attribute(cursor: _Cursor) -> FetchAttribute:
    found = cursor.match(_FETCH_NAME)
    if found is None:
        shown = _shown(cursor.line[cursor.pos : cursor.pos + 40].split(b" ", 1)[0])
        raise cursor.missing_or(f"Invalid FETCH attribute {shown}".rstrip())
    name = found[0].upper().decode("ascii")
    if name in ("BINARY", "BINARY.PEEK", "BINARY.SIZE"):
        # RFC 3516 §6: section-binary = "[" [section-part] "]"; BINARY.SIZE takes no partial.
        if not cursor.take(ord("[")):
            raise ImapSyntaxError("Invalid section")
        part: tuple[int, ...] = ()
        numbers = cursor.match(_SECTION_PART)
        if numbers is not None:
            digits = numbers[0].split(b".")
            if any(number.startswith(b"0") or len(number) > 10 for number in digits):
                raise ImapSyntaxError("Invalid section")
            part = tuple(int(number) for number in digits)
        if not cursor.take(ord("]")):
            raise ImapSyntaxError("Invalid section")
        if name == "BINARY.SIZE":
            return FetchBinary(part, size_only=True)
        partial = _partial(cursor) if cursor.peek() == ord("<") else None
        return FetchBinary(part, name == "BINARY.PEEK", partial)
    if name in ("BODY", "BODY.PEEK") and cursor.peek() == ord("["):
        section = _section(cursor)
        partial = _partial(cursor) if cursor.peek() == ord("<") else None
        return FetchBody(section, name == "BODY.PEEK", partial)
    if name not in _FETCH_ITEMS:
        raise ImapSyntaxError(f"Invalid FETCH attribute {_shown(found[0])}")
    return FetchItem(name)


_SECTION_TEXTS: Final = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT"})


def _section(cursor: _Cursor) -> Section:
    # section = "[" [section-spec] "]"
    # section-spec = section-msgtext / (section-part ["." section-text])
    # section-part = nz-number *("." nz-number); section-text = section-msgtext / "MIME"
    cursor.take(ord("["))
    if cursor.take(ord("]")):
        return Section()
    part: tuple[int, ...] = ()
    found = cursor.match(_SECTION_PART)
    if found is not None:
        numbers = found[0].split(b".")
        if any(number.startswith(b"0") or len(number) > 10 for number in numbers):
            raise ImapSyntaxError("Invalid section")
        part = tuple(int(number) for number in numbers)
        if cursor.take(ord("]")):
            return Section(part)
        if not cursor.take(ord(".")):
            raise ImapSyntaxError("Invalid section")
    found = cursor.match(_SECTION_TEXT)
    text = "" if found is None else found[0].upper().decode("ascii")
    if text not in _SECTION_TEXTS and not (text == "MIME" and part):
        raise ImapSyntaxError("Invalid section")
    fields: tuple[str, ...] = ()
    if text.startswith("HEADER.FIELDS"):
        # header-list = "(" header-fld-name *(SP header-fld-name) ")"
        cursor.sp()
        if not cursor.take(_OPEN):
            raise cursor.missing_or("Expected header list")
        names = [_field_name(cursor)]
        while cursor.take(_SP):
            names.append(_field_name(cursor))
        cursor.close()
        fields = tuple(names)
    if not cursor.take(ord("]")):
        raise ImapSyntaxError("Invalid section")
    return Section(part, text, fields)


def _field_name(cursor: _Cursor) -> str:
    # header-fld-name = astring; RFC 5322 §3.6.8: field names are printable US-ASCII.
    name = cursor.text()
    if not name.isascii() or not name.isprintable():
        raise ImapSyntaxError("Invalid header field name")
    return name


def _partial(cursor: _Cursor) -> Partial:
    # RFC 9051 §9 (Appendix E item 1): partial = "<" number64 "." nz-number64 ">"
    cursor.take(ord("<"))
    try:
        offset = cursor.number64()
        if not cursor.take(ord(".")):
            raise ImapSyntaxError("Invalid partial")
        count = cursor.number64()
    except ImapSyntaxError as exc:
        raise ImapSyntaxError("Invalid partial") from exc
    if count == 0 or not cursor.take(ord(">")):
        raise ImapSyntaxError("Invalid partial")
    return Partial(offset, count)


# SEARCH

_SEARCH_FLAGS: Final[dict[str, SearchKey]] = {
    "ALL": All(),
    "ANSWERED": FlagKey("\\Answered", True),
    "DELETED": FlagKey("\\Deleted", True),
    "DRAFT": FlagKey("\\Draft", True),
    "FLAGGED": FlagKey("\\Flagged", True),
    "RECENT": FlagKey("\\Recent", True),
    "SEEN": FlagKey("\\Seen", True),
    "UNANSWERED": FlagKey("\\Answered", False),
    "UNDELETED": FlagKey("\\Deleted", False),
    "UNDRAFT": FlagKey("\\Draft", False),
    "UNFLAGGED": FlagKey("\\Flagged", False),
    "UNSEEN": FlagKey("\\Seen", False),
    # RFC 3501 §6.4.4: NEW is "functionally equivalent to "(RECENT UNSEEN)"", OLD to
    # "NOT RECENT".
    "NEW": And((FlagKey("\\Recent", True), FlagKey("\\Seen", False))),
    "OLD": FlagKey("\\Recent", False),
}
_SEARCH_HEADERS: Final = {
    "BCC": "Bcc",
    "CC": "Cc",
    "FROM": "From",
    "SUBJECT": "Subject",
    "TO": "To",
}
_DateWhich = Literal["internal", "sent"]
_DateRelation = Literal["before", "on", "since"]
_SEARCH_DATES: Final[dict[str, tuple[_DateWhich, _DateRelation]]] = {
    "BEFORE": ("internal", "before"),
    "ON": ("internal", "on"),
    "SINCE": ("internal", "since"),
    "SENTBEFORE": ("sent", "before"),
    "SENTON": ("sent", "on"),
    "SENTSINCE": ("sent", "since"),
}
_SEARCH_KEYS_WITH_ARGUMENT: Final = frozenset(
    {*_SEARCH_HEADERS, *_SEARCH_DATES, "HEADER", "BODY", "TEXT", "KEYWORD", "UNKEYWORD"}
    | {"LARGER", "SMALLER", "UID", "MODSEQ"}
)
_SEARCH_CHARSETS: Final = frozenset({"US-ASCII", "UTF-8"})


_SEARCH_RETURNS: Final = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE"})


def _search(cursor: _Cursor) -> Arguments:
    # search = "SEARCH" [search-return-opts] [SP "CHARSET" SP astring] 1*(SP search-key)
    # RFC 4731 §7: search-return-opts = SP "RETURN" SP "(" [search-return-opt *(SP ...)] ")"
    cursor.sp()
    returns: tuple[str, ...] | None = None
    found = _WORD.match(cursor.line, cursor.pos)
    if found is not None and found[0].upper() == b"RETURN":
        cursor.pos = found.end()
        cursor.sp()
        if not cursor.take(_OPEN):
            raise cursor.missing_or("Expected RETURN options")
        options: list[str] = []
        if not cursor.take(_CLOSE):
            while True:
                option = cursor.atom().upper()
                if option not in _SEARCH_RETURNS:  # SAVE: RFC 5182 §2.1
                    raise ImapSyntaxError(f"Invalid RETURN option {_shown(option.encode())}")
                options.append(option)
                if not cursor.take(_SP):
                    break
            cursor.close()
        returns = tuple(options) or ("ALL",)  # RFC 4731 §3.1: "()" means ALL
        cursor.sp()
    charset: str | None = None
    found = _WORD.match(cursor.line, cursor.pos)
    if found is not None and found[0].upper() == b"CHARSET":
        cursor.pos = found.end()
        cursor.sp()
        charset = cursor.text().upper()
        if charset not in _SEARCH_CHARSETS:
            raise ImapSyntaxError(
                f"Unsupported charset {_shown(charset.encode('utf-8'))}", ErrorKind.BAD_CHARSET
            )
        cursor.sp()
    keys = [_search_key(cursor, 0)]
    while cursor.take(_SP):
        keys.append(_search_key(cursor, 0))
    return Search(charset, keys[0] if len(keys) == 1 else And(tuple(keys)), returns)


def _search_criteria(cursor: _Cursor) -> tuple[str, SearchKey]:
    # RFC 5256 §5: search-criteria = charset 1*(SP search-key); charset = atom / quoted
    charset = cursor.text().upper()
    if charset not in _SEARCH_CHARSETS:
        raise ImapSyntaxError(
            f"Unsupported charset {_shown(charset.encode('utf-8'))}", ErrorKind.BAD_CHARSET
        )
    cursor.sp()
    keys = [_search_key(cursor, 0)]
    while cursor.take(_SP):
        keys.append(_search_key(cursor, 0))
    return charset, keys[0] if len(keys) == 1 else And(tuple(keys))


def _sort(cursor: _Cursor) -> Arguments:
    # RFC 5256 §5: sort = ["UID" SP] "SORT" SP sort-criteria SP search-criteria
    # sort-criteria = "(" sort-criterion *(SP sort-criterion) ")"
    cursor.sp()
    if not cursor.take(_OPEN):
        raise cursor.missing_or("Expected sort criteria")
    criteria: list[SortCriterion] = []
    while True:
        key = cursor.atom().upper()
        reverse = key == "REVERSE"
        if reverse:
            cursor.sp()
            key = cursor.atom().upper()
        if key not in SORT_KEYS:
            raise ImapSyntaxError(f"Invalid sort key {_shown(key.encode())}")
        criteria.append(SortCriterion(key, reverse))
        if not cursor.take(_SP):
            break
    cursor.close()
    cursor.sp()
    return Sort(tuple(criteria), *_search_criteria(cursor))


def _thread(cursor: _Cursor) -> Arguments:
    # RFC 5256 §5: thread = ["UID" SP] "THREAD" SP thread-alg SP search-criteria
    cursor.sp()
    algorithm = cursor.atom().upper()
    if algorithm not in THREAD_ALGORITHMS:
        raise ImapSyntaxError(f"Unsupported threading algorithm {_shown(algorithm.encode())}")
    cursor.sp()
    return Thread(algorithm, *_search_criteria(cursor))


def _search_key(cursor: _Cursor, depth: int) -> SearchKey:
    if depth >= MAX_SEARCH_DEPTH:
        raise ImapSyntaxError("Search criteria nested too deeply")
    if cursor.take(_OPEN):
        # "(" search-key *(SP search-key) ")"
        keys = [_search_key(cursor, depth + 1)]
        while cursor.take(_SP):
            keys.append(_search_key(cursor, depth + 1))
        cursor.close()
        return keys[0] if len(keys) == 1 else And(tuple(keys))
    if cursor.eol():
        raise ImapSyntaxError("Missing argument")
    found = cursor.match(_WORD)
    if found is None:
        raise ImapSyntaxError("Invalid search key")
    token = found[0]
    if token[:1].isdigit() or token[:1] in (b"*", b"$"):
        return SequenceKey(_sequence_set(token))
    name = token.upper().decode("ascii")
    simple = _SEARCH_FLAGS.get(name)
    if simple is not None:
        return simple
    if name == "NOT":
        cursor.sp()
        return Not(_search_key(cursor, depth + 1))
    if name == "OR":
        cursor.sp()
        left = _search_key(cursor, depth + 1)
        cursor.sp()
        return Or(left, _search_key(cursor, depth + 1))
    if name not in _SEARCH_KEYS_WITH_ARGUMENT:
        raise ImapSyntaxError(f"Unknown search key {_shown(token)}")
    cursor.sp()
    if name in _SEARCH_HEADERS:
        return HeaderKey(_SEARCH_HEADERS[name], cursor.text())
    if name == "HEADER":
        field_name = cursor.text()
        cursor.sp()
        return HeaderKey(field_name, cursor.text())
    if name == "BODY":
        return BodyKey(cursor.text())
    if name == "TEXT":
        return TextKey(cursor.text())
    if name in ("KEYWORD", "UNKEYWORD"):
        return FlagKey(cursor.atom(), name == "KEYWORD")
    if name in _SEARCH_DATES:
        which, relation = _SEARCH_DATES[name]
        return DateKey(which, relation, _date(cursor))
    if name in ("LARGER", "SMALLER"):
        return SizeKey("larger" if name == "LARGER" else "smaller", cursor.number())
    if name == "MODSEQ":
        # RFC 7162 §3.1.5: "MODSEQ" [SP entry-name SP entry-type-req] SP mod-sequence-valzer;
        # the entry (a flag's own modseq) is accepted: this server keeps one per message.
        if cursor.peek() == ord('"'):
            cursor.quoted()
            cursor.sp()
            cursor.atom()
            cursor.sp()
        return ModSeqKey(cursor.number64())
    return SequenceKey(cursor.sequence_set(), uid=True)  # UID


_Grammar = Callable[[_Cursor], Arguments]

_COMMANDS: Final[dict[str, _Grammar]] = {
    # RFC 3501 §6.1: any state.
    "CAPABILITY": _no_arguments,
    "NOOP": _no_arguments,
    "LOGOUT": _no_arguments,
    # §6.2: not authenticated.
    "STARTTLS": _no_arguments,
    "AUTHENTICATE": _authenticate,
    "LOGIN": _login,
    # §6.3: authenticated.
    "SELECT": _select,
    "EXAMINE": _select,
    "CREATE": _create,
    "DELETE": _mailbox_argument,
    "RENAME": _rename,
    "SUBSCRIBE": _mailbox_argument,
    "UNSUBSCRIBE": _mailbox_argument,
    "LIST": _list_extended,
    "LSUB": _list,
    "STATUS": _status,
    "APPEND": _append,
    # §6.4: selected.
    "CHECK": _no_arguments,
    "CLOSE": _no_arguments,
    "EXPUNGE": _no_arguments,
    "SEARCH": _search,
    "FETCH": _fetch,
    "STORE": _store,
    "COPY": _copy,
    # Extensions.
    "MOVE": _copy,  # RFC 6851 §3.1
    "IDLE": _no_arguments,  # RFC 2177 §3
    "NAMESPACE": _no_arguments,  # RFC 2342 §5
    "ID": _id,  # RFC 2971 §3.1
    "ENABLE": _enable,  # RFC 5161 §3.1
    "COMPRESS": _compress,  # RFC 4978 §3
    "UNSELECT": _no_arguments,  # RFC 3691 §2
    "GETQUOTA": _quota_root,  # RFC 9208 §4.1.1
    "GETQUOTAROOT": _mailbox_argument,  # RFC 9208 §4.1.2
    "SORT": _sort,  # RFC 5256 §3
    "THREAD": _thread,  # RFC 5256 §3
}
# uid = "UID" SP (copy / fetch / search / store), RFC 6851 §4.3 "UID MOVE", RFC 4315 §2.1
# "UID EXPUNGE" sequence-set.
_UID_COMMANDS: Final[dict[str, _Grammar]] = {
    "COPY": _copy,
    "MOVE": _copy,
    "FETCH": _fetch,
    "SEARCH": _search,
    "STORE": _store,
    "EXPUNGE": _uid_expunge,
    "SORT": _sort,  # RFC 5256 §3
    "THREAD": _thread,
}


def _parse(lines: list[bytes], literals: list[bytes | LiteralSink]) -> Command:
    """Parse a framed command; raises ImapSyntaxError, or _NeedLiteral on a partial one."""
    cursor = _Cursor(lines, literals)
    found = cursor.match(_TAG)
    if found is None:
        raise ImapSyntaxError("Invalid tag")
    tag = found[0].decode("ascii")
    if not cursor.take(_SP):
        raise ImapSyntaxError("Missing command" if cursor.eol() else "Invalid tag")
    if cursor.eol():
        raise ImapSyntaxError("Missing command")
    word = cursor.match(_ATOM)
    if word is None:
        raise ImapSyntaxError("Invalid command")
    name = word[0].upper().decode("ascii")
    uid = False
    grammar = _COMMANDS.get(name)
    if name == "UID":
        cursor.sp()
        sub = cursor.match(_ATOM)
        if sub is None:
            raise ImapSyntaxError("Invalid UID command")
        name = sub[0].upper().decode("ascii")
        grammar = _UID_COMMANDS.get(name)
        if grammar is None:
            raise ImapSyntaxError(f"Invalid UID command {_shown(sub[0])}")
        uid = True
    if grammar is None:
        raise ImapSyntaxError(f"Unknown command {_shown(word[0])}", ErrorKind.UNKNOWN_COMMAND)
    args = grammar(cursor)
    cursor.end()
    return Command(tag, name, args, uid)


def _tag_of(line: bytes | bytearray) -> str | None:
    """The tag of a command line, if it starts with a valid one followed by SP."""
    found = _TAG.match(line)
    if found is None or line[found.end() : found.end() + 1] != b" ":
        return None
    return found[0].decode("ascii")


def _command_name(line: bytes) -> str:
    found = re.match(rb"[^ ]+ (?:UID )?([^ ]+)", line, re.IGNORECASE)
    return "" if found is None else found[1].upper().decode("ascii", "replace")


# --- lines in other modes -----------------------------------------------------------------


def parse_idle_done(line: bytes) -> bool:
    """Whether a line read during IDLE is the ``DONE`` that ends it (RFC 2177 §3)."""
    return line.upper() == b"DONE"


def parse_auth_response(line: bytes) -> bytes | None:
    """Decode a line the client sent in answer to an AUTHENTICATE challenge.

    Returns the decoded response (an empty line is an empty response), or None when the
    client cancelled with ``*`` (RFC 3501 §6.2.2). Raises ImapSyntaxError("Invalid base64").
    What a response line means is decided once, in `postroom.sasl`, for every protocol.
    """
    # RFC 9051 §6.2.2: an empty continuation answer is an empty line; "=" stands for an empty
    # response only as the command's initial response (RFC 4959 §3), so here it is not base64.
    # Only the line itself is decoded: spaces around it are not base64 either (RFC 3501 §9).
    if line == b"=" or line != line.strip(b" "):
        raise ImapSyntaxError("Invalid base64")
    try:
        return sasl.decode_response(line)
    except sasl.SaslError as exc:
        if exc.problem == "cancelled":
            return None
        raise ImapSyntaxError("Invalid base64") from None


# --- framing ------------------------------------------------------------------------------


class CommandReader:
    """Turns the bytes a client sends into events, one command at a time.

    Feed bytes as they arrive with `feed`, then call `next_event` until it returns None
    (more bytes needed). It never raises on client input: malformed commands become
    `ParseError`, oversized ones `TooBig`, and the reader skips them and goes on with the
    next command. Memory is bounded by the limits: at most `max_line_length` octets of
    command lines plus the literals of one command (`max_literal_size` in total, or
    `max_append_size` more for APPEND's message), beyond what was fed and not yet read.

    The session answers each event: `NeedContinuation` with its ``+`` line, errors with
    their `response()`. For AUTHENTICATE continuation lines and IDLE's DONE, call
    `expect_line` and the next event is a `Line`.
    """

    def __init__(
        self,
        *,
        max_line_length: int = MAX_LINE_LENGTH,
        max_literal_size: int = MAX_LITERAL_SIZE,
        max_append_size: int = MAX_APPEND_SIZE,
        budget: InflightBudget | None = None,
        literal_sink: Callable[[], LiteralSink] | None = None,
    ) -> None:
        self.max_line_length = max_line_length
        self.max_literal_size = max_literal_size
        self.max_append_size = max_append_size
        # The process's budget of messages being received: APPEND's literal is reserved in it
        # when announced and given back once its command has been answered (`next_event`).
        self.budget = budget
        self._reserved = 0
        # Large APPEND literals are written to a sink from this factory as they arrive; the
        # sinks of a command are closed once it has been answered.
        self.literal_sink = literal_sink
        self._sink: LiteralSink | None = None
        self._sinks: list[LiteralSink] = []
        self._answered_sinks: list[LiteralSink] = []
        self._buffer = bytearray()
        self._scanned = 0  # octets at the start of _buffer known to hold no LF
        # The command being framed: its lines (without CRLF) and the literals after them.
        self._lines: list[bytes] = []
        self._literals: list[bytes | LiteralSink] = []
        self._line_octets = 0
        self._literal_octets = 0
        self._checked_octets = 0
        # A literal being read, in chunks joined once at its end.
        self._chunks: list[bytes] = []
        self._literal_left = 0
        self._collecting = False
        # Skipping a refused command: octets of a LITERAL+ literal to drop, then the rest
        # of the line (whose last octets tell whether another literal follows).
        self._discard_left = 0
        self._skipping = False
        self._skip_tail = b""
        self._want_line = False

    @property
    def buffered(self) -> int:
        """Octets held: unread input plus the command being framed."""
        held = len(self._buffer) + self._line_octets + sum(map(len, self._chunks))
        return held + sum(len(item) for item in self._literals if isinstance(item, bytes))

    def feed(self, data: bytes) -> None:
        """Add bytes received from the client."""
        self._buffer += data

    def take_input(self) -> bytes:
        """The octets fed and not yet read, taken out (RFC 4978: after COMPRESS they are
        compressed, and go through the decompressor first)."""
        data = bytes(self._buffer)
        self._buffer.clear()
        self._scanned = 0
        return data

    def expect_line(self) -> None:
        """Read the next line raw, as a `Line` event: an AUTHENTICATE response or DONE."""
        if self._lines or self._collecting:
            raise RuntimeError("expect_line() in the middle of a command")
        self._want_line = True

    def refuse_literal(self) -> None:
        """Abandon the command whose `NeedContinuation` was just returned, instead of
        sending ``+``. RFC 3501 §7.5: given a tagged response instead of the continuation,
        the client does not send the literal; the session sends that response."""
        if not self._collecting:
            raise RuntimeError("refuse_literal() without a pending literal")
        self._reset_command()

    def next_event(self) -> Event | None:
        """The next event, or None when more bytes are needed."""
        if (self._reserved or self._answered_sinks) and not self._lines and not self._collecting:
            self.close()  # the command that held it has been answered
        while True:
            if self._discard_left:
                if not self._discard():
                    return None
                continue
            if self._skipping:
                if not self._skip():
                    return None
                continue
            if self._collecting:
                if not self._collect():
                    return None
                continue
            line = self._take_line()
            if line is None:
                return self._check_partial_line()
            if self._line_octets + len(line) > self.max_line_length:
                return self._line_too_long(line)
            if self._want_line:
                self._want_line = False
                return Line(line)
            if not self._lines and not line:
                # An empty line is not a command (RFC 3501 §2.2.1: every command starts with a
                # tag): answered like any other line without one, as Dovecot does.
                return ParseError(None, "Empty command line")
            self._lines.append(line)
            self._line_octets += len(line)
            # RFC 3501 §7.5, RFC 7888 §3: a line ending in a literal announcement continues
            # with the literal's octets and the line after them, all one command.
            announced = _LITERAL_AT_END.search(line)
            if announced is None:
                return self._finish()
            event = self._announce(int(announced[1]), synchronizing=not announced[2])
            if event is not None:
                return event

    # reading

    def _take_line(self) -> bytes | None:
        end = self._buffer.find(b"\n", self._scanned)
        if end < 0:
            self._scanned = len(self._buffer)
            return None
        with memoryview(self._buffer) as view:
            line = bytes(view[:end])
        del self._buffer[: end + 1]
        self._scanned = 0
        # RFC 3501 §2.2: lines end with CRLF; a bare LF is accepted as well.
        return line[:-1] if line.endswith(b"\r") else line

    def _collect(self) -> bool:
        count = min(len(self._buffer), self._literal_left)
        if count:
            with memoryview(self._buffer) as view:
                if self._sink is not None:
                    self._sink.write(view[:count].tobytes())
                else:
                    self._chunks.append(bytes(view[:count]))
            del self._buffer[:count]
            self._scanned = 0
            self._literal_left -= count
        if self._literal_left:
            return False
        if self._sink is not None:
            self._literals.append(self._sink)
            self._sink = None
        else:
            self._literals.append(b"".join(self._chunks))
        self._chunks = []
        self._collecting = False
        return True

    def _discard(self) -> bool:
        count = min(len(self._buffer), self._discard_left)
        del self._buffer[:count]
        self._scanned = 0
        self._discard_left -= count
        return not self._discard_left

    def _skip(self) -> bool:
        end = self._buffer.find(b"\n")
        if end < 0:
            self._skip_tail = (self._skip_tail + bytes(self._buffer[-32:]))[-32:]
            self._buffer.clear()
            self._scanned = 0
            return False
        tail = (self._skip_tail + bytes(self._buffer[max(0, end - 32) : end]))[-32:]
        del self._buffer[: end + 1]
        self._scanned = 0
        self._skip_tail = b""
        self._skipping = False
        self._skip_literal(tail)
        return True

    def _skip_literal(self, line_end: bytes) -> None:
        """After a skipped line: a LITERAL+ literal at its end is sent regardless, so drop
        it and the line after it (RFC 7888 §4: read and discard, or close)."""
        announced = _LITERAL_AT_END.search(line_end.removesuffix(b"\r"))
        if announced is not None and announced[2]:
            self._discard_left = int(announced[1])
            self._skipping = True

    def close(self) -> None:
        """Give back what this reader holds of the budget (also when the connection ends)."""
        if self.budget is not None and self._reserved:
            self.budget.release(self._reserved)
        self._reserved = 0
        for sink in self._answered_sinks:
            sink.close()
        self._answered_sinks = []
        self._close_sinks()  # a command cut short by the end of the connection

    def _close_sinks(self) -> None:
        for sink in self._sinks:
            sink.close()
        self._sinks = []
        self._sink = None

    def _reset_command(self) -> None:
        self._close_sinks()
        self._lines = []
        self._literals = []
        self._chunks = []
        self._line_octets = 0
        self._literal_octets = 0
        self._checked_octets = 0
        self._literal_left = 0
        self._collecting = False

    def _tag(self) -> str | None:
        return _tag_of(self._lines[0]) if self._lines else None

    # decisions

    def _check_partial_line(self) -> Event | None:
        # Room for the CR of a line that is exactly at the limit.
        if self._line_octets + len(self._buffer) <= self.max_line_length + 1:
            return None
        tag = self._tag() if self._lines else _tag_of(self._buffer[:1024])
        want_line = self._want_line
        self._want_line = False
        self._reset_command()
        self._skip_tail = bytes(self._buffer[-32:])
        self._buffer.clear()
        self._scanned = 0
        self._skipping = True
        return TooBig(None if want_line else tag, _line_too_long_text(want_line), "BAD")

    def _line_too_long(self, line: bytes) -> Event:
        tag = self._tag() if self._lines else _tag_of(line[:1024])
        want_line = self._want_line
        self._want_line = False
        self._reset_command()
        if not want_line:
            self._skip_literal(line[-32:])
        return TooBig(None if want_line else tag, _line_too_long_text(want_line), "BAD")

    def _announce(self, size: int, *, synchronizing: bool) -> Event | None:
        """A line ended with a literal announcement: accept or refuse the literal."""
        tag = self._tag()
        name = _command_name(self._lines[0])
        if name == "APPEND":
            # APPEND's message may be as large as a message; its other arguments are small.
            limit = self.max_append_size
            budget = self.max_append_size + self.max_literal_size
        else:
            limit = budget = self.max_literal_size
        if size > limit or self._literal_octets + size > budget:
            self._refuse(size, synchronizing=synchronizing)
            return TooBig(tag, "Literal too big", "NO")
        error = self._check_before_literal()
        if error is not None:
            self._refuse(size, synchronizing=synchronizing)
            return error
        if name == "APPEND" and self.budget is not None:
            if not self.budget.reserve(size):
                self._refuse(size, synchronizing=synchronizing)
                return TooBig(tag, "Too many messages are being received at once", "NO", "LIMIT")
            self._reserved += size
        self._literal_octets += size
        self._literal_left = size
        self._collecting = True
        if name == "APPEND" and size > STREAM_AT and self.literal_sink is not None:
            # Streamed: memory holds one read's worth of it, not the message.
            self._sink = self.literal_sink()
            self._sinks.append(self._sink)
        if synchronizing:
            return NeedContinuation(tag or "*", name)
        return None

    def _refuse(self, size: int, *, synchronizing: bool) -> None:
        self._reset_command()
        if not synchronizing:
            # RFC 7888 §4: the client sends a non-synchronizing literal without waiting,
            # so its octets, and the rest of the command after them, are dropped.
            self._discard_left = size
            self._skipping = True
        # A synchronizing literal is never sent once the command has a tagged response
        # (RFC 3501 §7.5): the next line is a new command.

    def _check_before_literal(self) -> ParseError | None:
        """Parse what has arrived, so that an unknown command or a bad argument is refused
        before the client sends the literal (for APPEND, the whole message).

        Each check re-reads the command so far; past a budget of a few line limits, later
        literals of the same command are accepted unchecked and the full parse decides.
        """
        self._checked_octets += self._line_octets
        if self._checked_octets > _CHECK_BUDGET * self.max_line_length:
            return None
        try:
            _parse(self._lines, self._literals)
        except _NeedLiteral:
            return None
        except ImapSyntaxError as exc:
            return ParseError(self._tag(), exc.message, exc.kind)
        return None

    def _finish(self) -> Event:
        lines, literals, tag = self._lines, self._literals, self._tag()
        # The command's sinks live until it has been answered (the next `next_event`).
        self._answered_sinks += self._sinks
        self._sinks = []
        self._reset_command()
        try:
            return _parse(lines, literals)
        except ImapSyntaxError as exc:
            return ParseError(tag, exc.message, exc.kind)
        except _NeedLiteral:  # pragma: no cover - a framed command has all its literals
            return ParseError(tag, "Invalid literal")


def _line_too_long_text(raw: bool) -> str:
    return "Line too long" if raw else "Command line too long"
