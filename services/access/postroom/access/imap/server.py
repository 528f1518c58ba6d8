"""The IMAP listeners: the shared connection layer wired to the command reader and session.

Connections, limits, clocks and TLS are `postroom.listener`'s. Here: feed the
`CommandReader`, hand commands to the `Session`, and carry out what it asks: the STARTTLS
handshake, the line after an AUTHENTICATE challenge, and IDLE, which waits on the account's
change notifications or the client's DONE, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import zlib
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from postroom import learning
from postroom import listener as L
from postroom.access.imap import parser as p
from postroom.access.imap.protocol import LoginRefused, Next, Session, State
from postroom.access.serving import POOL_TIMEOUT, ProtocolServer
from postroom.auth import plaintext_auth_allowed
from postroom.config import Settings
from postroom.db import Conn, require_url
from postroom.errors import StoreError
from postroom.login import LoginPath
from postroom.spool import InflightBudget, SpoolFile
from postroom.store.notify import ChangeHub, Subscription
from postroom.store.types import Account, AccountId
from postroom.throttle import AuthThrottle

log = structlog.get_logger("postroom.access.imap")

READ_SIZE = 64 * 1024
# RFC 4978 COMPRESS=DEFLATE: zlib's level 1, fast; mail text compresses well even so.
COMPRESS_LEVEL = 1
# IDLE looks at the mailbox this often even when no notification came.
IDLE_CHECK_INTERVAL = 60.0
_DB_ERRORS = (psycopg.Error, PoolTimeout, StoreError, OSError)


# How the login path's answers are given (RFC 5530 response codes).
_LOGIN_REFUSALS = {
    "wrong": "[AUTHENTICATIONFAILED] Authentication failed",
    "throttled": "[UNAVAILABLE] Too many failed logins, try again later",
    "unavailable": "[UNAVAILABLE] The mail store is unavailable",
}

# What ends a session by the server's decision (RFC 3501 §5.4: the autologout timer).
_CLOSING: dict[L.CloseReason, bytes] = {
    "idle": b"* BYE Autologout; idle for too long\r\n",
    "deadline": b"* BYE Autologout; no login in time\r\n",
    "slow": b"* BYE Autologout; sending too slowly\r\n",
    "shutdown": b"* BYE [UNAVAILABLE] Server shutting down\r\n",
    "revoked": b"* BYE [UNAVAILABLE] Credentials changed, log in again\r\n",
}


class ImapServer(ProtocolServer):
    """Serves IMAP for one process: the STARTTLS and implicit-TLS listeners share it."""

    protocol = "imap"

    def __init__(
        self,
        settings: Settings,
        pool: AsyncConnectionPool[Conn],
        hub: ChangeHub,
        *,
        throttle: AuthThrottle | None = None,
        tls: ssl.SSLContext | None = None,
        limits: L.ConnectionLimits | None = None,
        login: LoginPath | None = None,
    ) -> None:
        # RFC 3501 §5.4: an autologout timer of at least 30 minutes.
        self.idle_timeout = settings.imap_idle_timeout
        # APPEND literals being received by this process, at most POSTROOM_MAX_INFLIGHT_BYTES.
        self.budget = InflightBudget(settings.max_inflight_bytes)
        super().__init__(
            settings,
            pool,
            idle=self.idle_timeout,
            refusal=b"* BYE [UNAVAILABLE] Too many connections, try again later\r\n",
            throttle=throttle,
            tls=tls,
            limits=limits,
            login=login,
        )
        self.hub = hub
        self._per_account: Counter[AccountId] = Counter()
        # Large APPEND literals go to unlinked files here as they arrive (the reader's sink),
        # already counted against the budget by the reader.
        self.spool_folder = settings.data_dir / "imap-spool"

    def literal_sink(self) -> p.LiteralSink:
        return SpoolFile(self.spool_folder)

    async def handle(self, conn: L.Connection) -> None:
        await _Connection(self, conn).run()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        """A pooled connection in autocommit mode, as the store expects."""
        async with self.pool.connection(timeout=POOL_TIMEOUT) as conn:
            if not conn.autocommit:
                await conn.set_autocommit(True)
            yield conn


class _Connection:
    def __init__(self, server: ImapServer, client: L.Connection) -> None:
        self.server = server
        self.client = client
        self.ip = client.client_ip
        tls = client.tls is not None
        self.log = log.bind(session_id=client.id, client=self.ip)
        self.account: Account | None = None
        self.commands = self._command_reader()
        self.subscription: Subscription | None = None
        # RFC 4978: the two ends of COMPRESS=DEFLATE, once the client asked for it.
        self._deflate: zlib._Compress | None = None
        self._inflate: zlib._Decompress | None = None
        self._inflate_tail = b""
        settings = server.settings
        self.session = Session(
            send=self.send,
            connection=server.connection,
            authenticate=self.authenticate,
            tls=tls,
            tls_available=server.tls is not None,
            plaintext_allowed=plaintext_auth_allowed(
                tls=tls, peer_ip=self.ip, allow_plaintext=settings.allow_plaintext_auth
            ),
            hostname=settings.hostname,
            on_transfer=partial(learning.after_transfer, settings),
            append_limit=settings.max_message_size,
        )

    def _append_limit(self) -> int:
        """APPEND's message may be as large as a message once logged in; before, a stranger's
        literal is held to the size of any other (LITERAL+ sends it unasked)."""
        if self.account is None:
            return p.MAX_LITERAL_SIZE
        return self.server.settings.max_message_size

    def _command_reader(self) -> p.CommandReader:
        return p.CommandReader(
            max_append_size=self._append_limit(),
            budget=self.server.budget,
            literal_sink=self.server.literal_sink,
        )

    async def send(self, data: bytes) -> None:
        if self._deflate is not None:
            # RFC 4978 §4: each response flushed whole, so the client can read it at once.
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        await self.client.send(data)

    def _start_compression(self) -> None:
        """RFC 4978 §3: from the octet after the tagged OK, both ways are raw DEFLATE (RFC
        1951). Inside TLS when TLS is on (§6: the compressed stream goes through TLS)."""
        self._deflate = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, -15)
        self._inflate = zlib.decompressobj(-15)
        # Octets the client sent after COMPRESS, already read: they are compressed too.
        self._inflate_tail = self.commands.take_input()

    def _inflated(self, data: bytes) -> bytes:
        """Decompress what the client sent, at most READ_SIZE octets of output at a time
        (the rest waits in `_inflate_tail`): a small compressed input cannot make a large
        one in memory."""
        if self._inflate is None:
            return data
        out = self._inflate.decompress(self._inflate_tail + data, READ_SIZE)
        self._inflate_tail = self._inflate.unconsumed_tail
        return out

    async def _read(self, *, busy: bool) -> bytes | None:
        """The client's next octets, decompressed; None at EOF."""
        while True:
            if self._inflate_tail:
                data = self._inflated(b"")
                if data:
                    return data
            raw = await self.client.read(READ_SIZE, busy=busy)
            if not raw:
                return None
            data = self._inflated(raw)
            if data:
                return data
            if self._inflate is not None and self._inflate.eof:
                return None  # the client ended its compressed stream

    def _quick_ack(self) -> None:
        """Acknowledge the client's next segment at once, in the middle of a command.

        A client that writes a literal and the CRLF after it separately (imaplib does) has
        its CRLF held by Nagle's algorithm until the literal is acknowledged, and Linux
        delays that acknowledgement up to 40 ms when the server has nothing to send: each
        such APPEND would take 40 ms. Dovecot sets TCP_QUICKACK after each write for this.
        """
        sock = self.client.writer.get_extra_info("socket")
        quickack = getattr(socket, "TCP_QUICKACK", None)  # Linux only
        if sock is not None and quickack is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)

    async def authenticate(self, username: str, password: str) -> Account:
        server = self.server
        result = await server.login.login(username, password, client_ip=self.ip, service="imap")
        if result.account is None:
            raise LoginRefused(_LOGIN_REFUSALS[result.outcome])
        account = result.account
        if server._per_account[account.id] >= server.settings.imap_max_sessions_per_account:
            self.log.warning("imap.login.too_many_sessions", account=account.address)
            raise LoginRefused("[LIMIT] Too many sessions for this account")
        server._per_account[account.id] += 1
        self.client.logged_in(account.id, result.app_password_id)
        self.account = account
        self.commands.max_append_size = self._append_limit()
        self.log = self.log.bind(account=account.address)
        return account

    async def run(self) -> None:
        try:
            await self.send(self.session.greeting())
            await self._loop()
        except L.Closing as closing:
            with contextlib.suppress(Exception):
                await self.send(_CLOSING[closing.reason])
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            self.log.info("imap.connection.lost", error=str(exc))
        except _DB_ERRORS as exc:
            self.log.error("imap.store_unavailable", error=str(exc))
            with contextlib.suppress(Exception):
                await self.send(b"* BYE [UNAVAILABLE] The mail store is unavailable\r\n")
        except Exception:
            # A bug must end this session only, and with a word: the response in progress
            # may be cut short, so the connection cannot go on.
            self.log.exception("imap.session.failed")
            with contextlib.suppress(Exception):
                await self.send(b"\r\n* BYE [SERVERBUG] Internal error, closing\r\n")
        finally:
            await self.close()

    async def _next_event(self) -> p.Event | None:
        """The next reader event, reading from the client as needed; None at EOF."""
        while True:
            event = self.commands.next_event()
            if event is not None:
                return event
            busy = self.commands.buffered > 0
            if busy:
                self._quick_ack()
            # A command begun (a literal on its way) must keep coming at the minimum rate.
            data = await self._read(busy=busy)
            if data is None:
                return None
            self.commands.feed(data)

    async def _loop(self) -> None:
        while True:
            event = await self._next_event()
            if event is None:
                return
            if isinstance(event, p.NeedContinuation):
                await self.send(event.response())
                continue
            if isinstance(event, p.ParseError | p.TooBig):
                await self.send(event.response())
                continue
            if isinstance(event, p.Line):
                continue
            step = await self.session.handle(event)
            while step is not Next.READ:
                if step is Next.CLOSE:
                    return
                if step is Next.STARTTLS:
                    if not await self._start_tls():
                        return
                    step = Next.READ
                elif step is Next.AUTH_LINE:
                    self.commands.expect_line()
                    line = await self._next_event()
                    if line is None:
                        return
                    data = line.data if isinstance(line, p.Line) else b"*"
                    if isinstance(line, p.TooBig):
                        data = b"*"
                    step = await self.session.auth_response(data)
                elif step is Next.COMPRESS:
                    self._start_compression()
                    step = Next.READ
                elif step is Next.IDLE:
                    after = await self._idle()
                    if after is None:
                        return
                    step = after
            if self.session.state is State.LOGOUT:
                return

    async def _start_tls(self) -> bool:
        assert self.server.tls is not None
        # RFC 3501 §6.2.1: anything the client sent after STARTTLS is discarded, in this
        # reader and in the connection's buffer alike.
        discarded = self.commands.buffered
        self.commands.close()
        self.commands = self._command_reader()
        if not await self.client.start_tls(self.server.tls, discarded=discarded):
            return False
        self.session.tls_started()
        return True

    async def _idle(self) -> Next | None:
        """RFC 2177: announce changes until the client's DONE; None when the client left."""
        assert self.account is not None
        if self.subscription is None:
            self.subscription = self.server.hub.subscribe(self.account.id)
        subscription = self.subscription
        subscription.take()
        self.commands.expect_line()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.server.idle_timeout
        read: asyncio.Task[bytes] | None = None
        try:
            while True:
                event = self.commands.next_event()
                if event is not None:
                    data = event.data if isinstance(event, p.Line) else b""
                    return await self.session.idle_done(data)
                if self._inflate_tail:
                    self.commands.feed(self._inflated(b""))
                    continue
                if read is None:
                    read = asyncio.ensure_future(self.client.reader.read(READ_SIZE))
                # A missed notification (the hub reconnecting) costs at most one interval.
                wake = asyncio.ensure_future(subscription.wait(IDLE_CHECK_INTERVAL))
                timeout = deadline - loop.time()
                self.client.waiting = True  # shutdown may end an IDLE at once
                try:
                    done, _ = await asyncio.wait(
                        {read, wake}, timeout=max(timeout, 0), return_when=asyncio.FIRST_COMPLETED
                    )
                except asyncio.CancelledError:
                    wake.cancel()
                    self.client.interrupted()
                    raise
                finally:
                    self.client.waiting = False
                if wake in done:
                    notified = wake.result()
                    mailboxes, everything = subscription.take()
                    view = self.session.view
                    if not notified or everything or (view and view.mailbox.id in mailboxes):
                        await self.session.idle_changed()
                else:
                    wake.cancel()
                if read in done:
                    data = read.result()
                    read = None
                    if not data:
                        return None
                    self.commands.feed(self._inflated(data))
                elif not done:
                    await self.send(b"* BYE Autologout; idle for too long\r\n")
                    return None
                if self.session.state is State.LOGOUT:
                    await self.session.flush()
                    return None
        finally:
            if read is not None:
                read.cancel()

    async def close(self) -> None:
        self.commands.close()
        if self.subscription is not None:
            self.subscription.close()
        if self.account is not None:
            counts = self.server._per_account
            counts[self.account.id] -= 1
            if counts[self.account.id] <= 0:
                del counts[self.account.id]
            self.account = None


