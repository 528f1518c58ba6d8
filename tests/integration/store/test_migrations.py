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
