"""Messages in mailboxes: append, copy, move, flags, expunge, fetch; blobs stored once."""

from __future__ import annotations

import asyncio
import hashlib
import re
import struct
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from postroom.db import Conn
from postroom.errors import InvalidInput, NotFound, StoreError
from postroom.imap_encoding import structure_columns
from postroom.message import ParsedMessage, decode_header_value, parse_message, search_body_start
from postroom.store.notify import CHANNEL, notify
from postroom.store.quota import enforced
from postroom.store.types import (
    SYSTEM_FLAGS,
    AccountId,
    BlobId,
    FlagMode,
    MailboxChanges,
    MailboxId,
    Message,
    MessageContent,
    MessageId,
)

# Parsing a large message takes long enough to stall an event loop; do it in a thread.
_PARSE_IN_THREAD = 256 * 1024
MAX_KEYWORDS = 100
MAX_KEYWORD_LENGTH = 200
_ATOM_SPECIALS = frozenset('(){ %*"\\]')

_MESSAGE_COLUMNS = (
    "m.id, m.mailbox_id, m.uid, m.blob_id, m.size, m.internal_date, m.seen, m.answered, "
    "m.flagged, m.deleted, m.draft, m.keywords, m.modseq"
)


def _message(row: dict[str, Any]) -> Message:
    flags = {flag for flag, column in SYSTEM_FLAGS.items() if row[column]}
    flags.update(row["keywords"])
    return Message(
        id=MessageId(row["id"]),
        mailbox_id=MailboxId(row["mailbox_id"]),
        uid=row["uid"],
        blob_id=BlobId(row["blob_id"]),
        size=row["size"],
        internal_date=row["internal_date"],
        flags=frozenset(flags),
        modseq=row["modseq"],
    )


def split_flags(flags: Iterable[str]) -> tuple[dict[str, bool], list[str]]:
    """System flag columns set by ``flags``, and the keywords (RFC 3501 §2.3.2), validated."""
    system = dict.fromkeys(SYSTEM_FLAGS.values(), False)
    keywords: set[str] = set()
    by_lower = {name.lower(): column for name, column in SYSTEM_FLAGS.items()}
    for flag in flags:
        if flag.startswith("\\"):
            column = by_lower.get(flag.lower())
            if column is None:
                raise InvalidInput(f"{flag} is not a flag that can be stored")
            system[column] = True
        else:
            if (
                not flag
                or len(flag) > MAX_KEYWORD_LENGTH
                or any(c in _ATOM_SPECIALS or ord(c) <= 0x20 or ord(c) >= 0x7F for c in flag)
            ):
                raise InvalidInput(f"{flag!r} is not a valid keyword")
            keywords.add(flag)
    if len(keywords) > MAX_KEYWORDS:
        raise InvalidInput(f"at most {MAX_KEYWORDS} keywords per message")
    return system, sorted(keywords)


# --- blobs --------------------------------------------------------------------------------

INSERT_RAW_BLOB = """
    INSERT INTO blobs (sha256, size, data) VALUES (%(sha)s, %(size)s, %(data)s)
    ON CONFLICT (sha256) DO NOTHING"""

# Column and parameter of what parsing computes.
_PARSED_FIELDS = (
    ("parsed", "parsed"), ("header_size", "header_size"), ("subject", "subject"),
    ("from_text", "from"), ("to_text", "to"), ("cc_text", "cc"), ("message_id", "message_id"),
    ("sent_date", "date"), ("has_attachments", "att"), ("search_text", "text"),
    ("header_text", "header_text"), ("sent_day", "sent_day"), ("search_body_at", "body_at"),
    ("imap_envelope", "imap_envelope"), ("imap_bodystructure", "imap_bodystructure"),
)  # fmt: skip
_PARSED_COLUMNS = ", ".join(f"{column} = %({param})s" for column, param in _PARSED_FIELDS)

# Content that arrives straight into a mailbox (IMAP APPEND, the Sent copy) is parsed first;
# if the same content was already queued unparsed, its parse is filled in.
_INSERT_PARSED_BLOB = f"""
    INSERT INTO blobs (sha256, size, data, {", ".join(c for c, _ in _PARSED_FIELDS)})
    VALUES (%(sha)s, %(size)s, %(data)s, {", ".join(f"%({p})s" for _, p in _PARSED_FIELDS)})
    ON CONFLICT (sha256) DO UPDATE SET
        {", ".join(f"{c} = EXCLUDED.{c}" for c, _ in _PARSED_FIELDS)}
    WHERE blobs.parsed IS NULL"""


def blob_params(raw: bytes) -> dict[str, Any]:
    """The parameters of INSERT_RAW_BLOB: content and its SHA-256."""
    return {"sha": hashlib.sha256(raw).digest(), "size": len(raw), "data": raw}


