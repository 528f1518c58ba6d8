"""Searching and listing a mailbox in Postgres: one criteria tree for IMAP SEARCH and the API.

Criteria are a small tree of frozen dataclasses compiled to one SQL query with bound
parameters. Text criteria are case-insensitive substring matches (RFC 3501 §6.4.4) over the
decoded text kept for each message, served by trigram indexes where pg_trgm is installed.
Session-specific keys (sequence numbers, \\Recent) are resolved to UID sets by the caller.

Cost is bounded three ways: at most MAX_TEXT_TERMS text terms a search, body and text terms
of at least MIN_TEXT characters (a shorter one cannot use a trigram index, so it would read
and lowercase every message's text), and the connection's ``statement_timeout``, which
turns into `QueryTimeout`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import psycopg.errors

from postroom.db import Conn
from postroom.errors import InvalidInput, LimitExceeded, QueryTimeout
from postroom.store.types import SYSTEM_FLAGS, BlobId, MailboxId, MessageId

DateOp = Literal["before", "on", "since"]
MAX_NODES = 1000
MAX_TEXT = 1000
# Text terms (header, body, text) a search may hold: each is a scan of decoded text.
MAX_TEXT_TERMS = 20
# pg_trgm indexes only patterns of three characters and more; a shorter body or text term
# would be an unindexed scan of up to 1 MiB of text per message.
MIN_TEXT = 3


@dataclass(frozen=True, slots=True)
class All:
    """Every message."""


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Criterion, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Criterion, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Criterion


@dataclass(frozen=True, slots=True)
class UidRanges:
    """UIDs in any of the inclusive ranges (a resolved IMAP sequence set or UID set)."""

    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Flag:
    """A system flag (``\\Seen``…) or keyword is set (``present``) or not."""

    name: str
    present: bool = True


@dataclass(frozen=True, slots=True)
class Header:
    """A header field contains ``value`` (any value, when empty: the field exists)."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class Text:
    """Substring of the message: ``body`` only, or all ``text`` (headers and body)."""

    value: str
    where: Literal["text", "body"] = "text"


@dataclass(frozen=True, slots=True)
class InternalDate:
    op: DateOp
    day: date


@dataclass(frozen=True, slots=True)
class SentDate:
    """The Date: header's day (RFC 3501 SENTBEFORE/SENTON/SENTSINCE)."""

    op: DateOp
    day: date


@dataclass(frozen=True, slots=True)
class Size:
    op: Literal["larger", "smaller"]
    octets: int


@dataclass(frozen=True, slots=True)
class HasAttachments:
    """The message has attachments (known when it was parsed on entering a mailbox)."""


@dataclass(frozen=True, slots=True)
class ModSeq:
    """Changed after this modseq (RFC 7162 MODSEQ, also what a sync client asks)."""

    greater_than: int


Criterion = (
    All
    | And
    | Or
    | Not
    | UidRanges
    | Flag
    | Header
    | Text
    | InternalDate
    | SentDate
    | Size
    | HasAttachments
    | ModSeq
)

# Header fields whose parsed addresses have a decoded column of their own.
_ADDRESS_COLUMNS = {"from": "b.from_text", "to": "b.to_text", "cc": "b.cc_text"}
_DATE_SQL = {"before": "<", "on": "=", "since": ">="}


def _like(value: str) -> str:
    if len(value) > MAX_TEXT:
        raise InvalidInput(f"search strings are limited to {MAX_TEXT} characters")
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.replace(chr(0), '')}%"


