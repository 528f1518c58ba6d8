"""Domains, accounts and aliases, and how an address resolves to where its mail goes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import psycopg

from postroom import auth
from postroom.address import canonical, normalize_domain, parse_address, without_tag
from postroom.db import Conn
from postroom.errors import AlreadyExists, AuthenticationFailed, InvalidInput, NotFound
from postroom.store import revocation
from postroom.store.types import (
    DEFAULT_MAILBOXES,
    Account,
    AccountId,
    Alias,
    Domain,
    DomainId,
    Resolution,
)

# An alias chain longer than this is a loop or a mistake; Postfix stops at 1000 expansions,
# 20 levels is more than any sane configuration needs.
MAX_ALIAS_DEPTH = 20
MAX_ALIAS_EXPANSION = 1000


class _Unset:
    """Marks an argument left out (where None has a meaning of its own)."""


_UNSET = _Unset()
# For callers: leave this setting as it is (`update_account`).
KEEP = _UNSET

_ACCOUNT_COLUMNS = (
    "id, domain_id, address, is_admin, disabled, quota_bytes, created_at, used_bytes, "
    "used_messages, quota_messages, send_as"
)


def _account(row: dict[str, Any]) -> Account:
    return Account(
        id=AccountId(row["id"]),
        domain_id=DomainId(row["domain_id"]),
        address=row["address"],
        is_admin=row["is_admin"],
        disabled=row["disabled"],
        quota_bytes=row["quota_bytes"],
        created_at=row["created_at"],
        used_bytes=row["used_bytes"],
        used_messages=row["used_messages"],
        quota_messages=row["quota_messages"],
        send_as=tuple(row["send_as"]),
    )


# --- domains ------------------------------------------------------------------------------


async def create_domain(conn: Conn, name: str) -> Domain:
    domain = normalize_domain(name)
    try:
        async with conn.transaction():
            cur = await conn.execute(
                "INSERT INTO domains (name) VALUES (%s) RETURNING id, name, created_at", (domain,)
            )
            row = await cur.fetchone()
    except psycopg.errors.UniqueViolation:
        raise AlreadyExists(f"domain {domain} already exists") from None
    assert row is not None
    return Domain(DomainId(row["id"]), row["name"], row["created_at"])


async def list_domains(conn: Conn) -> list[Domain]:
    cur = await conn.execute("SELECT id, name, created_at FROM domains ORDER BY name")
    return [Domain(DomainId(r["id"]), r["name"], r["created_at"]) for r in await cur.fetchall()]


async def get_domain(conn: Conn, name: str) -> Domain | None:
    try:
        domain = normalize_domain(name)
    except InvalidInput:
        return None
    cur = await conn.execute("SELECT id, name, created_at FROM domains WHERE name = %s", (domain,))
    row = await cur.fetchone()
    return Domain(DomainId(row["id"]), row["name"], row["created_at"]) if row else None


async def is_local_domain(conn: Conn, name: str) -> bool:
    return await get_domain(conn, name) is not None


async def delete_domain(conn: Conn, name: str) -> None:
    """Remove a domain and its aliases; refused while it still has accounts."""
    domain = normalize_domain(name)
    try:
        async with conn.transaction():
            cur = await conn.execute("DELETE FROM domains WHERE name = %s", (domain,))
    except psycopg.errors.ForeignKeyViolation:
        raise InvalidInput(f"domain {domain} still has accounts; remove them first") from None
    if cur.rowcount == 0:
        raise NotFound(f"domain {domain} does not exist")


# --- accounts -----------------------------------------------------------------------------


async def create_account(
    conn: Conn,
    address: str,
    password: str,
    *,
    is_admin: bool = False,
    quota_bytes: int | None = None,
    quota_messages: int | None = None,
) -> Account:
    """Create an account with its standard folders (INBOX, Sent, Drafts, Trash, Junk, Archive)."""
    key = canonical(address)
    domain_name = key.rpartition("@")[2]
    if (quota_bytes is not None and quota_bytes < 0) or (
        quota_messages is not None and quota_messages < 0
    ):
        raise InvalidInput("the quota must not be negative")
    try:
        password_hash = await asyncio.to_thread(auth.hash_password, password)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    try:
        async with conn.transaction():
            cur = await conn.execute("SELECT id FROM domains WHERE name = %s", (domain_name,))
            domain = await cur.fetchone()
            if domain is None:
                raise NotFound(
                    f"domain {domain_name} is not a local domain (add it with: postroom domain add)"
                )
            cur = await conn.execute(
                f"""INSERT INTO accounts (domain_id, address, password_hash, is_admin, quota_bytes,
                                          quota_messages)
                    VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_ACCOUNT_COLUMNS}""",
                (domain["id"], key, password_hash, is_admin, quota_bytes, quota_messages),
            )
            row = await cur.fetchone()
            assert row is not None
            async with conn.cursor() as mcur:
                await mcur.executemany(
                    "INSERT INTO mailboxes (account_id, name, special_use) VALUES (%s, %s, %s)",
                    [(row["id"], name, use) for name, use in DEFAULT_MAILBOXES],
                )
    except psycopg.errors.UniqueViolation:
        raise AlreadyExists(f"account {key} already exists") from None
    return _account(row)


async def get_account(conn: Conn, address: str) -> Account | None:
    try:
        key = canonical(address)
    except InvalidInput:
        return None
    cur = await conn.execute(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE address = %s", (key,))
    row = await cur.fetchone()
    return _account(row) if row else None


async def get_account_by_id(conn: Conn, account_id: AccountId) -> Account | None:
    cur = await conn.execute(
        f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = %s", (account_id,)
    )
    row = await cur.fetchone()
    return _account(row) if row else None


async def list_accounts(conn: Conn, domain: str | None = None) -> list[Account]:
    if domain is None:
        cur = await conn.execute(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts ORDER BY address")
    else:
        cur = await conn.execute(
            f"""SELECT {_ACCOUNT_COLUMNS} FROM accounts
                WHERE domain_id = (SELECT id FROM domains WHERE name = %s) ORDER BY address""",
            (normalize_domain(domain),),
        )
    return [_account(r) for r in await cur.fetchall()]


async def authenticate(conn: Conn, address: str, password: str) -> Account:
    """The account when the password is right and the account enabled, else AuthenticationFailed.

    Unknown addresses cost one argon2 verification too, so timing tells nothing.
    """
    row = None
    try:
        key = canonical(address)
    except InvalidInput:
        key = None
    if key is not None:
        cur = await conn.execute(
            f"SELECT {_ACCOUNT_COLUMNS}, password_hash FROM accounts WHERE address = %s", (key,)
        )
        row = await cur.fetchone()
    stored = row["password_hash"] if row else None
    ok = await asyncio.to_thread(auth.verify_password, stored, password)
    if not ok or row is None or row["disabled"]:
        raise AuthenticationFailed("authentication failed")
    if auth.needs_rehash(row["password_hash"]):
        new_hash = await asyncio.to_thread(auth.hash_password, password)
        await conn.execute(
            "UPDATE accounts SET password_hash = %s WHERE id = %s", (new_hash, row["id"])
        )
    return _account(row)


@dataclass(frozen=True, slots=True)
class LoginRecord:
    """What a login checks a secret against: the account and its password hash (app
    passwords, when an account has them, join ``secrets`` as further hashes; their ids are
    ``app_password_ids``, in the same order)."""

    account: Account
    password_hash: str
    app_password_hashes: tuple[str, ...] = ()
    app_password_ids: tuple[int, ...] = ()

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.password_hash, *self.app_password_hashes)


async def login_record(conn: Conn, canonical_address: str) -> LoginRecord | None:
    """The account named by a canonical address with its password hash; one short query,
    so that the caller can give the connection back before the slow verification."""
    cur = await conn.execute(
        f"""SELECT {_ACCOUNT_COLUMNS}, password_hash,
                   ARRAY(SELECT p.password_hash FROM app_passwords p
                         WHERE p.account_id = accounts.id ORDER BY p.id) AS app_hashes,
                   ARRAY(SELECT p.id FROM app_passwords p
                         WHERE p.account_id = accounts.id ORDER BY p.id) AS app_ids
            FROM accounts WHERE address = %s""",
        (canonical_address,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return LoginRecord(
        _account(row), row["password_hash"], tuple(row["app_hashes"]), tuple(row["app_ids"])
    )


async def replace_password_hash(
    conn: Conn, account_id: AccountId, old_hash: str, new_hash: str
) -> None:
    """Store a stronger hash of the same password, unless the password changed meanwhile."""
    await conn.execute(
        "UPDATE accounts SET password_hash = %s WHERE id = %s AND password_hash = %s",
        (new_hash, account_id, old_hash),
    )


async def set_password(conn: Conn, address: str, password: str) -> None:
    """A new password: the account's web sessions and tokens end, and so do its open
    IMAP, POP3 and SMTP sessions (`postroom.store.revocation`)."""
    try:
        password_hash = await asyncio.to_thread(auth.hash_password, password)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    async with conn.transaction():
        cur = await conn.execute(
            "UPDATE accounts SET password_hash = %s WHERE address = %s RETURNING id",
            (password_hash, canonical(address)),
        )
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"account {canonical(address)} does not exist")
        await revocation.revoke(conn, AccountId(row["id"]))


async def update_account(
    conn: Conn,
    address: str,
    *,
    disabled: bool | None = None,
    is_admin: bool | None = None,
    quota_bytes: int | _Unset | None = _UNSET,
    quota_messages: int | _Unset | None = _UNSET,
) -> Account:
    """Change an account's flags or quotas (``quota_bytes=None`` removes that quota)."""
    sets: list[str] = []
    params: dict[str, Any] = {"address": canonical(address)}
    if disabled is not None:
        sets.append("disabled = %(disabled)s")
        params["disabled"] = disabled
    if is_admin is not None:
        sets.append("is_admin = %(is_admin)s")
        params["is_admin"] = is_admin
    if not isinstance(quota_bytes, _Unset):
        if quota_bytes is not None and quota_bytes < 0:
            raise InvalidInput("the quota must not be negative")
        sets.append("quota_bytes = %(quota)s")
        params["quota"] = quota_bytes
    if not isinstance(quota_messages, _Unset):
        if quota_messages is not None and quota_messages < 0:
            raise InvalidInput("the quota must not be negative")
        sets.append("quota_messages = %(quota_messages)s")
        params["quota_messages"] = quota_messages
    if not sets:
        account = await get_account(conn, address)
    else:
        async with conn.transaction():
            cur = await conn.execute(
                f"UPDATE accounts SET {', '.join(sets)} WHERE address = %(address)s "
                f"RETURNING {_ACCOUNT_COLUMNS}",
                params,
            )
            row = await cur.fetchone()
            account = _account(row) if row else None
            if account is not None and disabled:
                # A disabled account's sessions end everywhere, as after a new password.
                await revocation.revoke(conn, account.id)
    if account is None:
        raise NotFound(f"account {params['address']} does not exist")
    return account


