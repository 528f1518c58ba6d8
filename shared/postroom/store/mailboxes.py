"""Mailboxes (folders): create, rename, delete, list, subscribe, status."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from postroom.db import Conn
from postroom.errors import AlreadyExists, HasChildren, InvalidInput, NotFound
from postroom.store.types import AccountId, Mailbox, MailboxId, MailboxStatus

DELIMITER = "/"
MAX_NAME_LENGTH = 1000
MAX_DEPTH = 32
SPECIAL_USES = frozenset(
    {"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"}
)

_COLUMNS = (
    "id, account_id, name, uid_validity, uid_next, highest_modseq, first_recent_uid, "
    "special_use, subscribed, selectable"
)


def _mailbox(row: dict[str, Any]) -> Mailbox:
    return Mailbox(
        id=MailboxId(row["id"]),
        account_id=AccountId(row["account_id"]),
        name=row["name"],
        uid_validity=row["uid_validity"],
        uid_next=row["uid_next"],
        highest_modseq=row["highest_modseq"],
        first_recent_uid=row["first_recent_uid"],
        special_use=row["special_use"],
        subscribed=row["subscribed"],
        selectable=row["selectable"],
    )


def normalize_name(name: str) -> str:
    """Validate a mailbox name and give its stored form.

    RFC 3501 §5.1: INBOX is case-insensitive; Postroom also folds it as the first level of a
    hierarchy ("inbox/x" is "INBOX/x") so that no name can shadow it.
    """
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput("a mailbox name must have 1 to 1000 characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise InvalidInput("a mailbox name must not contain control characters")
    if "*" in name or "%" in name:
        raise InvalidInput("a mailbox name must not contain the wildcards * or %")
    parts = name.split(DELIMITER)
    if any(part == "" for part in parts):
        raise InvalidInput(f"mailbox name {name!r} has an empty level")
    if len(parts) > MAX_DEPTH:
        raise InvalidInput(f"mailboxes nest at most {MAX_DEPTH} levels deep")
    if parts[0].upper() == "INBOX":
        parts[0] = "INBOX"
    return DELIMITER.join(parts)


def parents_of(name: str) -> list[str]:
    """``a/b/c`` → ``["a", "a/b"]``."""
    parts = name.split(DELIMITER)
    return [DELIMITER.join(parts[:i]) for i in range(1, len(parts))]


async def get_mailbox(conn: Conn, account_id: AccountId, name: str) -> Mailbox | None:
    try:
        key = normalize_name(name)
    except InvalidInput:
        return None
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM mailboxes WHERE account_id = %s AND name = %s",
        (account_id, key),
    )
    row = await cur.fetchone()
    return _mailbox(row) if row else None


async def get_mailbox_by_id(conn: Conn, mailbox_id: MailboxId) -> Mailbox | None:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM mailboxes WHERE id = %s", (mailbox_id,))
    row = await cur.fetchone()
    return _mailbox(row) if row else None


async def ask_mailbox_by_id(
    conn: Conn, mailbox_id: MailboxId
) -> Callable[[], Awaitable[Mailbox | None]]:
    """Send the read of a mailbox now and take its answer later (the returned function). In
    pipeline mode (``conn.pipeline()``) the question travels with the statements sent before
    the answer is taken: one round trip for all of them."""
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM mailboxes WHERE id = %s", (mailbox_id,))

    async def answer() -> Mailbox | None:
        row = await cur.fetchone()
        return _mailbox(row) if row else None

    return answer


async def get_special_use(conn: Conn, account_id: AccountId, special_use: str) -> Mailbox | None:
    """The account's mailbox with this RFC 6154 use (e.g. ``\\Sent``), if any."""
    cur = await conn.execute(
        f"""SELECT {_COLUMNS} FROM mailboxes WHERE account_id = %s AND special_use = %s
            ORDER BY id LIMIT 1""",
        (account_id, special_use),
    )
    row = await cur.fetchone()
    return _mailbox(row) if row else None


async def list_mailboxes(conn: Conn, account_id: AccountId) -> list[Mailbox]:
    """Every mailbox of the account, \\Noselect placeholders included, sorted by name."""
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM mailboxes WHERE account_id = %s ORDER BY name", (account_id,)
    )
    return [_mailbox(r) for r in await cur.fetchall()]


