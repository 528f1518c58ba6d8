"""IMAP for the integration tests: a session driven without sockets, and a loopback server."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trustme

from postroom import store
from postroom.access.imap import parser as p
from postroom.access.imap.protocol import LoginRefused, Next, Session
from postroom.access.imap.server import ImapServer
from postroom.config import load_settings
from postroom.db import Conn, create_pool
from postroom.store.notify import ChangeHub
from postroom.store.types import Account
from postroom.throttle import AuthThrottle
from postroom.tls import server_context


@dataclass
class Transcript:
    """A session fed command lines; each call returns what the server wrote, as text."""

    conn: Conn
    plaintext_allowed: bool = True
    tls: bool = False
    written: bytearray = field(default_factory=bytearray)
    session: Session = field(init=False)
    reader: p.CommandReader = field(default_factory=p.CommandReader)
    step: Next = Next.READ

    def __post_init__(self) -> None:
        @asynccontextmanager
        async def connection() -> AsyncIterator[Conn]:
            yield self.conn

        async def send(data: bytes) -> None:
            self.written += data

        async def authenticate(username: str, password: str) -> Account:
            try:
                return await store.authenticate(self.conn, username, password)
            except Exception:
                raise LoginRefused("[AUTHENTICATIONFAILED] Authentication failed") from None

        self.session = Session(
            send=send,
            connection=connection,
            authenticate=authenticate,
            tls=self.tls,
            plaintext_allowed=self.plaintext_allowed,
        )

    async def send(self, text: str | bytes) -> str:
        """Feed a command (CRLF added to text), answer every event, return the output."""
        data = text.encode() + b"\r\n" if isinstance(text, str) else text
        self.reader.feed(data)
        while (event := self.reader.next_event()) is not None:
            if isinstance(event, p.NeedContinuation | p.ParseError | p.TooBig):
                self.written += event.response()
            elif isinstance(event, p.Line):
                if self.step is Next.AUTH_LINE:
                    self.step = await self.session.auth_response(event.data)
                elif self.step is Next.IDLE:
                    self.step = await self.session.idle_done(event.data)
            else:
                self.step = await self.session.handle(event)
            if self.step in (Next.AUTH_LINE, Next.IDLE):
                self.reader.expect_line()
        out = self.written.decode("utf-8", "replace")
        self.written.clear()
        return out

    async def lines(self, text: str | bytes) -> list[str]:
        return (await self.send(text)).removesuffix("\r\n").split("\r\n")


@dataclass
class ImapEndpoint:
    host: str
    port: int
    tls_port: int
    ca_file: Path
    server: ImapServer

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


@asynccontextmanager
async def running_imap(
    database_url: str, folder: Path, throttle: AuthThrottle | None = None, **env: str
) -> AsyncIterator[ImapEndpoint]:
    ca = trustme.CA()
    # mbsync 1.4 insists on a common name.
    cert = ca.issue_cert("localhost", "127.0.0.1", common_name="127.0.0.1")
    cert_file, key_file, ca_file = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    settings = load_settings(
        {
            "POSTROOM_HOSTNAME": "imap.postroom.test",
            "POSTROOM_DATABASE_URL": database_url,
            "POSTROOM_DATA_DIR": str(folder),
            "POSTROOM_TLS_CERT": str(cert_file),
            "POSTROOM_TLS_KEY": str(key_file),
            **env,
        }
    )
    pool = create_pool(database_url, max_size=8, statement_timeout=settings.statement_timeout)
    await pool.open()
    hub = ChangeHub(database_url)
    await hub.start()
    await asyncio.wait_for(hub.listening.wait(), 10)
    server = ImapServer(
        settings, pool, hub, throttle=throttle or AuthThrottle(), tls=server_context(settings)
    )
    plain = await server.start("127.0.0.1", 0, implicit_tls=False)
    implicit = await server.start("127.0.0.1", 0, implicit_tls=True)
    try:
        yield ImapEndpoint(
            "127.0.0.1",
            plain,
            implicit,
            ca_file,
            server,
        )
    finally:
        await server.stop(grace=2)
        await hub.stop()
        await pool.close()


def message(subject: str = "Hello", body: str = "Hi there.\r\n", **headers: str) -> bytes:
    """A small text/plain message; its Message-ID is ``<subject@example.test>``."""
    fields = {
        "From": "Alice <alice@example.test>",
        "To": "bob@example.test",
        "Subject": subject,
        "Date": "Mon, 7 Feb 1994 21:52:25 +0000",
        "Message-ID": f"<{subject}@example.test>",
        **headers,
    }
    head = "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return (head + "\r\n" + body).encode()
