"""App passwords: a generated secret per device or program for IMAP, POP3 and SMTP, kept as
an argon2id hash, checked by the one login path, revocable, with its last use."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from postroom import auth
from postroom.db import Conn
from postroom.errors import InvalidInput, NotFound
from postroom.store.revocation import CHANNEL
from postroom.store.types import AccountId

MAX_PER_ACCOUNT = 50
# 4 groups of 4 lowercase letters: ~75 bits, easy to type on a phone.
_ALPHABET = "abcdefghijkmnopqrstuvwxyz"


@dataclass(frozen=True, slots=True)
class AppPassword:
    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    last_used_from: str | None


def generate() -> str:
    return "-".join("".join(secrets.choice(_ALPHABET) for _ in range(4)) for _ in range(4))


async def create_app_password(
    conn: Conn, account_id: AccountId, name: str
) -> tuple[AppPassword, str]:
    """A new app password: its record and the secret, which is shown this once."""
    name = " ".join(name.split())
    if not name or len(name) > 100 or "\x00" in name:
        raise InvalidInput("name the device or program in 1 to 100 characters")
    cur = await conn.execute(
        "SELECT count(*) AS n FROM app_passwords WHERE account_id = %s", (account_id,)
    )
    row = await cur.fetchone()
    if row is not None and row["n"] >= MAX_PER_ACCOUNT:
        raise InvalidInput(f"at most {MAX_PER_ACCOUNT} app passwords; revoke one first")
    secret = generate()
    password_hash = await asyncio.to_thread(auth.hash_password, secret)
    cur = await conn.execute(
        """INSERT INTO app_passwords (account_id, name, password_hash) VALUES (%s, %s, %s)
           RETURNING id, name, created_at, last_used_at, last_used_from""",
        (account_id, name, password_hash),
    )
    created = await cur.fetchone()
    assert created is not None
    return _record(created), secret


def _record(r: dict[str, Any]) -> AppPassword:
    return AppPassword(r["id"], r["name"], r["created_at"], r["last_used_at"], r["last_used_from"])


async def list_app_passwords(conn: Conn, account_id: AccountId) -> list[AppPassword]:
    cur = await conn.execute(
        """SELECT id, name, created_at, last_used_at, last_used_from FROM app_passwords
           WHERE account_id = %s ORDER BY created_at, id""",
        (account_id,),
    )
    return [_record(r) for r in await cur.fetchall()]


async def revoke_app_password(conn: Conn, account_id: AccountId, app_password_id: int) -> None:
    """Delete the app password and announce it (`revocation.CHANNEL`, ``account:id``, sent
    when the deletion commits), so that every process ends the sessions it opened."""
    cur = await conn.execute(
        """WITH gone AS (
               DELETE FROM app_passwords WHERE account_id = %(account)s AND id = %(id)s
               RETURNING account_id, id)
           SELECT id, pg_notify(%(channel)s, account_id || ':' || id) FROM gone""",
        {"account": account_id, "id": app_password_id, "channel": CHANNEL},
    )
    if await cur.fetchone() is None:
        raise NotFound(f"app password {app_password_id} does not exist")


async def note_app_password_use(
    conn: Conn, account_id: AccountId, password_hash: str, *, now: datetime, client: str | None
) -> None:
    """Record that the app password with this hash was just used (its "last use")."""
    await conn.execute(
        """UPDATE app_passwords SET last_used_at = %s, last_used_from = %s
           WHERE account_id = %s AND password_hash = %s""",
        (now, client, account_id, password_hash),
    )