async def create_mailbox(
    conn: Conn,
    account_id: AccountId,
    name: str,
    *,
    special_use: str | None = None,
    subscribed: bool = True,
) -> Mailbox:
    """Create a mailbox, and any parents it needs (RFC 3501 §6.3.3)."""
    key = normalize_name(name)
    if special_use is not None and special_use not in SPECIAL_USES:
        raise InvalidInput(f"{special_use} is not a special use of RFC 6154")
    async with conn.transaction():
        # Serialise structure changes of one account (creates, renames, deletes).
        await _lock_account(conn, account_id)
        existing = await get_mailbox(conn, account_id, key)
        if existing is not None and existing.selectable:
            raise AlreadyExists(f"mailbox {key} already exists")
        # A subscription that outlived an earlier mailbox of the name applies to the new one.
        cur = await conn.execute(
            """DELETE FROM dangling_subscriptions WHERE account_id = %s AND name = ANY(%s)
               RETURNING name""",
            (account_id, [*parents_of(key), key]),
        )
        revived = {row["name"] for row in await cur.fetchall()}
        for parent in parents_of(key):
            # Parents made on the way are subscribed as the new mailbox is.
            await conn.execute(
                """INSERT INTO mailboxes (account_id, name, subscribed) VALUES (%s, %s, %s)
                   ON CONFLICT (account_id, name) DO NOTHING""",
                (account_id, parent, subscribed or parent in revived),
            )
        subscribed = subscribed or key in revived
        if existing is not None:
            # Re-creating a name that DELETE left as \Noselect: a new incarnation, so a new
            # UIDVALIDITY (RFC 3501 §2.3.1.1).
            cur = await conn.execute(
                f"""UPDATE mailboxes SET selectable = true, special_use = %s, subscribed = %s,
                        uid_validity = nextval('uid_validity_seq')
                    WHERE id = %s RETURNING {_COLUMNS}""",
                (special_use, subscribed, existing.id),
            )
        else:
            cur = await conn.execute(
                f"""INSERT INTO mailboxes (account_id, name, special_use, subscribed)
                    VALUES (%s, %s, %s, %s) RETURNING {_COLUMNS}""",
                (account_id, key, special_use, subscribed),
            )
        row = await cur.fetchone()
    assert row is not None
    return _mailbox(row)


async def delete_mailbox(conn: Conn, account_id: AccountId, name: str) -> None:
    """RFC 3501 §6.3.4: INBOX can't be deleted; a mailbox with children becomes \\Noselect."""
    key = normalize_name(name)
    if key == "INBOX":
        raise InvalidInput("INBOX cannot be deleted")
    async with conn.transaction():
        await _lock_account(conn, account_id)
        mailbox = await get_mailbox(conn, account_id, key)
        if mailbox is None:
            raise NotFound(f"mailbox {key} does not exist")
        cur = await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM mailboxes WHERE account_id = %s AND name LIKE %s) AS c",
            (account_id, _like_prefix(key)),
        )
        row = await cur.fetchone()
        has_children = bool(row and row["c"])
        if has_children:
            if not mailbox.selectable:
                raise HasChildren(f"mailbox {key} has children and is already \\Noselect")
            await conn.execute("DELETE FROM messages WHERE mailbox_id = %s", (mailbox.id,))
            await conn.execute("DELETE FROM expunged WHERE mailbox_id = %s", (mailbox.id,))
            await conn.execute(
                "UPDATE mailboxes SET selectable = false, special_use = NULL WHERE id = %s",
                (mailbox.id,),
            )
        else:
            await conn.execute("DELETE FROM mailboxes WHERE id = %s", (mailbox.id,))
            lost = [key] if mailbox.subscribed else []
            # Parents that only existed to hold this one go with it.
            for parent in reversed(parents_of(key)):
                cur = await conn.execute(
                    """DELETE FROM mailboxes m WHERE account_id = %s AND name = %s
                         AND NOT selectable AND NOT EXISTS (
                             SELECT 1 FROM mailboxes c WHERE c.account_id = m.account_id
                               AND c.name LIKE %s)
                       RETURNING subscribed""",
                    (account_id, parent, _like_prefix(parent)),
                )
                row = await cur.fetchone()
                if row is None:
                    break
                if row["subscribed"]:
                    lost.append(parent)
            # RFC 3501 §6.3.6: the server does not remove a name from the subscriptions
            # because its mailbox is gone.
            if lost:
                await conn.execute(
                    """INSERT INTO dangling_subscriptions (account_id, name)
                       SELECT %s, unnest(%s::text[]) ON CONFLICT DO NOTHING""",
                    (account_id, lost),
                )
    await _notify(conn, account_id, mailbox.id, 0)