MAX_HEADER_TEXT = 256 * 1024


def header_text(raw: bytes, header_size: int) -> str:
    """Decoded header fields, one ``Name: value`` a line (unfolded), for HEADER searches."""
    head = raw[: min(header_size, MAX_HEADER_TEXT)]
    lines: list[str] = []
    for field in re.split(rb"\r?\n(?![ \t])", head):
        name, colon, value = field.partition(b":")
        if not colon or not name.strip():
            continue
        text = decode_header_value(b" ".join(value.split()).decode("utf-8", "replace"))
        lines.append(f"{name.strip().decode('ascii', 'replace')}: {text}")
    return "\n".join(lines)


def _parsed_params(raw: bytes, parsed: ParsedMessage) -> dict[str, Any]:
    as_json = parsed.to_json()
    as_json.pop("text", None)  # kept in search_text; no need to hold it twice
    imap_envelope, imap_bodystructure = structure_columns(as_json)
    return {
        "imap_envelope": imap_envelope,
        "imap_bodystructure": imap_bodystructure,
        "parsed": Jsonb(as_json),
        "header_size": parsed.header_size,
        "subject": _clean(parsed.subject),
        "from": _clean(_addresses_text(parsed.from_)),
        "to": _clean(_addresses_text(parsed.to)),
        "cc": _clean(_addresses_text(parsed.cc)),
        "message_id": _clean(parsed.message_id),
        "date": parsed.date,
        # RFC 3501 §6.4.4 SENT*: the day as written, in the Date: header's own zone.
        "sent_day": None if parsed.date is None else parsed.date.date(),
        "body_at": search_body_start(parsed),
        "att": parsed.has_attachments,
        "text": _clean(parsed.text) or "",
        "header_text": _clean(header_text(raw, parsed.header_size)) or "",
    }


async def parse(raw: bytes) -> ParsedMessage:
    """Parse a message; a large one in a thread, so the event loop keeps serving others."""
    if len(raw) > _PARSE_IN_THREAD:
        return await asyncio.to_thread(parse_message, raw)
    return parse_message(raw)


async def put_blob(conn: Conn, raw: bytes) -> BlobId:
    """Store message content once (keyed by SHA-256), unparsed, and return its id."""
    params = blob_params(raw)
    await conn.execute(INSERT_RAW_BLOB, params)
    cur = await conn.execute("SELECT id FROM blobs WHERE sha256 = %(sha)s", params)
    row = await cur.fetchone()
    assert row is not None
    return BlobId(row["id"])


# Binary COPY (PostgreSQL's COPY file format): a row's field lengths come first, so the
# content can follow as a stream of pieces without ever being one bytes object here.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_TRAILER = struct.pack("!h", -1)