async def delete_account(conn: Conn, address: str) -> None:
    """Remove an account with all its mailboxes and messages."""
    key = canonical(address)
    cur = await conn.execute("DELETE FROM accounts WHERE address = %s RETURNING id", (key,))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"account {key} does not exist")
    # Its web sessions went with it; an open event stream of one of them ends now.
    await revocation.announce_ended(conn, AccountId(row["id"]))


async def mailbox_usage(conn: Conn, account_id: AccountId) -> int:
    """Octets stored in all the account's mailboxes (what the quota limits), as counted."""
    cur = await conn.execute(
        "SELECT used_bytes AS used FROM accounts WHERE id = %s",
        (account_id,),
    )
    row = await cur.fetchone()
    return int(row["used"]) if row else 0


# --- aliases ------------------------------------------------------------------------------


def _alias_source(source: str) -> tuple[str, str]:
    """Canonical alias source and its domain: ``user@domain`` or the catch-all ``@domain``."""
    text = source.strip()
    if text.startswith("@"):
        domain = normalize_domain(text[1:])
        return f"@{domain}", domain
    key = canonical(text)
    return key, key.rpartition("@")[2]


async def add_alias(conn: Conn, source: str, destination: str) -> Alias:
    key, domain_name = _alias_source(source)
    target = parse_address(destination)
    dest = f"{target.local_part}@{target.domain}"
    if dest.lower() == key:
        raise InvalidInput(f"alias {key} would point at itself")
    try:
        async with conn.transaction():
            cur = await conn.execute("SELECT id FROM domains WHERE name = %s", (domain_name,))
            domain = await cur.fetchone()
            if domain is None:
                raise NotFound(f"domain {domain_name} is not a local domain")
            cur = await conn.execute(
                """INSERT INTO aliases (domain_id, source, destination) VALUES (%s, %s, %s)
                   RETURNING id, source, destination""",
                (domain["id"], key, dest),
            )
            row = await cur.fetchone()
    except psycopg.errors.UniqueViolation:
        raise AlreadyExists(f"alias {key} → {dest} already exists") from None
    assert row is not None
    return Alias(row["id"], row["source"], row["destination"])