async def rename_mailbox(conn: Conn, account_id: AccountId, old: str, new: str) -> Mailbox:
    """RFC 3501 §6.3.5: rename a mailbox with all its children.

    Renaming INBOX moves its messages to the new name and leaves an empty INBOX (with a new
    UIDVALIDITY); INBOX's children stay where they are.
    """
    old_key, new_key = normalize_name(old), normalize_name(new)
    if new_key == "INBOX":
        raise AlreadyExists("mailbox INBOX already exists")
    if new_key == old_key or new_key.startswith(old_key + DELIMITER):
        raise InvalidInput(f"cannot rename {old_key} to {new_key}, inside itself")
    async with conn.transaction():
        await _lock_account(conn, account_id)
        mailbox = await get_mailbox(conn, account_id, old_key)
        if mailbox is None:
            raise NotFound(f"mailbox {old_key} does not exist")
        target = await get_mailbox(conn, account_id, new_key)
        if target is not None:
            raise AlreadyExists(f"mailbox {new_key} already exists")
        for parent in parents_of(new_key):
            await conn.execute(
                """INSERT INTO mailboxes (account_id, name) VALUES (%s, %s)
                   ON CONFLICT (account_id, name) DO NOTHING""",
                (account_id, parent),
            )
        if old_key == "INBOX":
            await conn.execute(
                "UPDATE mailboxes SET name = %s WHERE id = %s", (new_key, mailbox.id)
            )
            await conn.execute(
                "INSERT INTO mailboxes (account_id, name) VALUES (%s, 'INBOX')", (account_id,)
            )
        else:
            await conn.execute(
                """UPDATE mailboxes SET name = %s || substr(name, %s)
                   WHERE account_id = %s AND (name = %s OR name LIKE %s)""",
                (new_key, len(old_key) + 1, account_id, old_key, _like_prefix(old_key)),
            )
        renamed = await get_mailbox_by_id(conn, mailbox.id)
    assert renamed is not None
    await _notify(conn, account_id, mailbox.id, 0)
    return renamed


async def set_subscribed(conn: Conn, account_id: AccountId, name: str, subscribed: bool) -> None:
    """SUBSCRIBE/UNSUBSCRIBE (RFC 3501 §6.3.6-7); only existing mailboxes can be subscribed."""
    key = normalize_name(name)
    cur = await conn.execute(
        "UPDATE mailboxes SET subscribed = %s WHERE account_id = %s AND name = %s",
        (subscribed, account_id, key),
    )
    if cur.rowcount == 0 and not subscribed:
        # The subscription of a mailbox deleted since.
        cur = await conn.execute(
            "DELETE FROM dangling_subscriptions WHERE account_id = %s AND name = %s",
            (account_id, key),
        )
    if cur.rowcount == 0:
        raise NotFound(f"mailbox {key} does not exist")


async def list_dangling_subscriptions(conn: Conn, account_id: AccountId) -> list[str]:
    """Subscribed names whose mailbox no longer exists (RFC 5258 \\NonExistent), sorted."""
    cur = await conn.execute(
        "SELECT name FROM dangling_subscriptions WHERE account_id = %s ORDER BY name",
        (account_id,),
    )
    return [row["name"] for row in await cur.fetchall()]