async def put_blob_stream(
    conn: Conn, sha256: bytes, size: int, pieces: AsyncIterable[bytes]
) -> BlobId:
    """Store content given as pieces (``size`` octets whose SHA-256 is ``sha256``), unparsed,
    holding one piece in memory at a time; returns its id (the stored copy's, if present)."""
    found = await _blob_by_sha(conn, sha256)
    if found is not None:
        return found
    row_start = struct.pack("!hi", 3, len(sha256)) + sha256 + struct.pack("!iii", 4, size, size)
    written = 0
    try:
        async with (
            conn.cursor() as cur,
            cur.copy("COPY blobs (sha256, size, data) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            await copy.write(_COPY_HEADER + row_start)
            async for piece in pieces:
                written += len(piece)
                if written > size:
                    raise InvalidInput("the content is longer than announced")
                await copy.write(piece)
            if written != size:
                raise InvalidInput("the content is shorter than announced")
            await copy.write(_COPY_TRAILER)
    except psycopg.errors.UniqueViolation:
        pass  # the same content, stored meanwhile by someone else
    found = await _blob_by_sha(conn, sha256)
    if found is None:
        raise StoreError("the stored content is not there")
    return found


async def _blob_by_sha(conn: Conn, sha256: bytes) -> BlobId | None:
    cur = await conn.execute("SELECT id FROM blobs WHERE sha256 = %s", (sha256,))
    row = await cur.fetchone()
    return BlobId(row["id"]) if row else None


async def ensure_parsed(conn: Conn, blob_id: BlobId) -> None:
    """Compute what readers need of a blob, once: the first time it enters a mailbox."""
    cur = await conn.execute(
        "SELECT CASE WHEN parsed IS NULL THEN data END AS data FROM blobs WHERE id = %s",
        (blob_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound("message content is gone")
    if row["data"] is None:
        return
    data = bytes(row["data"])
    parsed = await parse(data)
    await conn.execute(
        f"UPDATE blobs SET {_PARSED_COLUMNS} WHERE id = %(id)s AND parsed IS NULL",
        {**_parsed_params(data, parsed), "id": blob_id},
    )


def _addresses_text(pairs: Sequence[tuple[str, str]]) -> str | None:
    if not pairs:
        return None
    return ", ".join(f"{name} <{addr}>" if name else addr for name, addr in pairs)


def _clean(text: str | None) -> str | None:
    # Postgres text cannot hold NUL; decoded headers of hostile mail may contain one.
    return text.replace("\x00", "\ufffd") if text else text


# --- append, copy, move -------------------------------------------------------------------

# One statement takes the next UID and modseq (locking the mailbox row until commit, so that
# commits happen in UID order across processes), inserts the message and announces it. With a
# delivery key it does nothing when that delivery is already in the store.
_APPEND_BOX = """
    box AS (
        UPDATE mailboxes SET uid_next = uid_next + 1, highest_modseq = highest_modseq + 1
        WHERE id = %(mailbox)s AND selectable
          AND (%(key)s::text IS NULL
               OR NOT EXISTS (SELECT 1 FROM messages WHERE delivery_key = %(key)s::text))
        RETURNING account_id, uid_next - 1 AS uid, highest_modseq)"""

_APPEND_INSERT = f"""
    ins AS (
        INSERT INTO messages AS m (mailbox_id, uid, blob_id, header_prefix, size,
            internal_date, seen, answered, flagged, deleted, draft, keywords, modseq,
            delivery_key)
        SELECT %(mailbox)s, box.uid, b.id, %(prefix)s, b.size + %(prefix_len)s,
               %(internal_date)s, %(seen)s, %(answered)s, %(flagged)s, %(deleted)s, %(draft)s,
               %(keywords)s, box.highest_modseq, %(key)s::text
        FROM box, {{blob_source}}
        RETURNING {_MESSAGE_COLUMNS})
    SELECT ins.*, pg_notify('{CHANNEL}',
                            box.account_id || ':' || %(mailbox)s || ':' || box.highest_modseq)
    FROM ins, box"""

_APPEND = (
    "WITH"
    + _APPEND_BOX
    + ","
    + _APPEND_INSERT.format(
        blob_source="blobs b WHERE b.id = coalesce(%(blob)s::bigint, "
        "(SELECT id FROM blobs WHERE sha256 = %(sha)s))"
    )
)

# New content and its message in one statement (its own transaction in autocommit mode): the
# blob comes from the insert's RETURNING, which is the only way a statement sees a row it
# inserts. ON CONFLICT always updates (a no-op unless the stored copy was never parsed) so
# that content already stored still yields its row.
_APPEND_WITH_BLOB = (
    f"""WITH nb AS (
        INSERT INTO blobs AS x (sha256, size, data, {", ".join(c for c, _ in _PARSED_FIELDS)})
        VALUES (%(sha)s, %(size)s, %(data)s, {", ".join(f"%({p})s" for _, p in _PARSED_FIELDS)})
        ON CONFLICT (sha256) DO UPDATE SET {
        ", ".join(
            f"{c} = CASE WHEN x.parsed IS NULL THEN EXCLUDED.{c} ELSE x.{c} END"
            for c, _ in _PARSED_FIELDS
        )
    }
        RETURNING id, size),"""
    + _APPEND_BOX
    + ","
    + _APPEND_INSERT.format(blob_source="nb b")
)


async def append_message(
    conn: Conn,
    mailbox_id: MailboxId,
    raw: bytes = b"",
    *,
    flags: Iterable[str] = (),
    internal_date: datetime | None = None,
    header_prefix: bytes = b"",
    delivery_key: str | None = None,
    blob_id: BlobId | None = None,
) -> Message:
    """Add a message to a mailbox and return it with its new UID.

    Give the content as ``raw``, or as ``blob_id`` when it is already stored (a queued
    message). UIDs are strictly ascending and never reused, also with appends from several
    processes at once. With ``delivery_key`` the append is idempotent: a second call with the
    same key stores nothing and returns the message the first one stored. Raises
    `QuotaExceeded` when the account has no room for it.
    """
    system, keywords = split_flags(flags)
    params: dict[str, Any] = {
        "mailbox": mailbox_id,
        "prefix": header_prefix,
        "prefix_len": len(header_prefix),
        "internal_date": internal_date or datetime.now(UTC),
        "keywords": keywords,
        "key": delivery_key,
        "blob": blob_id,
        "sha": None,
        **system,
    }
    if blob_id is None:
        params.update(blob_params(raw))
        params.update(_parsed_params(raw, await parse(raw)))
    else:
        await ensure_parsed(conn, blob_id)
    try:
        with enforced():
            row = await _append(conn, params, raw_blob=blob_id is None)
    except psycopg.errors.UniqueViolation:
        row = None  # the same delivery, stored meanwhile by a concurrent retry
    if row is not None:
        return _message(row)
    if delivery_key is not None:
        existing = await _by_delivery_key(conn, delivery_key)
        if existing is not None:
            return existing
    raise NotFound("mailbox does not exist")


async def _append(conn: Conn, params: dict[str, Any], *, raw_blob: bool) -> dict[str, Any] | None:
    if conn.autocommit:
        # One statement, so one round trip and its own transaction.
        cur = await conn.execute(_APPEND_WITH_BLOB if raw_blob else _APPEND, params)
        return await cur.fetchone()
    # Inside the caller's transaction: a savepoint keeps a failure to this append.
    async with conn.pipeline(), conn.transaction():
        if raw_blob:
            await conn.execute(_INSERT_PARSED_BLOB, params)
        cur = await conn.execute(_APPEND, params)
        return await cur.fetchone()


async def _by_delivery_key(conn: Conn, key: str) -> Message | None:
    cur = await conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE m.delivery_key = %s", (key,)
    )
    row = await cur.fetchone()
    return _message(row) if row else None


async def copy_messages(
    conn: Conn, source: MailboxId, uids: Sequence[int], target: MailboxId
) -> list[tuple[int, int]]:
    """Copy messages (flags and internal date kept); returns (source UID, new UID) pairs.

    Raises `QuotaExceeded`, having copied nothing, when the account has no room for them all.
    """
    with enforced():
        async with conn.transaction():
            return await _copy(conn, source, uids, target)


async def move_messages(
    conn: Conn, source: MailboxId, uids: Sequence[int], target: MailboxId
) -> list[tuple[int, int]]:
    """RFC 6851 MOVE: copy, then expunge from the source, atomically.

    Within one account a move leaves its usage as it was, so it is never refused for the
    quota: an account over its quota can still move mail to Trash to delete it.
    """
    with enforced():
        async with conn.transaction():
            return await _move(conn, source, uids, target)


async def _move(
    conn: Conn, source: MailboxId, uids: Sequence[int], target: MailboxId
) -> list[tuple[int, int]]:
    # Exempt from the quota for this transaction only (set_config's is_local).
    await conn.execute(
        """SELECT set_config('postroom.quota_exempt', 'on', true)
           WHERE (SELECT count(DISTINCT account_id) FROM mailboxes WHERE id = ANY(%s)) = 1""",
        ([source, target],),
    )
    pairs = await _copy(conn, source, uids, target)
    if pairs:
        await _expunge(conn, source, [old for old, _ in pairs], only_deleted=False)
    return pairs


async def _copy(
    conn: Conn, source: MailboxId, uids: Sequence[int], target: MailboxId
) -> list[tuple[int, int]]:
    # Lock both mailboxes in id order, so that copies A→B and B→A cannot deadlock.
    cur = await conn.execute(
        """SELECT id, account_id, selectable FROM mailboxes WHERE id = ANY(%s)
           ORDER BY id FOR UPDATE""",
        ([source, target],),
    )
    boxes = {r["id"]: r for r in await cur.fetchall()}
    if source not in boxes or target not in boxes or not boxes[target]["selectable"]:
        raise NotFound("mailbox does not exist")
    cur = await conn.execute(
        "SELECT uid FROM messages WHERE mailbox_id = %s AND uid = ANY(%s) ORDER BY uid",
        (source, list(uids)),
    )
    present = [r["uid"] for r in await cur.fetchall()]
    if not present:
        return []
    cur = await conn.execute(
        """UPDATE mailboxes SET uid_next = uid_next + %s, highest_modseq = highest_modseq + 1
           WHERE id = %s RETURNING uid_next - %s AS first_uid, highest_modseq""",
        (len(present), target, len(present)),
    )
    box = await cur.fetchone()
    assert box is not None
    await conn.execute(
        """INSERT INTO messages (mailbox_id, uid, blob_id, header_prefix, size, internal_date,
                                 seen, answered, flagged, deleted, draft, keywords, modseq,
                                 thread_id)
           SELECT %(target)s, %(first)s + n.ord - 1, m.blob_id, m.header_prefix, m.size,
                  m.internal_date, m.seen, m.answered, m.flagged, m.deleted, m.draft,
                  m.keywords, %(modseq)s,
                  -- its conversation, within the account (migration 0085)
                  CASE WHEN %(same_account)s THEN m.thread_id END
           FROM unnest(%(uids)s::bigint[]) WITH ORDINALITY AS n(uid, ord)
           JOIN messages m ON m.mailbox_id = %(source)s AND m.uid = n.uid""",
        {
            "target": target,
            "first": box["first_uid"],
            "modseq": box["highest_modseq"],
            "uids": present,
            "source": source,
            "same_account": boxes[source]["account_id"] == boxes[target]["account_id"],
        },
    )
    await notify(conn, AccountId(boxes[target]["account_id"]), target, box["highest_modseq"])
    return [(uid, box["first_uid"] + i) for i, uid in enumerate(present)]


# --- flags and expunge --------------------------------------------------------------------


async def store_flags(
    conn: Conn,
    mailbox_id: MailboxId,
    uids: Sequence[int],
    flags: Iterable[str],
    mode: FlagMode,
    *,
    unchanged_since: int | None = None,
) -> list[Message]:
    """STORE FLAGS / +FLAGS / -FLAGS; returns the messages whose flags really changed.

    ``unchanged_since`` (RFC 7162 UNCHANGEDSINCE): messages changed after that modseq are
    left alone (`modified_since` names them).
    """
    system, keywords = split_flags(flags)
    if mode == "set":
        sys_expr = {col: f"%({col})s" for col in system}
        kw_expr = "%(keywords)s::text[]"
    elif mode == "add":
        sys_expr = {col: f"(m.{col} OR %({col})s)" for col in system}
        kw_expr = (
            "ARRAY(SELECT DISTINCT k FROM unnest(m.keywords || %(keywords)s::text[]) k ORDER BY k)"
        )
    elif mode == "remove":
        sys_expr = {col: f"(m.{col} AND NOT %({col})s)" for col in system}
        kw_expr = (
            "ARRAY(SELECT k FROM unnest(m.keywords) k WHERE k <> ALL(%(keywords)s::text[]) "
            "ORDER BY k)"
        )
    else:
        raise InvalidInput(f"unknown flag mode {mode!r}")
    new_cols = ", ".join(f"{expr} AS {col}" for col, expr in sys_expr.items())
    assignments = ", ".join(f"{col} = n.{col}" for col in system)
    changed = " OR ".join(f"m.{col} <> n.{col}" for col in system)
    async with conn.transaction():
        cur = await conn.execute(
            """UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = %s
               RETURNING account_id, highest_modseq""",
            (mailbox_id,),
        )
        box = await cur.fetchone()
        if box is None:
            raise NotFound("mailbox does not exist")
        cur = await conn.execute(
            f"""UPDATE messages m SET {assignments}, keywords = n.keywords, modseq = %(modseq)s
                FROM (SELECT m.id, {new_cols}, {kw_expr} AS keywords FROM messages m
                      WHERE m.mailbox_id = %(mailbox)s AND m.uid = ANY(%(uids)s)
                        AND (%(since)s::bigint IS NULL OR m.modseq <= %(since)s)) n
                WHERE m.id = n.id AND ({changed} OR m.keywords <> n.keywords)
                RETURNING {_MESSAGE_COLUMNS}""",
            {
                **system,
                "keywords": keywords,
                "mailbox": mailbox_id,
                "uids": list(uids),
                "modseq": box["highest_modseq"],
                "since": unchanged_since,
            },
        )
        rows = await cur.fetchall()
        if rows:
            await notify(conn, AccountId(box["account_id"]), mailbox_id, box["highest_modseq"])
    return sorted((_message(r) for r in rows), key=lambda m: m.uid)


async def expunge(
    conn: Conn, mailbox_id: MailboxId, uids: Sequence[int] | None = None
) -> list[int]:
    """Remove the messages flagged \\Deleted (only those in ``uids`` when given: UID EXPUNGE)."""
    async with conn.transaction():
        return await _expunge(conn, mailbox_id, uids, only_deleted=True)


async def delete_messages(conn: Conn, mailbox_id: MailboxId, uids: Sequence[int]) -> list[int]:
    """Remove messages whatever their flags (POP3's UPDATE state, the API's final delete)."""
    async with conn.transaction():
        return await _expunge(conn, mailbox_id, uids, only_deleted=False)


async def _expunge(
    conn: Conn, mailbox_id: MailboxId, uids: Sequence[int] | None, *, only_deleted: bool
) -> list[int]:
    cur = await conn.execute(
        """UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = %s
           RETURNING account_id, highest_modseq""",
        (mailbox_id,),
    )
    box = await cur.fetchone()
    if box is None:
        raise NotFound("mailbox does not exist")
    conditions = ["mailbox_id = %(mailbox)s"]
    if only_deleted:
        conditions.append("deleted")
    if uids is not None:
        conditions.append("uid = ANY(%(uids)s)")
    cur = await conn.execute(
        f"DELETE FROM messages WHERE {' AND '.join(conditions)} RETURNING uid",
        {"mailbox": mailbox_id, "uids": list(uids or ())},
    )
    gone = sorted(r["uid"] for r in await cur.fetchall())
    if gone:
        async with conn.cursor() as ecur:
            await ecur.execute(
                """INSERT INTO expunged (mailbox_id, uid, modseq)
                   SELECT %s, u, %s FROM unnest(%s::bigint[]) u
                   ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = EXCLUDED.modseq""",
                (mailbox_id, box["highest_modseq"], gone),
            )
        await notify(conn, AccountId(box["account_id"]), mailbox_id, box["highest_modseq"])
    return gone


# --- reading ------------------------------------------------------------------------------


async def get_message(conn: Conn, mailbox_id: MailboxId, uid: int) -> Message | None:
    cur = await conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE m.mailbox_id = %s AND m.uid = %s",
        (mailbox_id, uid),
    )
    row = await cur.fetchone()
    return _message(row) if row else None


async def list_messages(
    conn: Conn, mailbox_id: MailboxId, *, uid_min: int = 1, uid_max: int | None = None
) -> list[Message]:
    """Messages of a mailbox in UID order, optionally within a UID range."""
    cur = await conn.execute(
        f"""SELECT {_MESSAGE_COLUMNS} FROM messages m
            WHERE m.mailbox_id = %s AND m.uid >= %s AND m.uid <= %s ORDER BY m.uid""",
        (mailbox_id, uid_min, uid_max if uid_max is not None else 2**63 - 1),
    )
    return [_message(r) for r in await cur.fetchall()]


async def list_uids(conn: Conn, mailbox_id: MailboxId) -> list[int]:
    """All UIDs of a mailbox, ascending: the map from sequence numbers to UIDs."""
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(
            "SELECT uid FROM messages WHERE mailbox_id = %s ORDER BY uid", (mailbox_id,)
        )
        return [uid for (uid,) in await cur.fetchall()]


# The flags of a message as one string, system flags first in SYSTEM_FLAGS order, then the
# keywords (kept sorted): what a FETCH FLAGS of many messages needs, without a Message each.
_FLAG_TEXT = (
    "concat_ws(' ', "
    + ", ".join(f"CASE WHEN {column} THEN '{name}' END" for name, column in SYSTEM_FLAGS.items())
    + ", array_to_string(keywords, ' '))"
)


async def list_flags(
    conn: Conn, mailbox_id: MailboxId, *, uid_min: int = 1, uid_max: int | None = None
) -> list[tuple[int, str]]:
    """``(uid, "\\Seen \\Flagged $Label")`` for the messages in a UID range, in UID order.

    A cheap read for FETCH 1:* (FLAGS) on a large mailbox: one short string a message.
    """
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(
            f"""SELECT uid, {_FLAG_TEXT} FROM messages
                WHERE mailbox_id = %s AND uid >= %s AND uid <= %s ORDER BY uid""",
            (mailbox_id, uid_min, uid_max if uid_max is not None else 2**63 - 1),
        )
        return [(uid, flags) for uid, flags in await cur.fetchall()]


async def mailbox_flags(
    conn: Conn, mailbox_id: MailboxId
) -> tuple[int, int, list[tuple[int, str]]]:
    """``(UIDVALIDITY, HIGHESTMODSEQ, list_flags of every message)`` read in one statement, so
    the list is exactly the mailbox's at that HIGHESTMODSEQ (every flag change raises it)."""
    async with conn.cursor(row_factory=tuple_row, binary=True) as cur:
        await cur.execute(
            f"""SELECT b.uid_validity, b.highest_modseq, f.uids, f.flags
                FROM mailboxes b, LATERAL (
                    SELECT array_agg(uid ORDER BY uid) AS uids,
                           array_agg({_FLAG_TEXT} ORDER BY uid) AS flags
                    FROM messages WHERE mailbox_id = b.id) f
                WHERE b.id = %s""",
            (mailbox_id,),
        )
        row = await cur.fetchone()
    if row is None:
        raise NotFound("mailbox does not exist")
    return int(row[0]), int(row[1]), list(zip(row[2] or [], row[3] or [], strict=True))


async def mailbox_version(conn: Conn, mailbox_id: MailboxId) -> tuple[int, int] | None:
    """``(UIDVALIDITY, HIGHESTMODSEQ)`` of a mailbox, None if it is gone."""
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(
            "SELECT uid_validity, highest_modseq FROM mailboxes WHERE id = %s", (mailbox_id,)
        )
        row = await cur.fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


# INTERNALDATE as IMAP writes it (RFC 3501 §9 date-time, without its quotes), in the
# session's time zone as psycopg would give it: "dd-Mon-yyyy hh:mm:ss +zzzz", the day padded
# with a space. "Mon" (without TM) is English whatever the server's locale.
_INTERNALDATE_TEXT = (
    "convert_to(lpad(to_char(m.internal_date, 'FMDD'), 2) "
    "|| to_char(m.internal_date, '-Mon-YYYY HH24:MI:SS TZHTZM'), 'UTF8')"
)

# One row of `list_summaries`.
Summary = tuple[int, int, bytes, str, int, bytes | None, bytes | None, dict[str, Any] | None]


async def list_summaries(
    conn: Conn,
    mailbox_id: MailboxId,
    *,
    uid_min: int = 1,
    uid_max: int | None = None,
    structure: bool = False,
) -> list[Summary]:
    """What a mail client's message list asks for, for the messages in a UID range, in UID
    order: ``(uid, size, internal date as IMAP writes it, flags as in list_flags, modseq,
    ENVELOPE, BODYSTRUCTURE, parsed)``.

    With ``structure`` the ENVELOPE and BODYSTRUCTURE kept since parsing are read too, and
    the parsed structure only for content that has none kept; without it those are None.
    Plain tuples, read in binary: no per-message objects for a list of many thousands.
    """
    if structure:
        columns = """b.imap_envelope, b.imap_bodystructure,
                     CASE WHEN b.imap_envelope IS NULL OR b.imap_bodystructure IS NULL
                          THEN b.parsed END"""
        source = "messages m JOIN blobs b ON b.id = m.blob_id"
    else:
        columns, source = "NULL::bytea, NULL::bytea, NULL::jsonb", "messages m"
    async with conn.cursor(row_factory=tuple_row, binary=True) as cur:
        await cur.execute(
            f"""SELECT m.uid, m.size, {_INTERNALDATE_TEXT}, {_FLAG_TEXT}, m.modseq, {columns}
                FROM {source}
                WHERE m.mailbox_id = %s AND m.uid >= %s AND m.uid <= %s ORDER BY m.uid""",
            (mailbox_id, uid_min, uid_max if uid_max is not None else 2**63 - 1),
        )
        return await cur.fetchall()


async def changes_since(conn: Conn, mailbox_id: MailboxId, modseq: int) -> MailboxChanges:
    """What happened in a mailbox after ``modseq``: new or re-flagged messages, expunged UIDs."""
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT highest_modseq FROM mailboxes WHERE id = %s", (mailbox_id,)
        )
        box = await cur.fetchone()
        if box is None:
            raise NotFound("mailbox does not exist")
        cur = await conn.execute(
            f"""SELECT {_MESSAGE_COLUMNS} FROM messages m
                WHERE m.mailbox_id = %s AND m.modseq > %s ORDER BY m.uid""",
            (mailbox_id, modseq),
        )
        changed = tuple(_message(r) for r in await cur.fetchall())
        cur = await conn.execute(
            "SELECT uid FROM expunged WHERE mailbox_id = %s AND modseq > %s ORDER BY uid",
            (mailbox_id, modseq),
        )
        expunged = tuple(r["uid"] for r in await cur.fetchall())
    return MailboxChanges(box["highest_modseq"], changed, expunged)


async def modified_since(
    conn: Conn, mailbox_id: MailboxId, uids: Sequence[int], modseq: int
) -> list[int]:
    """The UIDs among ``uids`` changed after ``modseq`` (RFC 7162 MODIFIED), ascending."""
    cur = await conn.execute(
        """SELECT uid FROM messages WHERE mailbox_id = %s AND uid = ANY(%s) AND modseq > %s
           ORDER BY uid""",
        (mailbox_id, list(uids), modseq),
    )
    return [r["uid"] for r in await cur.fetchall()]


async def highest_modseq_of(conn: Conn, mailbox_id: MailboxId, uids: Sequence[int]) -> int:
    """The highest modseq among these messages (RFC 7162 §3.1.5 SEARCH MODSEQ), 0 if none."""
    cur = await conn.execute(
        """SELECT coalesce(max(modseq), 0) AS m FROM messages
           WHERE mailbox_id = %s AND uid = ANY(%s)""",
        (mailbox_id, list(uids)),
    )
    row = await cur.fetchone()
    return int(row["m"]) if row else 0


async def fetch_raw(conn: Conn, mailbox_id: MailboxId, uid: int) -> bytes:
    """The whole message as delivered (trace prefix and content)."""
    cur = await conn.execute(
        """SELECT m.header_prefix || b.data AS raw FROM messages m JOIN blobs b ON b.id = m.blob_id
           WHERE m.mailbox_id = %s AND m.uid = %s""",
        (mailbox_id, uid),
        binary=True,
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no message with UID {uid}")
    return bytes(row["raw"])


async def fetch_raw_many(
    conn: Conn, mailbox_id: MailboxId, uids: Sequence[int]
) -> dict[int, bytes]:
    """Several whole messages by UID in one query (those still there)."""
    # The trace prefix is joined here, not in SQL: Postgres's || copies each blob once more
    # (a quarter of its time for this query), and most prefixes are empty. One index lookup a
    # UID (the LATERAL with OFFSET 0 is not flattened into a join): with "uid = ANY(...)" the
    # planner, when its statistics think the mailbox small (a mailbox just filled, not yet
    # analysed), scanned the whole mailbox for every batch.
    cur = await conn.execute(
        """SELECT m.uid, m.header_prefix, b.data FROM unnest(%s::bigint[]) AS u(uid)
           CROSS JOIN LATERAL (
               SELECT uid, header_prefix, blob_id FROM messages
               WHERE mailbox_id = %s AND uid = u.uid OFFSET 0) m
           JOIN blobs b ON b.id = m.blob_id""",
        (list(uids), mailbox_id),
        binary=True,  # the octets as stored, not hex text twice their size to decode
    )
    return {
        int(row["uid"]): bytes(row["header_prefix"]) + row["data"] if row["header_prefix"]
        else bytes(row["data"])
        for row in await cur.fetchall()
    }  # fmt: skip


async def read_raw_chunks(
    conn: Conn, mailbox_id: MailboxId, uid: int, *, chunk_size: int = 256 * 1024
) -> AsyncIterator[bytes]:
    """The message in chunks, so a large one never sits in memory whole."""
    cur = await conn.execute(
        """SELECT m.header_prefix, m.blob_id, b.size FROM messages m
           JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = %s AND m.uid = %s""",
        (mailbox_id, uid),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no message with UID {uid}")
    if row["header_prefix"]:
        yield bytes(row["header_prefix"])
    async for chunk in read_blob_chunks(conn, BlobId(row["blob_id"]), row["size"], chunk_size):
        yield chunk


async def read_blob_chunks(
    conn: Conn, blob_id: BlobId, size: int, chunk_size: int = 256 * 1024, start: int = 0
) -> AsyncIterator[bytes]:
    """Bytes ``start..size`` of a blob in chunks (uncompressed TOAST makes substring cheap)."""
    offset = start
    while offset < size:
        cur = await conn.execute(
            "SELECT substring(data FROM %s FOR %s) AS chunk FROM blobs WHERE id = %s",
            (offset + 1, min(chunk_size, size - offset), blob_id),
            binary=True,
        )
        row = await cur.fetchone()
        if row is None:
            raise NotFound("message content is gone")
        chunk = bytes(row["chunk"])
        if not chunk:
            break
        yield chunk
        offset += len(chunk)


async def read_blob_range(conn: Conn, blob_id: BlobId, start: int, length: int) -> bytes:
    """``length`` bytes of a blob from ``start`` (a MIME part, a partial FETCH)."""
    cur = await conn.execute(
        "SELECT substring(data FROM %s FOR %s) AS chunk FROM blobs WHERE id = %s",
        (start + 1, max(length, 0), blob_id),
        binary=True,
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound("message content is gone")
    return bytes(row["chunk"])


async def fetch_content(
    conn: Conn, mailbox_id: MailboxId, uids: Sequence[int], *, parsed: bool = True
) -> list[MessageContent]:
    """Messages with their parsed structure (ENVELOPE, BODYSTRUCTURE) but not their bytes.

    With ``parsed`` False the caller needs only ENVELOPE and BODYSTRUCTURE: the parsed
    structure is read only for content whose IMAP forms were not kept (parsed before they
    were). Read in binary: bytea and jsonb come as they are stored, not hex and text.
    """
    structure = (
        "b.parsed"
        if parsed
        else ("CASE WHEN b.imap_envelope IS NULL OR b.imap_bodystructure IS NULL THEN b.parsed END")
    )
    cur = await conn.execute(
        f"""SELECT {_MESSAGE_COLUMNS}, m.header_prefix, b.size AS blob_size, b.header_size,
                   {structure} AS parsed, b.imap_envelope, b.imap_bodystructure
            FROM messages m JOIN blobs b ON b.id = m.blob_id
            WHERE m.mailbox_id = %s AND m.uid = ANY(%s) ORDER BY m.uid""",
        (mailbox_id, list(uids)),
        binary=True,
    )
    return [
        MessageContent(
            message=_message(r),
            header_prefix=bytes(r["header_prefix"]),
            blob_size=r["blob_size"],
            header_size=r["header_size"],
            parsed=r["parsed"] if r["parsed"] is not None else {},
            imap_envelope=r["imap_envelope"],
            imap_bodystructure=r["imap_bodystructure"],
        )
        for r in await cur.fetchall()
    ]


# --- sequence numbers ---------------------------------------------------------------------


def uid_to_seq(uids: Sequence[int], uid: int) -> int | None:
    """The 1-based sequence number of ``uid`` in the ascending ``uids``, or None."""
    from bisect import bisect_left

    i = bisect_left(uids, uid)
    return i + 1 if i < len(uids) and uids[i] == uid else None


def seq_to_uid(uids: Sequence[int], seq: int) -> int | None:
    return uids[seq - 1] if 1 <= seq <= len(uids) else None
