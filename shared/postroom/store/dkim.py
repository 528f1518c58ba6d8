"""DKIM keys of the local domains: stored sealed, listed, rotated, removed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from postroom.address import normalize_domain
from postroom.db import Conn
from postroom.dkim import Algorithm, DkimKey, KeyState, check_selector
from postroom.errors import AlreadyExists, InvalidInput, NotFound


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An active key with its sealed private half, for the signer."""

    domain: str
    selector: str
    algorithm: Algorithm
    sealed_key: bytes


_COLUMNS = (
    "d.name AS domain, k.selector, k.algorithm, k.state, k.public_key, k.created_at, k.changed_at"
)


def _key(row: dict[str, Any]) -> DkimKey:
    return DkimKey(
        domain=row["domain"],
        selector=row["selector"],
        algorithm=row["algorithm"],
        state=row["state"],
        public_key=row["public_key"],
        created_at=row["created_at"],
        changed_at=row["changed_at"],
    )


async def add_key(
    conn: Conn,
    domain: str,
    *,
    selector: str,
    algorithm: Algorithm,
    state: KeyState,
    sealed_key: bytes,
    public_key: str,
) -> DkimKey:
    name = normalize_domain(domain)
    try:
        async with conn.transaction():
            cur = await conn.execute(
                f"""
                WITH added AS (
                    INSERT INTO dkim_keys (domain_id, selector, algorithm, state, sealed_key,
                                           public_key)
                    SELECT id, %(selector)s, %(algorithm)s, %(state)s, %(sealed)s, %(public)s
                    FROM domains WHERE name = %(domain)s
                    RETURNING *
                )
                SELECT {_COLUMNS} FROM added k JOIN domains d ON d.id = k.domain_id
                """,
                {
                    "domain": name,
                    "selector": selector,
                    "algorithm": algorithm,
                    "state": state,
                    "sealed": sealed_key,
                    "public": public_key,
                },
            )
            row = await cur.fetchone()
    except psycopg.errors.UniqueViolation:
        raise AlreadyExists(f"domain {name} already has a DKIM selector {selector}") from None
    if row is None:
        raise NotFound(f"domain {name} does not exist")
    return _key(row)


async def list_keys(conn: Conn, domain: str | None = None) -> list[DkimKey]:
    """Keys of one domain, or of all; by domain, then newest first."""
    if domain is not None:
        name = normalize_domain(domain)
        if not await _domain_exists(conn, name):
            raise NotFound(f"domain {name} does not exist")
    cur = await conn.execute(
        f"""
        SELECT {_COLUMNS} FROM dkim_keys k JOIN domains d ON d.id = k.domain_id
        WHERE %(domain)s::text IS NULL OR d.name = %(domain)s
        ORDER BY d.name, k.created_at DESC, k.selector
        """,
        {"domain": None if domain is None else normalize_domain(domain)},
    )
    return [_key(row) for row in await cur.fetchall()]


async def _domain_exists(conn: Conn, name: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM domains WHERE name = %s", (name,))
    return await cur.fetchone() is not None


async def remove_key(conn: Conn, domain: str, selector: str) -> None:
    name = normalize_domain(domain)
    try:
        selector = check_selector(selector)
    except InvalidInput:  # no key can have it (and a NUL byte must not reach Postgres)
        raise NotFound(f"domain {name} has no DKIM selector {selector!r}") from None
    cur = await conn.execute(
        """
        DELETE FROM dkim_keys k USING domains d
        WHERE d.id = k.domain_id AND d.name = %s AND k.selector = %s
        """,
        (name, selector),
    )
    if cur.rowcount == 0:
        raise NotFound(f"domain {name} has no DKIM selector {selector}")


async def promote_pending(conn: Conn, domain: str) -> list[DkimKey]:
    """Pending keys become active and the active ones retired, in one transaction; returns
    the keys that became active (none: there was nothing pending and nothing changed)."""
    name = normalize_domain(domain)
    async with conn.transaction():
        cur = await conn.execute(
            f"""
            WITH pending AS (
                SELECT k.id FROM dkim_keys k JOIN domains d ON d.id = k.domain_id
                WHERE d.name = %(domain)s AND k.state = 'pending'
                FOR UPDATE
            ), retired AS (
                UPDATE dkim_keys k SET state = 'retired', changed_at = now()
                FROM domains d
                WHERE d.id = k.domain_id AND d.name = %(domain)s AND k.state = 'active'
                  AND EXISTS (SELECT 1 FROM pending)
            ), promoted AS (
                UPDATE dkim_keys k SET state = 'active', changed_at = now()
                WHERE k.id IN (SELECT id FROM pending)
                RETURNING k.*
            )
            SELECT {_COLUMNS} FROM promoted k JOIN domains d ON d.id = k.domain_id
            ORDER BY k.selector
            """,
            {"domain": name},
        )
        return [_key(row) for row in await cur.fetchall()]


async def signing_keys(conn: Conn, domains: Sequence[str]) -> list[SigningKey]:
    """The active keys of those of ``domains`` that have any."""
    cur = await conn.execute(
        """
        SELECT d.name AS domain, k.selector, k.algorithm, k.sealed_key
        FROM dkim_keys k JOIN domains d ON d.id = k.domain_id
        WHERE d.name = ANY(%s) AND k.state = 'active'
        ORDER BY d.name, k.algorithm, k.selector
        """,
        (list(domains),),
    )
    return [
        SigningKey(r["domain"], r["selector"], r["algorithm"], bytes(r["sealed_key"]))
        for r in await cur.fetchall()
    ]
