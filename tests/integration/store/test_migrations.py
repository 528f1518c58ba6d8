"""Schema migrations: applied once each, in order, safely from concurrent processes."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import psycopg
import pytest

from postroom.db import connect, migrate, migrations, schema_version
from tests.conftest import with_database


@pytest.fixture
def empty_database(_servers: dict[str, str]) -> Iterator[str]:
    name = f"postroom_mig_{secrets.token_hex(4)}"
    with psycopg.connect(_servers["pg"], autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield with_database(_servers["pg"], name)
    with psycopg.connect(_servers["pg"], autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migration_versions_are_unique_and_ordered() -> None:
    versions = [m.version for m in migrations()]
    assert versions == sorted(set(versions))
    assert versions[0] == 1


async def test_migrate_twice_applies_nothing_the_second_time(empty_database: str) -> None:
    first = await migrate(empty_database)
    second = await migrate(empty_database)
    assert [m.version for m in first] == [m.version for m in migrations()]
    assert second == []


async def test_concurrent_migrations_apply_each_once(empty_database: str) -> None:
    results = await asyncio.gather(*(migrate(empty_database) for _ in range(3)))
    applied = sorted(m.version for result in results for m in result)
    assert applied == [m.version for m in migrations()]
    conn = await connect(empty_database)
    try:
        assert await schema_version(conn) == migrations()[-1].version
    finally:
        await conn.close()


async def test_conversations_are_backfilled_for_messages_stored_before(
    empty_database: str,
) -> None:
    """Migration 0085 gives stored messages their conversation: one per References root."""
    from postroom import store

    conn = await connect(empty_database, autocommit=True)
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in migrations():
            if migration.version < 85:
                await conn.execute(migration.sql.encode())
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
        await store.create_domain(conn, "old.test")
        account = await store.create_account(conn, "alice@old.test", "secret-1")
        box = await store.get_mailbox(conn, account.id, "INBOX")
        assert box is not None
        uids = []
        for mid, links in [
            ("<a1@x>", ""),
            ("<a2@x>", "In-Reply-To: <a1@x>\r\n"),
            ("<b1@x>", ""),
            ("<a3@x>", "References: <a1@x> <a2@x>\r\n"),
            (None, ""),
        ]:
            header = f"Message-ID: {mid}\r\n" if mid else ""
            raw = f"From: x@y.test\r\nSubject: s\r\n{header}{links}\r\nhi\r\n".encode()
            uids.append((await store.append_message(conn, box.id, raw)).uid)
        await migrate(empty_database)
        cur = await conn.execute(
            "SELECT uid, thread_id FROM messages WHERE mailbox_id = %s ORDER BY uid", (box.id,)
        )
        threads = [r["thread_id"] for r in await cur.fetchall()]
        assert threads[0] == threads[1] == threads[3]
        assert len({threads[0], threads[2], threads[4]}) == 3
        # New messages get ids the backfill did not hand out.
        later = await store.append_message(conn, box.id, b"Subject: new\r\n\r\nhi\r\n")
        cur = await conn.execute(
            "SELECT thread_id FROM messages WHERE mailbox_id = %s AND uid = %s",
            (box.id, later.uid),
        )
        row = await cur.fetchone()
        assert row is not None
        assert row["thread_id"] not in threads
    finally:
        await conn.close()
