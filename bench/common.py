"""What every benchmark needs: a fresh database, timing, and a table printer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from postroom.db import migrate

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
# The zones the benchmarks' DNS server answers for (every sender domain they use).
ZONES = ("test", "example", "example.org", "example.net", "example.com")


def _server_answers(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A migrated database of its own on POSTROOM_BENCH_DATABASE_URL's server (or the local
    Postgres, or an embedded one), dropped afterwards."""
    server = os.environ.get("POSTROOM_BENCH_DATABASE_URL") or os.environ.get(
        "POSTROOM_TEST_DATABASE_URL", DEFAULT_SERVER
    )
    with contextlib.ExitStack() as stack:
        if not _server_answers(server):
            from pgserver import get_server  # type: ignore[attr-defined]

            tmp = Path(tempfile.mkdtemp(prefix="postroom-bench-"))
            pg = get_server(tmp, cleanup_mode="delete")
            stack.callback(pg.cleanup)
            server = pg.get_uri()
        name = f"postroom_bench_{secrets.token_hex(4)}"
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        url = urlunsplit(urlsplit(server)._replace(path="/" + name))
        try:
            asyncio.run(migrate(url))
            yield url
        finally:
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def table(title: str, header: list[str], rows: list[list[object]]) -> str:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells[1:]]
    return "\n".join(lines)


@contextlib.contextmanager
def local_dns(records: Iterable[Any] = (), zones: Iterable[str] = ZONES) -> Iterator[str]:
    """A DNS server of the benchmark's own on loopback (dnsmasq, as the tests use), for
    ``POSTROOM_DNS_RESOLVERS``: smtp-in checks senders, and a benchmark never asks the
    machine's resolver."""
    from tests.dns_server import start_dns_server

    with (
        tempfile.TemporaryDirectory(prefix="bench-dns-") as name,
        start_dns_server(records, Path(name), zones=zones) as server,
    ):
        yield server.resolvers