async def mailbox_status(conn: Conn, mailbox_id: MailboxId) -> MailboxStatus:
    cur = await conn.execute(
        """SELECT b.uid_next, b.uid_validity, b.highest_modseq,
                  count(m.id) AS messages,
                  count(m.id) FILTER (WHERE m.uid >= b.first_recent_uid) AS recent,
                  count(m.id) FILTER (WHERE NOT m.seen) AS unseen,
                  coalesce(sum(m.size), 0) AS size,
                  min(m.uid) FILTER (WHERE NOT m.seen) AS first_unseen_uid,
                  count(m.id) FILTER (WHERE m.deleted) AS deleted,
                  coalesce(sum(m.size) FILTER (WHERE m.deleted), 0) AS deleted_size
           FROM mailboxes b LEFT JOIN messages m ON m.mailbox_id = b.id
           WHERE b.id = %s
           GROUP BY b.id""",
        (mailbox_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound("mailbox does not exist")
    return MailboxStatus(
        messages=row["messages"],
        recent=row["recent"],
        unseen=row["unseen"],
        uid_next=row["uid_next"],
        uid_validity=row["uid_validity"],
        highest_modseq=row["highest_modseq"],
        size=int(row["size"]),
        first_unseen_uid=row["first_unseen_uid"],
        deleted=row["deleted"],
        deleted_size=int(row["deleted_size"]),
    )


async def first_unseen_uid(conn: Conn, mailbox_id: MailboxId) -> int | None:
    """The lowest UID without \\Seen (IMAP SELECT's [UNSEEN]), from the unseen index alone."""
    cur = await conn.execute(
        "SELECT min(uid) AS uid FROM messages WHERE mailbox_id = %s AND NOT seen", (mailbox_id,)
    )
    row = await cur.fetchone()
    return None if row is None else row["uid"]


@dataclass(frozen=True, slots=True)
class Selected:
    """What IMAP SELECT and EXAMINE need of a mailbox, read in one statement (`select`)."""

    mailbox: Mailbox
    # The UIDs, ascending; None when the caller's ``known`` (mailbox id, UIDVALIDITY,
    # HIGHESTMODSEQ) is still the mailbox's: every change of its messages raises
    # HIGHESTMODSEQ, a new incarnation of the name changes UIDVALIDITY.
    uids: list[int] | None
    first_unseen_uid: int | None
    # UIDs ``recent_low <= uid < uid_next`` are recent for the caller (see `claim_recent`).
    recent_low: int
    uid_next: int


async def select(
    conn: Conn,
    account_id: AccountId,
    name: str,
    *,
    claim: bool,
    known: tuple[MailboxId, int, int] | None = None,
) -> Selected | None:
    """A mailbox as SELECT (``claim``: the new messages become recent for the caller only,
    as `claim_recent` does) or EXAMINE (nothing claimed) sees it, in one round trip: the
    mailbox, its UIDs (unless ``known`` says the caller has them), the first unseen UID from
    the partial index on unseen messages, and the recent range. None: no such mailbox.

    A SELECT with nothing new to claim writes nothing (no row lock, no commit to flush).
    """
    try:
        key = normalize_name(name)
    except InvalidInput:
        return None
    box_id, validity, modseq = known if known is not None else (None, None, None)
    async with conn.cursor(binary=True) as cur:
        await cur.execute(
            f"""WITH box AS (
                    SELECT {_COLUMNS} FROM mailboxes
                    WHERE account_id = %(account)s AND name = %(name)s
                ), old AS (
                    SELECT id, first_recent_uid FROM mailboxes
                    WHERE account_id = %(account)s AND name = %(name)s AND %(claim)s
                      AND first_recent_uid < uid_next
                    FOR UPDATE
                ), claimed AS (
                    UPDATE mailboxes m SET first_recent_uid = m.uid_next FROM old
                    WHERE m.id = old.id
                    RETURNING old.first_recent_uid AS low, m.uid_next AS high
                )
                SELECT box.*,
                    (SELECT low FROM claimed) AS claimed_low,
                    (SELECT high FROM claimed) AS claimed_high,
                    (SELECT min(uid) FROM messages WHERE mailbox_id = box.id AND NOT seen)
                        AS first_unseen,
                    CASE WHEN box.id = %(id)s AND box.uid_validity = %(validity)s
                              AND box.highest_modseq = %(modseq)s THEN NULL
                         ELSE ARRAY(SELECT uid FROM messages WHERE mailbox_id = box.id ORDER BY uid)
                    END AS uids
                FROM box""",
            {
                "account": account_id,
                "name": key,
                "claim": claim,
                "id": box_id,
                "validity": validity,
                "modseq": modseq,
            },
        )
        row = await cur.fetchone()
    if row is None:
        return None
    mailbox = _mailbox(row)
    if not claim:
        # RFC 3501 §6.3.2: EXAMINE shows what is recent without claiming it.
        low, high = mailbox.first_recent_uid, mailbox.uid_next
    elif row["claimed_low"] is None:
        low = high = mailbox.uid_next  # nothing new since the last claim
    else:
        low, high = int(row["claimed_low"]), int(row["claimed_high"])
    return Selected(
        mailbox=mailbox,
        uids=None if row["uids"] is None else list(row["uids"]),
        first_unseen_uid=row["first_unseen"],
        recent_low=low,
        uid_next=high,
    )


async def claim_recent(conn: Conn, mailbox_id: MailboxId) -> tuple[int, int]:
    """Make this session the one that sees the mailbox's new messages as \\Recent.

    RFC 3501 §2.3.2: a message is recent in exactly one session. Returns ``(low, high)``: UIDs
    in ``low <= uid < high`` are recent for the caller, and for nobody else from now on.
    """
    cur = await conn.execute(
        """UPDATE mailboxes m SET first_recent_uid = m.uid_next
           FROM (SELECT id, first_recent_uid FROM mailboxes WHERE id = %s FOR UPDATE) old
           WHERE m.id = old.id
           RETURNING old.first_recent_uid AS low, m.uid_next AS high""",
        (mailbox_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound("mailbox does not exist")
    return int(row["low"]), int(row["high"])


async def has_children(conn: Conn, account_id: AccountId, name: str) -> bool:
    """Whether names exist below `name` (IMAP \\HasChildren, RFC 3348)."""
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM mailboxes WHERE account_id = %s AND name LIKE %s) AS c",
        (account_id, _like_prefix(normalize_name(name))),
    )
    row = await cur.fetchone()
    return bool(row and row["c"])


def _like_prefix(name: str) -> str:
    escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + DELIMITER + "%"


async def _lock_account(conn: Conn, account_id: AccountId) -> None:
    cur = await conn.execute("SELECT id FROM accounts WHERE id = %s FOR UPDATE", (account_id,))
    if await cur.fetchone() is None:
        raise NotFound("account does not exist")


async def _notify(conn: Conn, account_id: AccountId, mailbox_id: MailboxId, modseq: int) -> None:
    from postroom.store.notify import notify

    await notify(conn, account_id, mailbox_id, modseq)


# --- the POP3 maildrop lock ---------------------------------------------------------------

# RFC 1939 §4: a POP3 session locks the maildrop. A session-level advisory lock keyed by
# (namespace, account) lives on the connection that took it: it goes away when that
# connection closes, so a crashed process never leaves a maildrop locked. The two-integer key
# form does not collide with single-bigint keys (the migration lock).
_MAILDROP_LOCK_NAMESPACE = 0x504F5033  # "POP3"


def _lock_key(account_id: AccountId) -> int:
    # Fold the id into a signed 32-bit integer, the type of the second key.
    return (int(account_id) + 2**31) % 2**32 - 2**31


async def try_lock_maildrop(conn: Conn, account_id: AccountId) -> bool:
    """Take the account's maildrop lock on this connection; False when another holds it.

    The lock lasts until ``unlock_maildrop`` or until the connection closes. Use a connection
    of its own for it (not one returned to a pool while the lock is held).
    """
    cur = await conn.execute(
        "SELECT pg_try_advisory_lock(%s::int, %s::int) AS locked",
        (_MAILDROP_LOCK_NAMESPACE, _lock_key(account_id)),
    )
    row = await cur.fetchone()
    return bool(row and row["locked"])


async def unlock_maildrop(conn: Conn, account_id: AccountId) -> None:
    """Release the maildrop lock this connection holds (nothing if it holds none)."""
    await conn.execute(
        "SELECT pg_advisory_unlock(%s::int, %s::int)",
        (_MAILDROP_LOCK_NAMESPACE, _lock_key(account_id)),
    )