async def list_aliases(conn: Conn, domain: str | None = None) -> list[Alias]:
    if domain is None:
        cur = await conn.execute(
            "SELECT id, source, destination FROM aliases ORDER BY source, destination"
        )
    else:
        cur = await conn.execute(
            """SELECT id, source, destination FROM aliases
               WHERE domain_id = (SELECT id FROM domains WHERE name = %s)
               ORDER BY source, destination""",
            (normalize_domain(domain),),
        )
    return [Alias(r["id"], r["source"], r["destination"]) for r in await cur.fetchall()]


async def remove_alias(conn: Conn, source: str, destination: str | None = None) -> int:
    """Remove the alias (one destination, or all of them); returns how many rows went."""
    key, _ = _alias_source(source)
    if destination is None:
        cur = await conn.execute("DELETE FROM aliases WHERE source = %s", (key,))
    else:
        dest = parse_address(destination)
        cur = await conn.execute(
            "DELETE FROM aliases WHERE source = %s AND lower(destination) = lower(%s)",
            (key, str(dest)),
        )
    if cur.rowcount == 0:
        raise NotFound(f"no alias {key}" + (f" → {destination}" if destination else ""))
    return cur.rowcount


async def addresses_of(conn: Conn, account_id: AccountId) -> list[str]:
    """The account's own address and every exact alias that leads only to it.

    These are the addresses the account may send as (MAIL FROM on submission, From in the API).
    """
    account = await get_account_by_id(conn, account_id)
    if account is None:
        return []
    cur = await conn.execute(
        """SELECT source FROM aliases WHERE source NOT LIKE '@%%'
           GROUP BY source HAVING bool_and(lower(destination) = %s) ORDER BY source""",
        (account.address,),
    )
    return [account.address] + [r["source"] for r in await cur.fetchall()]