class _Compiler:
    def __init__(self, hits: dict[tuple[str, str], list[int]] | None = None) -> None:
        self.params: dict[str, Any] = {}
        self.nodes = 0
        self.text_terms = 0
        # Blob ids already found on the trigram indexes, per (value, where) of a Text term.
        self.hits = hits or {}

    def bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"%({name})s"

    def _text_term(self) -> None:
        self.text_terms += 1
        if self.text_terms > MAX_TEXT_TERMS:
            raise LimitExceeded(f"a search holds at most {MAX_TEXT_TERMS} text terms")

    def compile(self, c: Criterion) -> str:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise InvalidInput(f"search criteria are limited to {MAX_NODES} terms")
        match c:
            case All():
                return "TRUE"
            case And(items):
                return "(" + " AND ".join(self.compile(i) for i in items) + ")" if items else "TRUE"
            case Or(items):
                return "(" + " OR ".join(self.compile(i) for i in items) + ")" if items else "FALSE"
            case Not(item):
                # Text criteria below may be NULL (a blob without search text): NOT of
                # "unknown" is "matches", as for any message that lacks the text.
                return f"NOT coalesce({self.compile(item)}, false)"
            case UidRanges(ranges):
                if not ranges:
                    return "FALSE"
                lows = self.bind([lo for lo, _ in ranges])
                highs = self.bind([hi for _, hi in ranges])
                return (
                    f"EXISTS (SELECT 1 FROM unnest({lows}::bigint[], {highs}::bigint[]) r(lo, hi)"
                    " WHERE m.uid BETWEEN r.lo AND r.hi)"
                )
            case Flag(name, present):
                column = {k.lower(): v for k, v in SYSTEM_FLAGS.items()}.get(name.lower())
                if column is not None:
                    sql = f"m.{column}"
                elif name.startswith("\\"):
                    # \Recent is the caller's to resolve; any other unknown system flag
                    # matches nothing.
                    return "FALSE" if present else "TRUE"
                else:
                    sql = f"{self.bind(name)} = ANY(m.keywords)"
                return sql if present else f"NOT ({sql})"
            case Header(name, value):
                field = name.strip().lower()
                if not field or any(ch in field for ch in ": \t\r\n"):
                    raise InvalidInput(f"{name!r} is not a header field name")
                self._text_term()
                if field == "subject" and value:
                    return f"coalesce(b.subject, '') ILIKE {self.bind(_like(value))}"
                # Other fields: the decoded header block, "Name: value" one field a line.
                pattern = f"(^|\\n){_regex_escape(field)}:[^\\n]*{_regex_escape(value)}"
                # The bare column (no coalesce) so that the trigram index serves the regex.
                written = f"b.header_text ~* {self.bind(pattern)}"
                column = _ADDRESS_COLUMNS.get(field)
                if column is None or not value:
                    return written
                # Addresses: as parsed ("name <local@domain>", comments and folding gone)
                # or as written (group names, comments, source routes).
                return f"(coalesce({column}, '') ILIKE {self.bind(_like(value))} OR {written})"
            case Text(value, where):
                self._text_term()
                if len(value) < MIN_TEXT:
                    raise LimitExceeded(
                        f"body and text search terms need at least {MIN_TEXT} characters"
                    )
                found = self.hits.get((value, where))
                if found is not None:
                    return f"m.blob_id = ANY({self.bind(found)}::bigint[])"
                like = self.bind(_like(value))
                # Bare columns, so that the trigram indexes serve the ILIKE: a coalesce()
                # around them forces a sequential scan of every blob.
                body = f"b.search_text ILIKE {like}"
                if where == "body":
                    # search_text begins with From/To/Cc/Subject lines: the indexed ILIKE
                    # finds candidates, the one after it keeps those matching in the body.
                    return (
                        f"({body} AND substr(b.search_text, coalesce(b.search_body_at, 0) + 1)"
                        f" ILIKE {like})"
                    )
                return f"({body} OR b.header_text ILIKE {like})"
            case InternalDate(op, day):
                return (
                    f"(m.internal_date AT TIME ZONE 'UTC')::date {_DATE_SQL[op]} {self.bind(day)}"
                )
            case SentDate(op, day):
                # RFC 3501 §6.4.4: the Date: header's day, "disregarding time and timezone".
                return (
                    "coalesce(b.sent_day, (coalesce(b.sent_date, m.internal_date)"
                    f" AT TIME ZONE 'UTC')::date) {_DATE_SQL[op]} {self.bind(day)}"
                )
            case Size(op, octets):
                return f"m.size {'>' if op == 'larger' else '<'} {self.bind(octets)}"
            case HasAttachments():
                return "coalesce(b.has_attachments, false)"
            case ModSeq(greater_than):
                return f"m.modseq > {self.bind(greater_than)}"
        raise InvalidInput(f"unknown search criterion {c!r}")


def _regex_escape(text: str) -> str:
    return "".join("\\" + ch if ch in r".^$*+?()[]{}|\-/" else ch for ch in text)


# A TEXT or BODY term found in more blobs than this share of the mailbox's messages (and
# this floor) is evaluated message by message instead: reading the index's candidates
# would then cost more than reading the mailbox, and at most this share is spent on it.
INDEX_HITS_SHARE = 20
MIN_INDEX_HITS = 200
# What the compiled conditions read of a blob (not its content).
_BLOB_COLUMNS = (
    "b.id, b.search_text, b.header_text, b.search_body_at, b.subject, b.from_text,"
    " b.to_text, b.cc_text, b.sent_date, b.sent_day"
)
_trigram_indexes: bool | None = None


