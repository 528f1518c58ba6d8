"""A POP3 server on loopback for the integration tests: random ports, a test CA, real Postgres."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import trustme

from postroom import store
from postroom.access.pop3.server import Pop3Server
from postroom.config import load_settings
from postroom.db import create_pool
from postroom.store.types import MailboxId
from postroom.throttle import AuthThrottle
from postroom.tls import server_context
from tests.support import Tenant

T = TypeVar("T")


@dataclass
class Pop3Endpoint:
    host: str
    port: int
    tls_port: int
    ca_file: Path
    server: Pop3Server

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


@asynccontextmanager
async def running_pop3(
    database_url: str, folder: Path, throttle: AuthThrottle | None = None, **env: str
) -> AsyncIterator[Pop3Endpoint]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_file, key_file, ca_file = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    settings = load_settings(
        {
            "POSTROOM_HOSTNAME": "pop.postroom.test",
            "POSTROOM_DATABASE_URL": database_url,
            "POSTROOM_DATA_DIR": str(folder),
            "POSTROOM_TLS_CERT": str(cert_file),
            "POSTROOM_TLS_KEY": str(key_file),
            **env,
        }
    )
    pool = create_pool(database_url, max_size=8)
    await pool.open()
    server = Pop3Server(settings, pool, throttle or AuthThrottle(), server_context(settings))
    plain = await server.start("127.0.0.1", 0, implicit_tls=False)
    implicit = await server.start("127.0.0.1", 0, implicit_tls=True)
    try:
        yield Pop3Endpoint(
            "127.0.0.1",
            plain,
            implicit,
            ca_file,
            server,
        )
    finally:
        await server.stop(grace=2)
        await pool.close()


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking client (poplib, a subprocess) without stopping the server's loop."""
    return await asyncio.wait_for(asyncio.to_thread(fn, *args), timeout=60)


async def inbox_of(tenant: Tenant, local: str, password: str = "pw-1") -> tuple[str, MailboxId]:
    account = await tenant.account(local, password)
    box = await store.get_mailbox(tenant.conn, account.id, "INBOX")
    assert box is not None
    return account.address, box.id
