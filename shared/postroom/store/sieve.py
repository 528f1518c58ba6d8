"""Sieve scripts of each account (compiled when stored, one active) and vacation reply state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import psycopg

from postroom.db import Conn
from postroom.errors import AlreadyExists, LimitExceeded, NotFound, StoreError
from postroom.sieve import CompiledScript, compile_script
from postroom.store.types import AccountId

MAX_NAME_LENGTH = 128


@lru_cache(maxsize=256)
def _decoded(compiled: str) -> CompiledScript | None:
    # The compiled form is decoded once per process and version, not at every delivery
    # (a 20-rule script: a JSON decode costs several runs of it). Runs never change it.
    return CompiledScript.from_json(compiled)


class ScriptIsActive(StoreError):
    """RFC 5804 §2.10: the active script cannot be deleted."""


@dataclass(frozen=True, slots=True)
class SieveScript:
    name: str
    active: bool
    size: int  # octets of the source
    updated_at: datetime
    source: str | None = None  # only when asked for


def check_name(name: str) -> str:
    """RFC 5804 §1.6: a script name is UTF-8 without control characters; ours are at most
    128 characters."""
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"a script name has 1 to {MAX_NAME_LENGTH} characters")
    if any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" for c in name):
        raise ValueError("a script name cannot hold control characters")
    return name


def _script(row: dict[str, Any], *, with_source: bool = False) -> SieveScript:
    return SieveScript(
        name=row["name"],
        active=row["active"],
        size=row["size"],
        updated_at=row["updated_at"],
        source=row["source"] if with_source else None,
    )


_SCRIPTS_LOCK = 0x5E7E  # advisory lock class of one account's scripts


async def lock_scripts(conn: Conn, account_id: AccountId) -> None:
    """Serialise read-modify-write of one account's scripts until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_SCRIPTS_LOCK, account_id))


async def list_scripts(conn: Conn, account_id: AccountId) -> list[SieveScript]:
    cur = await conn.execute(
        """SELECT name, active, octet_length(source) AS size, updated_at
           FROM sieve_scripts WHERE account_id = %s ORDER BY name""",
        (account_id,),
    )
    return [_script(row) for row in await cur.fetchall()]


async def get_script(conn: Conn, account_id: AccountId, name: str) -> SieveScript | None:
    cur = await conn.execute(
        """SELECT name, active, octet_length(source) AS size, updated_at, source
           FROM sieve_scripts WHERE account_id = %s AND name = %s""",
        (account_id, name),
    )
    row = await cur.fetchone()
    return None if row is None else _script(row, with_source=True)


async def space_used(conn: Conn, account_id: AccountId) -> tuple[int, int]:
    """(number of scripts, octets of their sources)."""
    cur = await conn.execute(
        """SELECT count(*) AS n, coalesce(sum(octet_length(source)), 0) AS octets
           FROM sieve_scripts WHERE account_id = %s""",
        (account_id,),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["n"]), int(row["octets"])


async def put_script(
    conn: Conn,
    account_id: AccountId,
    name: str,
    source: str,
    *,
    max_size: int,
    max_scripts: int,
    activate: bool = False,
    now: datetime,
) -> SieveScript:
    """Store (create or replace) a script after compiling it; SieveSyntaxError if it does not
    compile, LimitExceeded past the size or count limit. Optionally make it the active one."""
    check_name(name)
    compiled = compile_script(source, max_size=max_size)
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT name FROM sieve_scripts WHERE account_id = %s FOR UPDATE", (account_id,)
        )
        names = {row["name"] for row in await cur.fetchall()}
        if name not in names and len(names) >= max_scripts:
            raise LimitExceeded(f"at most {max_scripts} scripts per account")
        await conn.execute(
            """INSERT INTO sieve_scripts (account_id, name, source, compiled, updated_at)
               VALUES (%(account)s, %(name)s, %(source)s, %(compiled)s, %(now)s)
               ON CONFLICT (account_id, name) DO UPDATE
               SET source = EXCLUDED.source, compiled = EXCLUDED.compiled,
                   updated_at = EXCLUDED.updated_at""",
            {
                "account": account_id,
                "name": name,
                "source": source,
                "compiled": compiled.to_json(),
                "now": now,
            },
        )
        if activate:
            await set_active(conn, account_id, name)
    script = await get_script(conn, account_id, name)
    assert script is not None
    return script


