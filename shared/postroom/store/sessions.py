"""Sessions of the web mail and the API: opaque tokens, kept only as their SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from postroom.db import Conn
from postroom.errors import InvalidInput
from postroom.store.accounts import _ACCOUNT_COLUMNS, _account
from postroom.store.revocation import announce_ended
from postroom.store.types import Account, AccountId

SessionKind = Literal["cookie", "bearer"]
MAX_TOKEN_LENGTH = 200


@dataclass(frozen=True, slots=True)
class WebSession:
    id: int
    account: Account
    kind: SessionKind
    created_at: datetime
    expires_at: datetime


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "replace")).digest()


async def create_session(
    conn: Conn,
    account_id: AccountId,
    *,
    kind: SessionKind,
    now: datetime,
    lifetime: timedelta,
    client_address: str | None = None,
) -> tuple[str, WebSession]:
    """A new session; returns its token (shown once, never stored) and the session."""
    if kind not in ("cookie", "bearer"):
        raise InvalidInput(f"unknown session kind {kind!r}")
    token = secrets.token_urlsafe(32)
    await conn.execute("DELETE FROM web_sessions WHERE expires_at < %s", (now,))
    await conn.execute(
        """INSERT INTO web_sessions (token_hash, account_id, kind, created_at, expires_at,
                                     client_address)
           VALUES (%s, %s, %s, %s, %s, %s)""",
        (token_hash(token), account_id, kind, now, now + lifetime, client_address),
    )
    session = await get_session(conn, token, now=now)
    assert session is not None
    return token, session


async def get_session(conn: Conn, token: str, *, now: datetime) -> WebSession | None:
    """The live session of this token, or None (unknown, expired, or the account disabled)."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    columns = ", ".join(f"a.{c.strip()}" for c in _ACCOUNT_COLUMNS.split(","))
    cur = await conn.execute(
        f"""SELECT {columns}, s.id AS session_id, s.kind, s.created_at AS session_created,
                   s.expires_at
            FROM web_sessions s JOIN accounts a ON a.id = s.account_id
            WHERE s.token_hash = %s AND s.expires_at > %s AND NOT a.disabled""",
        (token_hash(token), now),
    )
    row = await cur.fetchone()
    return _session(row) if row else None


def _session(row: dict[str, Any]) -> WebSession:
    return WebSession(
        id=row["session_id"],
        account=_account(row),
        kind=row["kind"],
        created_at=row["session_created"],
        expires_at=row["expires_at"],
    )


async def delete_session(conn: Conn, token: str) -> bool:
    """Log out: forget the session; False when there was none."""
    cur = await conn.execute(
        "DELETE FROM web_sessions WHERE token_hash = %s RETURNING account_id", (token_hash(token),)
    )
    row = await cur.fetchone()
    if row is None:
        return False
    await announce_ended(conn, AccountId(row["account_id"]))
    return True


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One of an account's sessions, as its owner may see it (never the token)."""

    id: int
    kind: SessionKind
    created_at: datetime
    expires_at: datetime
    client_address: str | None


async def list_sessions_of(
    conn: Conn, account_id: AccountId, *, now: datetime
) -> list[SessionInfo]:
    """The account's live sessions and tokens, newest first."""
    cur = await conn.execute(
        """SELECT id, kind, created_at, expires_at, client_address FROM web_sessions
           WHERE account_id = %s AND expires_at > %s ORDER BY created_at DESC, id DESC""",
        (account_id, now),
    )
    return [SessionInfo(**row) for row in await cur.fetchall()]


async def delete_session_of(conn: Conn, account_id: AccountId, session_id: int) -> bool:
    """End one of the account's own sessions by its id; False when it has none such."""
    cur = await conn.execute(
        "DELETE FROM web_sessions WHERE id = %s AND account_id = %s", (session_id, account_id)
    )
    if cur.rowcount == 0:
        return False
    await announce_ended(conn, account_id)
    return True


async def delete_sessions_of(conn: Conn, account_id: AccountId) -> int:
    """End every session of an account (after a password reset or when it is disabled)."""
    cur = await conn.execute("DELETE FROM web_sessions WHERE account_id = %s", (account_id,))
    await announce_ended(conn, account_id)
    return cur.rowcount
