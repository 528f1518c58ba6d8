"""The POP3 listeners: asyncio connections wired to the sans-I/O session and the mail store."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from postroom import store
from postroom.access.pop3.protocol import (
    MAX_LINE,
    Close,
    DotStuffer,
    Entry,
    Event,
    Login,
    LoginFailure,
    Pop3Session,
    Send,
    SendMessage,
    StartTls,
    TopFilter,
    Update,
)
from postroom.auth import plaintext_auth_allowed
from postroom.config import Settings
from postroom.db import Conn
from postroom.errors import AuthenticationFailed, NotFound, StoreError
from postroom.store.types import AccountId, MailboxId
from postroom.throttle import AuthThrottle

log = structlog.get_logger("postroom.access.pop3")

# Chunks of a message read from the store and written to the socket at a time.
CHUNK_SIZE = 256 * 1024
# Clients mostly RETR one message after another: the next small messages come with the one
# asked for, in one query, up to this many and this many bytes held per session.
READ_AHEAD_COUNT = 16
READ_AHEAD_BYTES = 1024 * 1024
TLS_HANDSHAKE_TIMEOUT = 30.0
# How long a login waits for a free database connection before answering [SYS/TEMP].
POOL_TIMEOUT = 10.0
# Errors of the database that make a login or an update fail for now, not for ever.
_DB_ERRORS = (psycopg.Error, PoolTimeout, StoreError, OSError)


class Pop3Server:
    """Serves POP3 for one process: the plain (STLS) and implicit-TLS listeners share it."""

    def __init__(
        self,
        settings: Settings,
        pool: AsyncConnectionPool[Conn],
        throttle: AuthThrottle,
        tls: ssl.SSLContext | None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.throttle = throttle
        self.tls = tls
        self.idle_timeout = settings.pop3_idle_timeout
        self._per_ip: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int, *, implicit_tls: bool) -> asyncio.Server:
        """Listen on host:port (port 0 picks a free one); implicit TLS for POP3S."""
        if implicit_tls and self.tls is None:
            raise ValueError("POP3S needs a TLS context")

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            try:
                await self.handle(reader, writer, implicit_tls=implicit_tls)
            except asyncio.CancelledError:
                # Shutdown ends the session without UPDATE; asyncio's stream callback would
                # log a cancelled connection task as an error.
                pass
            finally:
                self._tasks.discard(task)

        return await asyncio.start_server(
            on_connect,
            host,
            port,
            ssl=self.tls if implicit_tls else None,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if implicit_tls else None,
            limit=MAX_LINE,
        )

    async def close_sessions(self) -> None:
        """End every open session (no UPDATE: nothing marked deleted is removed)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, implicit_tls: bool
    ) -> None:
        peer = writer.get_extra_info("peername")
        ip = str(peer[0]) if peer else None
        connection = _Connection(self, reader, writer, ip, implicit_tls)
        key = ip or "?"
        total = sum(self._per_ip.values())
        if total >= self.settings.max_connections or (
            self._per_ip[key] >= self.settings.max_connections_per_ip
        ):
            log.warning("pop3.connection.refused", client=ip, reason="too many connections")
            with contextlib.suppress(OSError):
                writer.write(b"-ERR [SYS/TEMP] Too many connections, try again later\r\n")
                await writer.drain()
            await connection.close()
            return
        self._per_ip[key] += 1
        try:
            await connection.run()
        finally:
            self._per_ip[key] -= 1
            if self._per_ip[key] <= 0:
                del self._per_ip[key]


