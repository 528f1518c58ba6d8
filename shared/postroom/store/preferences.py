"""What a web mail reader keeps: senders whose remote images are shown, contacts (learned
from the mail they send, and edited), and identities (a From name and a signature for each
address the account may send as)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from postroom.db import Conn
from postroom.errors import InvalidInput, NotFound
from postroom.store.types import AccountId

MAX_CONTACTS = 5000
MAX_IMAGE_SENDERS = 5000
MAX_NAME = 200
MAX_SIGNATURE = 10_000


@dataclass(frozen=True, slots=True)
class Contact:
    id: int
    address: str
    name: str | None
    uses: int
    last_used: datetime | None


@dataclass(frozen=True, slots=True)
class Identity:
    address: str
    name: str | None
    signature: str | None


def _text(value: str, what: str) -> str:
    # Postgres text cannot hold NUL; say so instead of failing the statement.
    if "\x00" in value:
        raise InvalidInput(f"{what} may not contain NUL characters")
    return value


async def _count(conn: Conn, table: str, account_id: AccountId) -> int:
    cur = await conn.execute(
        f"SELECT count(*) AS n FROM {table} WHERE account_id = %s", (account_id,)
    )
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


# --- remote images --------------------------------------------------------------------------


async def allow_images_from(conn: Conn, account_id: AccountId, sender: str) -> None:
    sender = _text(sender, "a sender").strip().lower()
    if not sender or len(sender) > 320 or "@" not in sender:
        raise InvalidInput(f"{sender!r} is not a sender address")
    if await _count(conn, "remote_image_senders", account_id) >= MAX_IMAGE_SENDERS:
        raise InvalidInput(f"at most {MAX_IMAGE_SENDERS} senders may have images shown")
    await conn.execute(
        """INSERT INTO remote_image_senders (account_id, sender) VALUES (%s, %s)
           ON CONFLICT DO NOTHING""",
        (account_id, sender),
    )


async def images_allowed(conn: Conn, account_id: AccountId, sender: str) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM remote_image_senders WHERE account_id = %s AND sender = %s",
        (account_id, _text(sender, "a sender").strip().lower()),
    )
    return await cur.fetchone() is not None


async def image_senders(conn: Conn, account_id: AccountId) -> list[str]:
    cur = await conn.execute(
        "SELECT sender FROM remote_image_senders WHERE account_id = %s ORDER BY sender",
        (account_id,),
    )
    return [r["sender"] for r in await cur.fetchall()]


async def forget_image_sender(conn: Conn, account_id: AccountId, sender: str) -> None:
    await conn.execute(
        "DELETE FROM remote_image_senders WHERE account_id = %s AND sender = %s",
        (account_id, _text(sender, "a sender").strip().lower()),
    )


# --- contacts -------------------------------------------------------------------------------


def _contact(r: dict[str, object]) -> Contact:
    return Contact(r["id"], r["address"], r["name"], r["uses"], r["last_used"])  # type: ignore[arg-type]


def _name(name: str | None) -> str | None:
    if name is None:
        return None
    name = " ".join(_text(name, "a name").split())
    if len(name) > MAX_NAME:
        raise InvalidInput(f"a name may be at most {MAX_NAME} characters")
    return name or None


async def learn_contacts(
    conn: Conn, account_id: AccountId, people: Sequence[tuple[str | None, str]], *, now: datetime
) -> None:
    """Count a use of each (name, address) the account wrote to; a new address is added
    while the account has room, a known one keeps the name it was given."""
    room = MAX_CONTACTS - await _count(conn, "contacts", account_id)
    for name, address in people[:100]:
        address = address.strip().lower()
        if not address or len(address) > 320 or "\x00" in address + (name or ""):
            continue
        cur = await conn.execute(
            """UPDATE contacts SET uses = uses + 1, last_used = %s,
                      name = coalesce(name, %s)
               WHERE account_id = %s AND address = %s RETURNING id""",
            (now, _name(name), account_id, address),
        )
        if await cur.fetchone() is None and room > 0:
            await conn.execute(
                """INSERT INTO contacts (account_id, address, name, uses, last_used)
                   VALUES (%s, %s, %s, 1, %s) ON CONFLICT DO NOTHING""",
                (account_id, address, _name(name), now),
            )
            room -= 1


async def find_contacts(
    conn: Conn, account_id: AccountId, prefix: str = "", *, limit: int = 20
) -> list[Contact]:
    """Contacts whose address or a word of whose name starts with ``prefix``, most used first."""
    like = (
        _text(prefix, "a search")
        .strip()
        .lower()
        .replace("\\", "\\\\")
        .replace("%", "\\%")
        .replace("_", "\\_")
    )
    cur = await conn.execute(
        """SELECT id, address, name, uses, last_used FROM contacts
           WHERE account_id = %(account)s
             AND (address LIKE %(like)s || '%%' OR lower(name) LIKE %(like)s || '%%'
                  OR lower(name) LIKE '%% ' || %(like)s || '%%')
           ORDER BY uses DESC, address LIMIT %(limit)s""",
        {"account": account_id, "like": like, "limit": max(1, min(limit, 1000))},
    )
    return [_contact(r) for r in await cur.fetchall()]


async def save_contact(
    conn: Conn, account_id: AccountId, address: str, name: str | None
) -> Contact:
    """Add a contact or rename one."""
    address = _text(address, "an address").strip().lower()
    if not address or len(address) > 320 or "@" not in address:
        raise InvalidInput(f"{address!r} is not a mail address")
    if await _count(conn, "contacts", account_id) >= MAX_CONTACTS:
        raise InvalidInput(f"at most {MAX_CONTACTS} contacts")
    cur = await conn.execute(
        """INSERT INTO contacts (account_id, address, name) VALUES (%s, %s, %s)
           ON CONFLICT (account_id, address) DO UPDATE SET name = excluded.name
           RETURNING id, address, name, uses, last_used""",
        (account_id, address, _name(name)),
    )
    row = await cur.fetchone()
    assert row is not None
    return _contact(row)


async def delete_contact(conn: Conn, account_id: AccountId, contact_id: int) -> None:
    cur = await conn.execute(
        "DELETE FROM contacts WHERE account_id = %s AND id = %s RETURNING id",
        (account_id, contact_id),
    )
    if await cur.fetchone() is None:
        raise NotFound(f"contact {contact_id} does not exist")


# --- identities -----------------------------------------------------------------------------


async def identities(conn: Conn, account_id: AccountId) -> dict[str, Identity]:
    cur = await conn.execute(
        "SELECT address, name, signature FROM identities WHERE account_id = %s", (account_id,)
    )
    return {
        r["address"]: Identity(r["address"], r["name"], r["signature"])
        for r in await cur.fetchall()
    }


async def save_identity(
    conn: Conn, account_id: AccountId, address: str, name: str | None, signature: str | None
) -> Identity:
    """The From name and signature of one of the account's addresses (the caller checks
    that the account may send as it)."""
    if signature is not None and len(_text(signature, "a signature")) > MAX_SIGNATURE:
        raise InvalidInput(f"a signature may be at most {MAX_SIGNATURE} characters")
    address = address.strip().lower()
    await conn.execute(
        """INSERT INTO identities (account_id, address, name, signature) VALUES (%s, %s, %s, %s)
           ON CONFLICT (account_id, address)
           DO UPDATE SET name = excluded.name, signature = excluded.signature""",
        (account_id, address, _name(name), signature or None),
    )
    return Identity(address, _name(name), signature or None)


# --- the list's choices -------------------------------------------------------------------


async def list_by_conversation(conn: Conn, account_id: AccountId) -> bool:
    """Whether the reader lists folders one row per conversation (off until chosen)."""
    cur = await conn.execute(
        "SELECT conversations FROM web_preferences WHERE account_id = %s", (account_id,)
    )
    row = await cur.fetchone()
    return bool(row and row["conversations"])


async def set_list_by_conversation(conn: Conn, account_id: AccountId, on: bool) -> None:
    await conn.execute(
        """INSERT INTO web_preferences (account_id, conversations) VALUES (%s, %s)
           ON CONFLICT (account_id) DO UPDATE SET conversations = EXCLUDED.conversations""",
        (account_id, on),
    )