def _text_terms(c: Criterion) -> set[tuple[str, str]]:
    match c:
        case Text(value, where) if len(value) >= MIN_TEXT and len(value) <= MAX_TEXT:
            return {(value, where)}
        case And(items) | Or(items):
            return set().union(*(_text_terms(i) for i in items)) if items else set()
        case Not(item):
            return _text_terms(item)
    return set()


async def _has_trigram_indexes(conn: Conn) -> bool:
    global _trigram_indexes
    if _trigram_indexes is None:
        cur = await conn.execute(
            "SELECT to_regclass('blobs_search_trgm') IS NOT NULL"
            " AND to_regclass('blobs_header_trgm') IS NOT NULL AS found"
        )
        row = await cur.fetchone()
        _trigram_indexes = bool(row and row["found"])
    return _trigram_indexes


async def _index_hits(conn: Conn, value: str, where: str, cap: int) -> list[int] | None:
    """The blobs whose text contains ``value``, found on the trigram indexes; None when
    there are more than ``cap`` (a common word: cheaper to read the mailbox's own).

    The plan is forced, not left to statistics: fresh ones make the planner prefer reading
    every blob (it underrates ILIKE), stale ones a loop over the mailbox. With sequential
    scans disabled for this one statement the trigram index is the only way left.
    """
    like = _like(value)
    sql = "SELECT id FROM blobs WHERE search_text ILIKE %(like)s"
    if where == "text":
        sql += " UNION SELECT id FROM blobs WHERE header_text ILIKE %(like)s"
    async with conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        cur = await conn.execute(
            f"SELECT id FROM ({sql}) hits LIMIT %(cap)s", {"like": like, "cap": cap + 1}
        )
        rows = await cur.fetchall()
        # Inside a caller's transaction SET LOCAL would outlive this block.
        await conn.execute("SET LOCAL enable_seqscan = on")
    if len(rows) > cap:
        return None
    found = [int(r["id"]) for r in rows]
    if where == "body" and found:
        # search_text starts with the header lines: BODY looks only past them.
        cur = await conn.execute(
            """SELECT id FROM blobs WHERE id = ANY(%(ids)s::bigint[])
               AND substr(search_text, coalesce(search_body_at, 0) + 1) ILIKE %(like)s""",
            {"ids": found, "like": like},
        )
        found = [int(r["id"]) for r in await cur.fetchall()]
    return found