async def start(
    settings: Settings,
    pool: AsyncConnectionPool[Conn],
    hub: ChangeHub,
    *,
    throttle: AuthThrottle | None = None,
    tls: ssl.SSLContext | None = None,
    limits: L.ConnectionLimits | None = None,
    login: LoginPath | None = None,
    host: str | None = None,
    port: int | None = None,
    tls_port: int | None = None,
) -> ImapServer:
    """IMAP with STARTTLS on imap_port and IMAPS on imaps_port (when there is TLS)."""
    imap = ImapServer(settings, pool, hub, throttle=throttle, tls=tls, limits=limits, login=login)
    address = host or settings.bind_address
    await imap.start(address, settings.imap_port if port is None else port, implicit_tls=False)
    if tls is not None:
        await imap.start(
            address, settings.imaps_port if tls_port is None else tls_port, implicit_tls=True
        )
    return imap


@dataclass
class ImapListener:
    """The started IMAP ports of a process with their change hub."""

    imap: ImapServer
    hub: ChangeHub

    @property
    def listener(self) -> L.Listener:
        return self.imap.listener

    async def stop(self, grace: float = 10.0) -> None:
        await self.imap.stop(grace)
        await self.hub.stop()


async def start_listener(
    settings: Settings,
    pool: AsyncConnectionPool[Conn],
    throttle: AuthThrottle,
    tls: ssl.SSLContext | None,
    limits: L.ConnectionLimits,
    login: LoginPath | None = None,
) -> ImapListener:
    """The access process's IMAP ports, with one LISTEN connection for IDLE."""
    hub = ChangeHub(require_url(settings.database_url))
    await hub.start()
    imap = await start(settings, pool, hub, throttle=throttle, tls=tls, limits=limits, login=login)
    return ImapListener(imap, hub)