async def set_active(conn: Conn, account_id: AccountId, name: str | None) -> None:
    """Make ``name`` the one active script; None deactivates all (RFC 5804 §2.8)."""
    async with conn.transaction():
        if name is not None:
            cur = await conn.execute(
                "SELECT 1 FROM sieve_scripts WHERE account_id = %s AND name = %s",
                (account_id, name),
            )
            if await cur.fetchone() is None:
                raise NotFound(f"no script named {name!r}")
        await conn.execute(
            "UPDATE sieve_scripts SET active = false WHERE account_id = %s AND active",
            (account_id,),
        )
        if name is not None:
            await conn.execute(
                "UPDATE sieve_scripts SET active = true WHERE account_id = %s AND name = %s",
                (account_id, name),
            )


async def delete_script(conn: Conn, account_id: AccountId, name: str) -> None:
    cur = await conn.execute(
        """DELETE FROM sieve_scripts WHERE account_id = %s AND name = %s AND NOT active
           RETURNING 1""",
        (account_id, name),
    )
    if await cur.fetchone() is not None:
        return
    existing = await get_script(conn, account_id, name)
    if existing is None:
        raise NotFound(f"no script named {name!r}")
    raise ScriptIsActive(f"script {name!r} is active")


async def rename_script(conn: Conn, account_id: AccountId, old: str, new: str) -> None:
    check_name(new)
    try:
        cur = await conn.execute(
            """UPDATE sieve_scripts SET name = %s WHERE account_id = %s AND name = %s
               RETURNING 1""",
            (new, account_id, old),
        )
    except psycopg.errors.UniqueViolation:
        raise AlreadyExists(f"a script named {new!r} exists") from None
    if await cur.fetchone() is None:
        raise NotFound(f"no script named {old!r}")


async def active_script(conn: Conn, account_id: AccountId) -> CompiledScript | None:
    """The compiled active script of an account, or None."""
    cur = await conn.execute(
        "SELECT source, compiled FROM sieve_scripts WHERE account_id = %s AND active",
        (account_id,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    compiled = _decoded(row["compiled"])
    if compiled is None:  # stored by an older compiler: build again from the source
        compiled = compile_script(row["source"], max_size=len(row["source"].encode()) + 1)
    return compiled


async def compiled_scripts(conn: Conn, account_id: AccountId) -> dict[str, CompiledScript]:
    """Every script of an account, compiled, by name (what RFC 6609 include may name)."""
    cur = await conn.execute(
        "SELECT name, source, compiled FROM sieve_scripts WHERE account_id = %s", (account_id,)
    )
    scripts: dict[str, CompiledScript] = {}
    for row in await cur.fetchall():
        compiled = _decoded(row["compiled"])
        if compiled is None:
            compiled = compile_script(row["source"], max_size=len(row["source"].encode()) + 1)
        scripts[row["name"]] = compiled
    return scripts


async def claim_vacation_reply(
    conn: Conn,
    account_id: AccountId,
    *,
    sender: str,
    handle: str,
    period: timedelta,
    now: datetime,
) -> bool:
    """RFC 5230 §4.2: True when no reply went to ``sender`` under ``handle`` within ``period``,
    and then records this one. Atomic, so two workers never both answer."""
    cur = await conn.execute(
        """INSERT INTO sieve_vacation_replies AS r (account_id, sender, handle, replied_at)
           VALUES (%(account)s, %(sender)s, %(handle)s, %(now)s)
           ON CONFLICT (account_id, sender, handle) DO UPDATE SET replied_at = %(now)s
           WHERE r.replied_at <= %(since)s
           RETURNING 1""",
        {
            "account": account_id,
            "sender": sender.lower(),
            "handle": handle,
            "now": now,
            "since": now - period,
        },
    )
    return await cur.fetchone() is not None


async def forget_vacation_replies(conn: Conn, *, older_than: datetime, limit: int) -> int:
    """Drop reply records too old to hold back any reply (housekeeping), at most ``limit``."""
    cur = await conn.execute(
        """DELETE FROM sieve_vacation_replies WHERE ctid IN (
               SELECT ctid FROM sieve_vacation_replies WHERE replied_at < %s LIMIT %s)""",
        (older_than, limit),
    )
    return cur.rowcount