async def search_uids(
    conn: Conn, mailbox_id: MailboxId, criteria: Criterion, *, messages: int | None = None
) -> list[int]:
    """UIDs of the messages in the mailbox that match, ascending.

    ``messages``: about how many the mailbox holds (decides when a TEXT or BODY term is
    looked up on the trigram index first); counted when not given.
    """
    try:
        hits: dict[tuple[str, str], list[int]] = {}
        terms = _text_terms(criteria)
        if terms and len(terms) <= MAX_TEXT_TERMS and await _has_trigram_indexes(conn):
            if messages is None:
                cur = await conn.execute(
                    "SELECT count(*) AS n FROM messages WHERE mailbox_id = %s", (mailbox_id,)
                )
                row = await cur.fetchone()
                messages = int(row["n"]) if row else 0
            cap = max(MIN_INDEX_HITS, messages // INDEX_HITS_SHARE)
            for value, where in terms:
                found = await _index_hits(conn, value, where, cap)
                if found is not None:
                    hits[(value, where)] = found
        compiler = _Compiler(hits)
        where = compiler.compile(criteria)
        if "b." not in where:
            source = "messages m"
        else:
            # Message by message: each blob read by its key (OFFSET 0 keeps the planner
            # from turning this into a scan of every blob).
            source = (
                f"messages m CROSS JOIN LATERAL (SELECT {_BLOB_COLUMNS} FROM blobs b"
                " WHERE b.id = m.blob_id OFFSET 0) b"
            )
        cur = await conn.execute(
            f"""SELECT m.uid FROM {source}
                WHERE m.mailbox_id = %(mailbox)s AND {where} ORDER BY m.uid""",
            {**compiler.params, "mailbox": mailbox_id},
        )
        return [r["uid"] for r in await cur.fetchall()]
    except psycopg.errors.QueryCanceled as exc:
        raise _timed_out() from exc


def _timed_out() -> QueryTimeout:
    return QueryTimeout("the search took too long; narrow it down")


# --- listing for people (the API's message list) ----------------------------------------

SortKey = Literal["date", "arrival", "from", "subject", "size"]
_SORT_SQL: dict[str, str] = {
    "date": "coalesce(b.sent_date, m.internal_date)",
    "arrival": "m.internal_date",
    "from": "lower(coalesce(b.from_text, ''))",
    "subject": "lower(coalesce(b.subject, ''))",
    "size": "m.size",
}
MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """What a message list shows, without reading the message."""

    id: MessageId
    uid: int
    blob_id: BlobId
    size: int
    internal_date: datetime
    flags: frozenset[str]
    subject: str | None
    from_text: str | None
    to_text: str | None
    cc_text: str | None
    sent_date: datetime | None
    message_id: str | None
    has_attachments: bool
    preview: str
    thread_id: int | None = None  # its conversation (migration 0085)


@dataclass(frozen=True, slots=True)
class Page:
    total: int
    items: tuple[MessageSummary, ...]


async def list_summaries(
    conn: Conn,
    mailbox_id: MailboxId,
    *,
    criteria: Criterion | None = None,
    sort: SortKey = "date",
    descending: bool = True,
    offset: int = 0,
    limit: int = 50,
) -> Page:
    """One page of a mailbox's messages, sorted and optionally filtered, with the total."""
    if sort not in _SORT_SQL:
        raise InvalidInput(f"cannot sort by {sort!r}; use one of {', '.join(_SORT_SQL)}")
    if not 0 < limit <= MAX_PAGE or offset < 0:
        raise InvalidInput(f"a page holds 1 to {MAX_PAGE} messages, from offset 0 on")
    compiler = _Compiler()
    where = compiler.compile(criteria or All())
    direction = "DESC" if descending else "ASC"
    params = {**compiler.params, "mailbox": mailbox_id, "limit": limit, "offset": offset}
    try:
        return await _list(conn, where, params, sort, direction, whole=criteria is None)
    except psycopg.errors.QueryCanceled as exc:
        raise _timed_out() from exc


async def _list(
    conn: Conn,
    where: str,
    params: dict[str, Any],
    sort: SortKey,
    direction: str,
    *,
    whole: bool,
) -> Page:
    cur = await conn.execute(
        f"""SELECT {_SUMMARY_COLUMNS}
            FROM messages m JOIN blobs b ON b.id = m.blob_id
            WHERE m.mailbox_id = %(mailbox)s AND {where}
            ORDER BY {_SORT_SQL[sort]} {direction}, m.uid {direction}
            LIMIT %(limit)s OFFSET %(offset)s""",
        params,
    )
    rows = await cur.fetchall()
    # Counted apart: a count(*) OVER () in the page query reads and sorts every match, which
    # makes the first page of a 100,000-message folder cost as much as the whole folder.
    total = await _count(conn, None if whole else where, params)
    return Page(total, tuple(_summary(r) for r in rows))


_SUMMARY_COLUMNS = """m.id, m.uid, m.blob_id, m.size, m.internal_date, m.seen, m.answered,
    m.flagged, m.deleted, m.draft, m.keywords, m.thread_id, b.subject, b.from_text,
    b.to_text, b.cc_text, b.sent_date, b.message_id,
    coalesce(b.has_attachments, false) AS has_attachments,
    coalesce(b.parsed ->> 'preview', '') AS preview"""


def _summary(r: dict[str, Any]) -> MessageSummary:
    return MessageSummary(
        id=MessageId(r["id"]),
        uid=r["uid"],
        blob_id=BlobId(r["blob_id"]),
        size=r["size"],
        internal_date=r["internal_date"],
        flags=frozenset([f for f, col in SYSTEM_FLAGS.items() if r[col]] + list(r["keywords"])),
        subject=r["subject"],
        from_text=r["from_text"],
        to_text=r["to_text"],
        cc_text=r["cc_text"],
        sent_date=r["sent_date"],
        message_id=r["message_id"],
        has_attachments=r["has_attachments"],
        preview=r["preview"],
        thread_id=r.get("thread_id"),
    )


@dataclass(frozen=True, slots=True)
class Conversation:
    """One row of a folder listed by conversation: its newest message in the folder, how many
    of its messages the folder holds (that match), and how many of those are unread."""

    thread_id: int
    messages: int
    unread: int
    newest: datetime
    latest: MessageSummary


@dataclass(frozen=True, slots=True)
class ConversationPage:
    total: int
    items: tuple[Conversation, ...]


async def list_conversations(
    conn: Conn,
    mailbox_id: MailboxId,
    *,
    criteria: Criterion | None = None,
    descending: bool = True,
    offset: int = 0,
    limit: int = 50,
) -> ConversationPage:
    """One page of a mailbox's conversations (messages grouped by ``thread_id``, set when
    each was stored, migration 0085), newest arrival first (or last), with their number."""
    if not 0 < limit <= MAX_PAGE or offset < 0:
        raise InvalidInput(f"a page holds 1 to {MAX_PAGE} conversations, from offset 0 on")
    compiler = _Compiler()
    where = compiler.compile(criteria or All())
    direction = "DESC" if descending else "ASC"
    params = {**compiler.params, "mailbox": mailbox_id, "limit": limit, "offset": offset}
    # Without criteria the groups come from the index messages_threads alone.
    source = "messages m" if "b." not in where else "messages m JOIN blobs b ON b.id = m.blob_id"
    try:
        cur = await conn.execute(
            f"""WITH groups AS (
                    SELECT m.thread_id, count(*) AS messages,
                           count(*) FILTER (WHERE NOT m.seen) AS unread,
                           max(m.internal_date) AS newest
                    FROM {source}
                    WHERE m.mailbox_id = %(mailbox)s AND {where}
                    GROUP BY m.thread_id)
                SELECT g.*, count(*) OVER () AS total FROM groups g
                ORDER BY g.newest {direction}, g.thread_id {direction}
                LIMIT %(limit)s OFFSET %(offset)s""",
            params,
        )
        groups = await cur.fetchall()
        if not groups:
            total = 0 if offset == 0 else await _count_conversations(conn, source, where, params)
            return ConversationPage(total, ())
        cur = await conn.execute(
            f"""SELECT DISTINCT ON (m.thread_id) {_SUMMARY_COLUMNS}
                FROM messages m JOIN blobs b ON b.id = m.blob_id
                WHERE m.mailbox_id = %(mailbox)s AND m.thread_id = ANY(%(threads)s) AND {where}
                ORDER BY m.thread_id, m.internal_date DESC, m.uid DESC""",
            {**params, "threads": [g["thread_id"] for g in groups]},
        )
        latest = {r["thread_id"]: _summary(r) for r in await cur.fetchall()}
    except psycopg.errors.QueryCanceled as exc:
        raise _timed_out() from exc
    items = tuple(
        Conversation(
            thread_id=g["thread_id"],
            messages=g["messages"],
            unread=g["unread"],
            newest=g["newest"],
            latest=latest[g["thread_id"]],
        )
        for g in groups
        if g["thread_id"] in latest
    )
    return ConversationPage(int(groups[0]["total"]), items)


async def _count_conversations(conn: Conn, source: str, where: str, params: dict[str, Any]) -> int:
    cur = await conn.execute(
        f"""SELECT count(DISTINCT m.thread_id) AS n FROM {source}
            WHERE m.mailbox_id = %(mailbox)s AND {where}""",
        params,
    )
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def thread_uids(conn: Conn, mailbox_id: MailboxId, thread_ids: Sequence[int]) -> list[int]:
    """UIDs of the mailbox's messages in these conversations, ascending."""
    cur = await conn.execute(
        """SELECT uid FROM messages WHERE mailbox_id = %s AND thread_id = ANY(%s)
           ORDER BY uid""",
        (mailbox_id, list(thread_ids)),
    )
    return [r["uid"] for r in await cur.fetchall()]


async def _count(conn: Conn, where: str | None, params: dict[str, Any]) -> int:
    if where is None:
        # The whole folder: the messages table alone, from an index.
        cur = await conn.execute(
            "SELECT count(*) AS n FROM messages m WHERE m.mailbox_id = %(mailbox)s", params
        )
        row = await cur.fetchone()
        return int(row["n"]) if row else 0
    cur = await conn.execute(
        f"""SELECT count(*) AS n FROM messages m JOIN blobs b ON b.id = m.blob_id
            WHERE m.mailbox_id = %(mailbox)s AND {where}""",
        params,
    )
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


def uid_ranges(uids: Sequence[int]) -> UidRanges:
    """Collapse UIDs into ranges: [1, 2, 3, 7] → (1, 3), (7, 7)."""
    ranges: list[tuple[int, int]] = []
    for uid in sorted(set(uids)):
        if ranges and uid == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], uid)
        else:
            ranges.append((uid, uid))
    return UidRanges(tuple(ranges))