class _Connection:
    """One client connection: reads lines, feeds the session, carries out its requests."""

    def __init__(
        self,
        server: Pop3Server,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        ip: str | None,
        implicit_tls: bool,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.ip = ip
        self.session = Pop3Session(
            hostname=server.settings.hostname,
            tls_available=server.tls is not None,
            tls_active=implicit_tls,
            plaintext_allowed_without_tls=plaintext_auth_allowed(
                tls=False, peer_ip=ip, allow_plaintext=server.settings.allow_plaintext_auth
            ),
        )
        self.log = log.bind(session_id=secrets.token_hex(6), client=ip, tls=implicit_tls)
        # Held from login to the end: the maildrop lock lives on this connection.
        self.conn: Conn | None = None
        self.account_id: AccountId | None = None
        self.mailbox_id: MailboxId | None = None
        self.entries: list[Entry] = []  # the session's messages, by number - 1
        self.read_ahead: dict[int, bytes] = {}  # UID -> content fetched before it was asked
        self.closing = False

    async def run(self) -> None:
        self.log.info("pop3.connected")
        try:
            self.writer.write(self.session.greeting())
            while not self.closing:
                try:
                    async with asyncio.timeout(self.server.idle_timeout):
                        line = await self._read_line()
                except TimeoutError:
                    self.log.info("pop3.timeout")
                    await self._carry_out(self.session.idle_timeout())
                    break
                if line is None:
                    await self._carry_out(self.session.line_too_long())
                    continue
                if not line:
                    break  # the client went away
                await self._carry_out(self.session.receive_line(line))
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
            self.log.info("pop3.connection.lost", error=type(exc).__name__)
        except _DB_ERRORS as exc:
            # Mid-response (a RETR): the reply cannot be finished, so the connection ends.
            self.log.error("pop3.store_error", error=str(exc))
        finally:
            await self._release()
            await self.close()
            self.log.info("pop3.disconnected")

    async def _read_line(self) -> bytes | None:
        """The next line with its LF; b"" at EOF; None when it was longer than MAX_LINE."""
        try:
            return await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            return b"" if not exc.partial else exc.partial
        except asyncio.LimitOverrunError as exc:
            await self.reader.readexactly(exc.consumed)
            # Throw away the rest of the overlong line, however long.
            while True:
                try:
                    await self.reader.readuntil(b"\n")
                    return None
                except asyncio.LimitOverrunError as more:
                    await self.reader.readexactly(more.consumed)

    async def _carry_out(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Send):
                self.writer.write(event.data)
            elif isinstance(event, SendMessage):
                await self._send_message(event)
            elif isinstance(event, Login):
                await self._carry_out(await self._login(event))
            elif isinstance(event, Update):
                await self._carry_out(self.session.update_done(await self._update(event)))
            elif isinstance(event, StartTls):
                await self._start_tls()
            elif isinstance(event, Close):
                self.closing = True
                break
        await self.writer.drain()

    async def _start_tls(self) -> None:
        assert self.server.tls is not None
        # RFC 2595 §4 / CVE-2011-0411: nothing the client sent before TLS may be read after.
        if getattr(self.reader, "_buffer", b""):
            self.log.warning("pop3.stls.pipelined")
            await self._carry_out(self.session.tls_failed())
            return
        await self.writer.drain()
        try:
            await self.writer.start_tls(
                self.server.tls, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT
            )
        except (ssl.SSLError, ConnectionError, TimeoutError) as exc:
            self.log.info("pop3.stls.failed", error=type(exc).__name__)
            await self._carry_out(self.session.tls_failed())
            return
        self.session.tls_started()
        self.log = self.log.bind(tls=True)

    async def _login(self, login: Login) -> list[Event]:
        throttle, ip = self.server.throttle, self.ip
        await throttle.refresh(ip, login.user)
        if throttle.locked(ip, login.user):
            self.log.warning("pop3.login.locked_out", user=login.user)
            return self.session.login_failed("locked-out")
        delay = throttle.delay(ip, login.user)
        if delay:
            await asyncio.sleep(delay)
        outcome: LoginFailure | None = None
        conn: Conn | None = None
        try:
            conn = await self.server.pool.getconn(timeout=POOL_TIMEOUT)
            if not conn.autocommit:
                await conn.set_autocommit(True)
            account = await store.authenticate(conn, login.user, login.password)
            throttle.success(ip, login.user)
            if not await store.try_lock_maildrop(conn, account.id):
                outcome = "in-use"
            else:
                self.conn, self.account_id = conn, account.id
                inbox = await store.get_mailbox(conn, account.id, "INBOX")
                if inbox is None:
                    raise NotFound("the account has no INBOX")
                messages = await store.list_messages(conn, inbox.id)
                self.mailbox_id, uid_validity = inbox.id, inbox.uid_validity
        except AuthenticationFailed:
            throttle.failure(ip, login.user)
            outcome = "auth"
        except _DB_ERRORS as exc:
            self.log.error("pop3.login.store_error", error=str(exc))
            outcome = "temp"
        if outcome is not None:
            self.log.info("pop3.login.failed", user=login.user, reason=outcome)
            locked_by_us = self.account_id if self.conn is conn else None
            self.conn = self.account_id = None
            await self._give_back(conn, locked_by_us)
            return self.session.login_failed(outcome)
        self.log = self.log.bind(account_id=self.account_id)
        self.log.info("pop3.login", user=login.user, messages=len(messages))
        self.entries = [Entry(m.uid, m.size) for m in messages]
        return self.session.login_succeeded(self.entries, uid_validity)

    async def _send_message(self, event: SendMessage) -> None:
        assert self.conn is not None
        assert self.mailbox_id is not None
        chunks: AsyncIterator[bytes]
        if event.size <= CHUNK_SIZE:
            # Most mail: one query for the whole message instead of one per chunk.
            chunks = _whole(self._small_message(event))
        else:
            chunks = store.read_raw_chunks(
                self.conn, self.mailbox_id, event.uid, chunk_size=CHUNK_SIZE
            )
        try:
            first = await anext(chunks, b"")
        except NotFound:
            # Removed meanwhile by another client (IMAP EXPUNGE, the web UI).
            self.writer.write(f"-ERR Message {event.number} is gone\r\n".encode())
            return
        stuffer = DotStuffer()
        top = TopFilter(event.body_lines) if event.body_lines is not None else None
        self.writer.write(event.header)
        await self._write_chunks(_prepend(first, chunks), stuffer, top)
        self.writer.write(stuffer.end())

    async def _small_message(self, event: SendMessage) -> bytes:
        """A message of at most CHUNK_SIZE, with the next small ones read ahead."""
        assert self.conn is not None
        assert self.mailbox_id is not None
        raw = self.read_ahead.pop(event.uid, None)
        if raw is not None:
            return raw
        uids, total = [event.uid], event.size
        for entry in self.entries[event.number : event.number + READ_AHEAD_COUNT]:
            if entry.size > CHUNK_SIZE or total + entry.size > READ_AHEAD_BYTES:
                break
            uids.append(entry.uid)
            total += entry.size
        found = await store.fetch_raw_many(self.conn, self.mailbox_id, uids)
        raw = found.pop(event.uid, None)
        if raw is None:
            raise NotFound(f"no message with UID {event.uid}")
        self.read_ahead = found
        return raw

    async def _write_chunks(
        self, chunks: AsyncIterator[bytes], stuffer: DotStuffer, top: TopFilter | None
    ) -> None:
        async for chunk in chunks:
            data = top.feed(chunk) if top is not None else chunk
            self.writer.write(stuffer.feed(data))
            await self.writer.drain()
            if top is not None and top.done:
                # Stop the store's reader early (its remaining chunks are not needed).
                aclose = getattr(chunks, "aclose", None)
                if aclose is not None:
                    await aclose()
                break

    async def _update(self, update: Update) -> bool:
        """RFC 1939 §6: remove the messages marked deleted; RETR'd ones become \\Seen."""
        assert self.conn is not None
        assert self.mailbox_id is not None
        try:
            if update.seen_uids:
                await store.store_flags(
                    self.conn, self.mailbox_id, update.seen_uids, ["\\Seen"], "add"
                )
            if update.delete_uids:
                await store.delete_messages(self.conn, self.mailbox_id, update.delete_uids)
        except _DB_ERRORS as exc:
            self.log.error("pop3.update.failed", error=str(exc))
            return False
        self.log.info("pop3.update", deleted=len(update.delete_uids), seen=len(update.seen_uids))
        return True

    async def _release(self) -> None:
        """End of the session: unlock the maildrop, give the connection back."""
        conn, account_id = self.conn, self.account_id
        self.conn = self.account_id = None
        await self._give_back(conn, account_id)

    async def _give_back(self, conn: Conn | None, account_id: AccountId | None) -> None:
        if conn is None:
            return
        try:
            if account_id is not None:
                await store.unlock_maildrop(conn, account_id)
        except BaseException as exc:
            # Not unlocked (a broken connection, or cancelled at shutdown): closing the
            # connection drops the lock with it, and the pool discards a closed connection.
            await conn.close()
            await self.server.pool.putconn(conn)
            if isinstance(exc, _DB_ERRORS):
                return
            raise
        await self.server.pool.putconn(conn)

    async def close(self) -> None:
        with contextlib.suppress(OSError, ssl.SSLError, ConnectionError):
            self.writer.close()
            async with asyncio.timeout(5):
                await self.writer.wait_closed()


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


async def _whole(message: Awaitable[bytes]) -> AsyncGenerator[bytes, None]:
    yield await message
