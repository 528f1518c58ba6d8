"""Connections to Postgres and the schema migrations that shape it."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from typing import Any, TypeAlias

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from postroom.errors import ConfigError, StoreError

Conn: TypeAlias = psycopg.AsyncConnection[dict[str, Any]]

# Any constant works; it only has to be the same for every process that migrates.
_MIGRATION_LOCK = 0x706F7374726F6F6D  # "postroom"
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class DatabaseUnavailable(StoreError):
    """Postgres could not be reached."""


def require_url(url: str | None) -> str:
    if not url:
        raise ConfigError(
            "POSTROOM_DATABASE_URL is not set (e.g. postgresql://postgres@127.0.0.1:5432/postroom)"
        )
    return url


async def connect(url: str, *, autocommit: bool = False) -> Conn:
    """One connection whose rows are dicts."""
    try:
        return await psycopg.AsyncConnection.connect(
            url, row_factory=dict_row, autocommit=autocommit
        )
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {_first_line(exc)}") from exc


def session_options(*, statement_timeout: timedelta | None = None) -> dict[str, str]:
    """Connection parameters that set a session's ``statement_timeout`` as it starts.

    Given as the libpq ``options`` at connect time, so it costs no round trip and holds for
    every statement of the connection, whatever the pool does with it. Zero or None: no limit.
    """
    if statement_timeout is None or statement_timeout <= timedelta(0):
        return {}
    milliseconds = max(1, int(statement_timeout.total_seconds() * 1000))
    return {"options": f"-c statement_timeout={milliseconds}"}


def create_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    statement_timeout: timedelta | None = None,
    recheck_after: float = 0.0,
) -> AsyncConnectionPool[Conn]:
    """A connection pool (not yet opened: ``await pool.open()`` or use it as a context).

    ``statement_timeout`` bounds every statement of its connections (see `session_options`).
    A connection is checked (a round trip) before it is handed out, unless it came back to
    the pool less than ``recheck_after`` seconds ago: a server whose every command takes a
    pooled connection (IMAP) saves a round trip a command while busy.
    """

    async def configure(conn: Conn) -> None:
        conn.row_factory = dict_row

    async def returned(conn: Conn) -> None:
        conn._postroom_returned_at = time.monotonic()  # type: ignore[attr-defined]

    async def check(conn: Conn) -> None:
        since = getattr(conn, "_postroom_returned_at", None)
        if since is not None and time.monotonic() - since < recheck_after and not conn.broken:
            return
        await AsyncConnectionPool.check_connection(conn)

    return AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        configure=configure,
        reset=returned if recheck_after > 0 else None,
        kwargs={"row_factory": dict_row, **session_options(statement_timeout=statement_timeout)},
        connection_class=psycopg.AsyncConnection[dict[str, Any]],
        check=check if recheck_after > 0 else AsyncConnectionPool.check_connection,
    )


@asynccontextmanager
async def connection(url: str) -> AsyncIterator[Conn]:
    conn = await connect(url)
    try:
        yield conn
    finally:
        await conn.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every migration shipped with this version, in order."""
    found = []
    for entry in resources.files("postroom.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions in {versions}")
    return found


async def migrate(url: str) -> list[Migration]:
    """Apply the migrations not yet applied, each once and in its own transaction.

    Safe to run from several processes at once: a session-level advisory lock serialises them,
    and the second one finds nothing left to do. Returns the migrations it applied.
    """
    conn = await connect(url, autocommit=True)
    applied: list[Migration] = []
    try:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            cur = await conn.execute("SELECT version FROM schema_migrations")
            done = {row["version"] for row in await cur.fetchall()}
            for migration in migrations():
                if migration.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql.encode())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
                applied.append(migration)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
    finally:
        await conn.close()
    return applied


async def schema_version(conn: Conn) -> int:
    """The highest applied migration, 0 for an empty database."""
    cur = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL AS present")
    row = await cur.fetchone()
    if not row or not row["present"]:
        return 0
    cur = await conn.execute("SELECT coalesce(max(version), 0) AS v FROM schema_migrations")
    row = await cur.fetchone()
    return int(row["v"]) if row else 0
