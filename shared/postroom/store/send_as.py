"""Send-as: the extra addresses and ``*@domain`` entries an account may send as."""

from __future__ import annotations

from collections.abc import Iterable

from postroom.address import canonical, normalize_domain
from postroom.db import Conn
from postroom.errors import InvalidInput, NotFound
from postroom.store.accounts import addresses_of
from postroom.store.types import AccountId

# An account's list is read on every submission login: a short list, by design.
MAX_SEND_AS = 100


def normalize_send_as(entry: str) -> str:
    """``user@domain`` as accounts are keyed (lowercase, A-label), or ``*@domain`` for every
    address of a domain; anything else is InvalidInput."""
    text = entry.strip()
    if text.startswith("*@"):
        return f"*@{normalize_domain(text[2:])}"
    if "*" in text:
        raise InvalidInput(f"{entry!r}: a wildcard must be the whole local part (*@domain)")
    return canonical(text)


def send_as_allows(entries: Iterable[str], address: str) -> bool:
    """Whether an address is one of the entries, or in a domain given as ``*@domain``."""
    try:
        wanted = canonical(address)
    except InvalidInput:
        return False
    domain = wanted.rpartition("@")[2]
    return any(e == wanted or e == f"*@{domain}" for e in entries)


async def send_as_of(conn: Conn, account_id: int) -> list[str]:
    cur = await conn.execute("SELECT send_as FROM accounts WHERE id = %s", (account_id,))
    row = await cur.fetchone()
    return list(row["send_as"]) if row else []


async def senders_of(conn: Conn, account_id: AccountId) -> tuple[list[str], list[str]]:
    """What a From picker offers: the addresses the account may send as (its own, its
    aliases, then its exact send-as entries) and the domains of its ``*@domain`` entries
    (any address there)."""
    addresses = await addresses_of(conn, account_id)
    entries = await send_as_of(conn, account_id)
    exact = [e for e in entries if not e.startswith("*@") and e not in addresses]
    domains = [e[2:] for e in entries if e.startswith("*@")]
    return addresses + exact, domains


async def get_send_as(conn: Conn, address: str) -> list[str]:
    cur = await conn.execute(
        "SELECT send_as FROM accounts WHERE address = %s", (_account_key(address),)
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no account {address}")
    return list(row["send_as"])


async def set_send_as(conn: Conn, address: str, entries: Iterable[str]) -> list[str]:
    """Replace the account's list (entries normalised, duplicates dropped, sorted)."""
    values = sorted({normalize_send_as(e) for e in entries})
    if len(values) > MAX_SEND_AS:
        raise InvalidInput(f"at most {MAX_SEND_AS} send-as entries per account")
    cur = await conn.execute(
        "UPDATE accounts SET send_as = %s WHERE address = %s RETURNING send_as",
        (values, _account_key(address)),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no account {address}")
    return list(row["send_as"])


async def change_send_as(
    conn: Conn, address: str, *, allow: Iterable[str] = (), remove: Iterable[str] = ()
) -> list[str]:
    """Add and remove entries in one transaction; removing one not there is NotFound."""
    added = [normalize_send_as(e) for e in allow]
    removed = [normalize_send_as(e) for e in remove]
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT send_as FROM accounts WHERE address = %s FOR UPDATE",
            (_account_key(address),),
        )
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no account {address}")
        current = set(row["send_as"])
        for entry in removed:
            if entry not in current:
                raise NotFound(f"{entry} is not in {address}'s send-as list")
            current.discard(entry)
        return await set_send_as(conn, address, current | set(added))


def _account_key(address: str) -> str:
    try:
        return canonical(address)
    except InvalidInput:
        raise NotFound(f"no account {address}") from None
