"""ACME state in Postgres: accounts, pending HTTP-01 answers, issued certificates."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from postroom.db import Conn

# RFC 8555 §8.3: a token is base64url without padding; §8.1 wants at least 128 bits.
TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
# Only one process at a time orders certificates (beat, a second worker, the CLI).
ISSUE_LOCK = 0x61636D65  # "acme"


@dataclass(frozen=True, slots=True)
class AcmeAccount:
    directory: str
    uri: str
    contact: str
    sealed_key: bytes


@dataclass(frozen=True, slots=True)
class StoredCertificate:
    """One issued certificate: its chain (leaf first, PEM) and its sealed private key."""

    id: int
    directory: str
    names: tuple[str, ...]
    chain_pem: str
    sealed_key: bytes
    not_before: datetime
    not_after: datetime
    issued_at: datetime


async def get_account(conn: Conn, directory: str) -> AcmeAccount | None:
    cur = await conn.execute(
        "SELECT directory, uri, contact, sealed_key FROM acme_accounts WHERE directory = %s",
        (directory,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return AcmeAccount(row["directory"], row["uri"], row["contact"], bytes(row["sealed_key"]))


async def save_account(conn: Conn, account: AcmeAccount) -> None:
    await conn.execute(
        """
        INSERT INTO acme_accounts (directory, uri, contact, sealed_key)
        VALUES (%(directory)s, %(uri)s, %(contact)s, %(key)s)
        ON CONFLICT (directory) DO UPDATE
        SET uri = EXCLUDED.uri, contact = EXCLUDED.contact, sealed_key = EXCLUDED.sealed_key
        """,
        {
            "directory": account.directory,
            "uri": account.uri,
            "contact": account.contact,
            "key": account.sealed_key,
        },
    )


async def put_challenge(
    conn: Conn, token: str, key_authorization: str, *, expires_at: datetime
) -> None:
    await conn.execute(
        """
        INSERT INTO acme_challenges (token, key_authorization, expires_at)
        VALUES (%s, %s, %s)
        ON CONFLICT (token) DO UPDATE
        SET key_authorization = EXCLUDED.key_authorization, expires_at = EXCLUDED.expires_at
        """,
        (token, key_authorization, expires_at),
    )


async def get_challenge(conn: Conn, token: str, *, now: datetime) -> str | None:
    """The key authorization to answer for ``token`` (RFC 8555 §8.3), None if unknown."""
    if not TOKEN.fullmatch(token):
        return None
    cur = await conn.execute(
        "SELECT key_authorization FROM acme_challenges WHERE token = %s AND expires_at > %s",
        (token, now),
    )
    row = await cur.fetchone()
    return None if row is None else str(row["key_authorization"])


async def remove_challenges(conn: Conn, tokens: list[str], *, now: datetime) -> None:
    """Forget these answers, and any left behind by an order that never finished."""
    await conn.execute(
        "DELETE FROM acme_challenges WHERE token = ANY(%s) OR expires_at <= %s", (tokens, now)
    )


def _certificate(row: dict[str, Any]) -> StoredCertificate:
    return StoredCertificate(
        id=row["id"],
        directory=row["directory"],
        names=tuple(row["names"]),
        chain_pem=row["chain_pem"],
        sealed_key=bytes(row["sealed_key"]),
        not_before=row["not_before"],
        not_after=row["not_after"],
        issued_at=row["issued_at"],
    )


async def add_certificate(
    conn: Conn,
    *,
    directory: str,
    names: list[str],
    chain_pem: str,
    sealed_key: bytes,
    not_before: datetime,
    not_after: datetime,
) -> StoredCertificate:
    cur = await conn.execute(
        """
        INSERT INTO acme_certificates (directory, names, chain_pem, sealed_key, not_before,
                                       not_after)
        VALUES (%s, %s, %s, %s, %s, %s)
        RETURNING *
        """,
        (directory, names, chain_pem, sealed_key, not_before, not_after),
    )
    row = await cur.fetchone()
    assert row is not None
    return _certificate(row)


async def newest_certificate(conn: Conn) -> StoredCertificate | None:
    """The certificate every listener presents: the one issued last."""
    cur = await conn.execute(
        "SELECT * FROM acme_certificates ORDER BY issued_at DESC, id DESC LIMIT 1"
    )
    row = await cur.fetchone()
    return None if row is None else _certificate(row)


async def newest_certificate_id(conn: Conn) -> int | None:
    cur = await conn.execute(
        "SELECT id FROM acme_certificates ORDER BY issued_at DESC, id DESC LIMIT 1"
    )
    row = await cur.fetchone()
    return None if row is None else int(row["id"])


async def forget_expired_certificates(conn: Conn, *, now: datetime) -> int:
    """Remove expired certificates except the newest (still shown by ``acme status``)."""
    cur = await conn.execute(
        """
        DELETE FROM acme_certificates
        WHERE not_after < %s
          AND id <> (SELECT id FROM acme_certificates ORDER BY issued_at DESC, id DESC LIMIT 1)
        """,
        (now,),
    )
    return cur.rowcount


async def try_issue_lock(conn: Conn) -> bool:
    """Take the ordering lock of this session, unless another holds it."""
    cur = await conn.execute("SELECT pg_try_advisory_lock(%s) AS locked", (ISSUE_LOCK,))
    row = await cur.fetchone()
    return bool(row and row["locked"])


async def release_issue_lock(conn: Conn) -> None:
    await conn.execute("SELECT pg_advisory_unlock(%s)", (ISSUE_LOCK,))