async def address_taken(conn: Conn, address: str) -> bool:
    """Whether an account or an exact alias has this very address (a ``user+tag`` address
    that someone owns outright is theirs, not a tag of ``user``'s)."""
    try:
        key = canonical(address)
    except InvalidInput:
        return False
    cur = await conn.execute(
        """SELECT EXISTS (SELECT 1 FROM accounts WHERE address = %(a)s)
               OR EXISTS (SELECT 1 FROM aliases WHERE source = %(a)s) AS taken""",
        {"a": key},
    )
    row = await cur.fetchone()
    return bool(row and row["taken"])


async def resolve(conn: Conn, address: str) -> Resolution | None:
    """Where mail for ``address`` goes, or None when its domain is not local.

    Order, as in Postfix's virtual alias and mailbox maps: an exact alias wins over an account
    of the same name; then the account; then the same two for the address without its
    ``+tag`` (plus addressing); then the domain's catch-all alias ``@domain``. Alias targets are
    resolved again (to MAX_ALIAS_DEPTH); targets in other domains are remote. An empty
    Resolution means the domain is local but nobody has that address (550 5.1.1).
    """
    try:
        parsed = parse_address(address)
    except InvalidInput:
        return None
    if not await is_local_domain(conn, parsed.domain):
        return None
    accounts: dict[AccountId, Account] = {}
    remote: dict[str, None] = {}
    await _expand(conn, f"{parsed.local_part.lower()}@{parsed.domain}", 0, accounts, remote, set())
    return Resolution(tuple(accounts.values()), tuple(remote))


async def _expand(
    conn: Conn,
    address: str,
    depth: int,
    accounts: dict[AccountId, Account],
    remote: dict[str, None],
    seen: set[str],
) -> None:
    key = address.lower()
    if key in seen or depth > MAX_ALIAS_DEPTH or len(seen) > MAX_ALIAS_EXPANSION:
        return
    seen.add(key)
    local, _, domain = key.rpartition("@")
    cur = await conn.execute("SELECT id FROM domains WHERE name = %s", (domain,))
    if await cur.fetchone() is None:
        remote.setdefault(address, None)
        return
    base = without_tag(local)
    candidates = [key] + ([f"{base}@{domain}"] if base else [])
    for candidate in candidates:
        cur = await conn.execute(
            "SELECT destination FROM aliases WHERE source = %s ORDER BY id", (candidate,)
        )
        targets = [r["destination"] for r in await cur.fetchall()]
        if targets:
            for target in targets:
                await _expand(conn, target, depth + 1, accounts, remote, seen)
            return
        cur = await conn.execute(
            f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE address = %s AND NOT disabled",
            (candidate,),
        )
        row = await cur.fetchone()
        if row is not None:
            account = _account(row)
            accounts.setdefault(account.id, account)
            return
    cur = await conn.execute(
        "SELECT destination FROM aliases WHERE source = %s ORDER BY id", (f"@{domain}",)
    )
    for r in await cur.fetchall():
        await _expand(conn, r["destination"], depth + 1, accounts, remote, seen)
