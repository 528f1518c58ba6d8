"""The POP3 listeners: the shared connection layer wired to the sans-I/O session and the store."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncGenerator, AsyncIterator

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from postroom import listener as L
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
from postroom.access.serving import POOL_TIMEOUT, ProtocolServer
from postroom.auth import plaintext_auth_allowed
from postroom.config import Settings
from postroom.db import Conn
from postroom.errors import NotFound, StoreError
from postroom.login import LoginPath
from postroom.store.types import AccountId, MailboxId
from postroom.throttle import AuthThrottle

log = structlog.get_logger("postroom.access.pop3")

# Chunks of a message read from the store and written to the socket at a time.
CHUNK_SIZE = 256 * 1024
# Clients mostly RETR one message after another: the next small messages come with the one
# asked for, in one query, up to this many and this many bytes a batch. While a batch is
# being sent, the following one is already being read (at most two batches held a session).
READ_AHEAD_COUNT = 16
READ_AHEAD_BYTES = 1024 * 1024
# Errors of the database that make a login or an update fail for now, not for ever.
_DB_ERRORS = (psycopg.Error, PoolTimeout, StoreError, OSError)


# How the login path's answers are given (RFC 2449 §8, RFC 3206).
_LOGIN_FAILURES: dict[str, LoginFailure] = {
    "wrong": "auth",
    "throttled": "locked-out",
    "unavailable": "temp",
}
R_TOO_MANY = b"-ERR [SYS/TEMP] Too many connections, try again later\r\n"
# What ends a session by the server's decision (RFC 1939 §3: the autologout timer).
_CLOSING: dict[L.CloseReason, bytes] = {
    "idle": b"-ERR Disconnected for inactivity\r\n",
    "deadline": b"-ERR Disconnected for inactivity\r\n",
    "slow": b"-ERR Disconnected for inactivity\r\n",
    "shutdown": b"-ERR [SYS/TEMP] Server shutting down\r\n",
    "revoked": b"-ERR [AUTH] Credentials changed, log in again\r\n",
}


class Pop3Server(ProtocolServer):
    """Serves POP3 for one process: the plain (STLS) and implicit-TLS ports share it. At
    shutdown nothing marked deleted is removed (no UPDATE)."""

    protocol = "pop3"

    def __init__(
        self,
        settings: Settings,
        pool: AsyncConnectionPool[Conn],
        throttle: AuthThrottle,
        tls: ssl.SSLContext | None,
        *,
        limits: L.ConnectionLimits | None = None,
        login: LoginPath | None = None,
    ) -> None:
        super().__init__(
            settings,
            pool,
            idle=settings.pop3_idle_timeout,
            refusal=R_TOO_MANY,
            throttle=throttle,
            tls=tls,
            limits=limits,
            login=login,
        )

    async def handle(self, conn: L.Connection) -> None:
        await _Connection(self, conn).run()


class _Connection:
    """One client connection: reads lines, feeds the session, carries out its requests."""

    def __init__(self, server: Pop3Server, conn: L.Connection) -> None:
        self.server = server
        self.client = conn
        self.ip = conn.client_ip
        implicit_tls = conn.tls is not None
        self.session = Pop3Session(
            hostname=server.settings.hostname,
            tls_available=server.tls is not None,
            tls_active=implicit_tls,
            plaintext_allowed_without_tls=plaintext_auth_allowed(
                tls=False, peer_ip=self.ip, allow_plaintext=server.settings.allow_plaintext_auth
            ),
        )
        self.log = log.bind(session_id=conn.id, client=self.ip, tls=implicit_tls)
        # Held from login to the end: the maildrop lock lives on this connection.
        self.conn: Conn | None = None
        self.account_id: AccountId | None = None
        self.mailbox_id: MailboxId | None = None
        self.entries: list[Entry] = []  # the session's messages, by number - 1
        self.read_ahead: dict[int, bytes] = {}  # UID -> content fetched before it was asked
        # The batch being read meanwhile, from this index of `entries` on, and its query.
        self.next_batch: asyncio.Task[dict[int, bytes]] | None = None
        self.next_index = 0
        # The next message's reply after its status line, stuffed before it was asked for.
        self.prepared: tuple[int, tuple[bytes, bytes]] | None = None
        self.closing = False
        self._buf = bytearray()
        self._skipping = False  # discarding an overlong line up to its LF

    async def run(self) -> None:
        self.log.info("pop3.connected")
        try:
            self.client.write(self.session.greeting())
            while not self.closing:
                try:
                    line = await self._read_line()
                except L.Closing as closing:
                    self.log.info("pop3.closing", reason=closing.reason)
                    if closing.reason == "idle":
                        await self._carry_out(self.session.idle_timeout())
                    else:
                        await self.client.send(_CLOSING[closing.reason])
                    break
                if line is None:
                    await self._carry_out(self.session.line_too_long())
                    continue
                if not line:
                    break  # the client went away
                await self._carry_out(self.session.receive_line(line))
        except (ConnectionError, ssl.SSLError) as exc:
            self.log.info("pop3.connection.lost", error=type(exc).__name__)
        except _DB_ERRORS as exc:
            # Mid-response (a RETR): the reply cannot be finished, so the connection ends.
            self.log.error("pop3.store_error", error=str(exc))
        finally:
            await self._release()
            self.log.info("pop3.disconnected")

    async def _read_line(self) -> bytes | None:
        """The next line with its LF; b"" at EOF; None when it was longer than MAX_LINE."""
        buf = self._buf
        while True:
            end = buf.find(b"\n")
            if end >= 0:
                line = bytes(buf[: end + 1])
                del buf[: end + 1]
                if self._skipping:
                    self._skipping = False
                    return None
                return line
            if len(buf) > MAX_LINE:
                # Throw away the rest of the overlong line, however long.
                buf.clear()
                self._skipping = True
            await self.client.drain()
            data = await self.client.read(busy=bool(buf) or self._skipping)
            if not data:
                return b"" if not buf else bytes(buf)
            buf += data

    async def _carry_out(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Send):
                self.client.write(event.data)
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
        await self.client.drain()

    async def _start_tls(self) -> None:
        assert self.server.tls is not None
        await self.client.drain()
        # RFC 2595 §4 / CVE-2011-0411: nothing the client sent before TLS may be read after.
        discarded = len(self._buf)
        self._buf.clear()
        if not await self.client.start_tls(self.server.tls, discarded=discarded):
            await self._carry_out(self.session.tls_failed())
            return
        self.session.tls_started()
        self.log = self.log.bind(tls=True)

    async def _login(self, login: Login) -> list[Event]:
        result = await self.server.login.login(
            login.user, login.password, client_ip=self.ip, service="pop3"
        )
        if result.account is None:
            return self.session.login_failed(_LOGIN_FAILURES[result.outcome])
        account = result.account
        outcome: LoginFailure | None = None
        conn: Conn | None = None
        try:
            conn = await self.server.pool.getconn(timeout=POOL_TIMEOUT)
            if not conn.autocommit:
                await conn.set_autocommit(True)
            if not await store.try_lock_maildrop(conn, account.id):
                outcome = "in-use"
            else:
                self.conn, self.account_id = conn, account.id
                inbox = await store.get_mailbox(conn, account.id, "INBOX")
                if inbox is None:
                    raise NotFound("the account has no INBOX")
                messages = await store.list_messages(conn, inbox.id)
                self.mailbox_id, uid_validity = inbox.id, inbox.uid_validity
        except _DB_ERRORS as exc:
            self.log.error("pop3.login.store_error", error=str(exc))
            outcome = "temp"
        if outcome is not None:
            self.log.info("pop3.login.failed", reason=outcome)
            locked_by_us = self.account_id if self.conn is conn else None
            self.conn = self.account_id = None
            await self._give_back(conn, locked_by_us)
            return self.session.login_failed(outcome)
        self.client.logged_in(self.account_id, result.app_password_id)
        self.log = self.log.bind(account_id=self.account_id)
        self.log.info("pop3.login", account=account.address, messages=len(messages))
        self.entries = [Entry(m.uid, m.size) for m in messages]
        return self.session.login_succeeded(self.entries, uid_validity)

    async def _send_message(self, event: SendMessage) -> None:
        assert self.conn is not None
        assert self.mailbox_id is not None
        if event.size <= CHUNK_SIZE:
            # Most mail: one query for the whole message (or none: read ahead), and the
            # status line, the stuffed message and the terminator in one write.
            prepared, self.prepared = self.prepared, None
            if prepared is not None and prepared[0] == event.uid and event.body_lines is None:
                self.client.write(b"".join((event.header, *prepared[1])))
            else:
                try:
                    raw = await self._small_message(event)
                except NotFound:
                    self.client.write(f"-ERR Message {event.number} is gone\r\n".encode())
                    return
                if event.body_lines is not None:
                    raw = TopFilter(event.body_lines).feed(raw)
                self.client.write(b"".join((event.header, *_stuffed(raw))))
            if event.body_lines is None:
                self._prepare(event.number)
            return
        self.read_ahead |= await self._settle()
        chunks = store.read_raw_chunks(self.conn, self.mailbox_id, event.uid, chunk_size=CHUNK_SIZE)
        try:
            first = await anext(chunks, b"")
        except NotFound:
            # Removed meanwhile by another client (IMAP EXPUNGE, the web UI).
            self.client.write(f"-ERR Message {event.number} is gone\r\n".encode())
            return
        stuffer = DotStuffer()
        top = TopFilter(event.body_lines) if event.body_lines is not None else None
        self.client.write(event.header)
        await self._write_chunks(_prepend(first, chunks), stuffer, top)
        self.client.write(stuffer.end())

    async def _small_message(self, event: SendMessage) -> bytes:
        """A message of at most CHUNK_SIZE, from the batch read ahead when it is there."""
        raw = self.read_ahead.pop(event.uid, None)
        if raw is None and self.next_batch is not None:
            self.read_ahead = await self._settle()
            raw = self.read_ahead.pop(event.uid, None)
        if raw is None:
            # Not read ahead (the first RETR, or out of order): a batch from this one on.
            index = event.number - 1
            end = self._batch_end(index)
            assert self.conn is not None
            assert self.mailbox_id is not None
            uids = [entry.uid for entry in self.entries[index:end]]
            self.read_ahead = await store.fetch_raw_many(self.conn, self.mailbox_id, uids)
            self.next_index = end
            raw = self.read_ahead.pop(event.uid, None)
            if raw is None:
                raise NotFound(f"no message with UID {event.uid}")
        if self.next_batch is None:
            self._read_next_batch()
        return raw

    def _prepare(self, index: int) -> None:
        """Stuff the message at ``index`` of `entries` (the one after a RETR's) when it was
        read ahead, while the client reads the reply: its RETR then only has to write it."""
        if index < len(self.entries):
            uid = self.entries[index].uid
            raw = self.read_ahead.pop(uid, None)
            if raw is not None:
                self.prepared = (uid, _stuffed(raw))

    def _batch_end(self, index: int) -> int:
        """The end (exclusive) of the batch of small messages starting at ``index``."""
        end, total = index, 0
        for entry in self.entries[index : index + READ_AHEAD_COUNT]:
            if entry.size > CHUNK_SIZE or (end > index and total + entry.size > READ_AHEAD_BYTES):
                break
            end, total = end + 1, total + entry.size
        return end

    def _read_next_batch(self) -> None:
        """Start reading the batch after the one held, while the held one is sent."""
        index = self.next_index
        end = self._batch_end(index)
        if end == index:
            return  # the end of the maildrop, or a large message (streamed when asked)
        assert self.conn is not None
        assert self.mailbox_id is not None
        uids = [entry.uid for entry in self.entries[index:end]]
        self.next_batch = asyncio.ensure_future(
            store.fetch_raw_many(self.conn, self.mailbox_id, uids)
        )
        self.next_index = end

    async def _settle(self) -> dict[int, bytes]:
        """Wait for the batch being read (before the connection is used for anything else).
        Its failure is not the caller's: what it should have read is read again when asked."""
        task, self.next_batch = self.next_batch, None
        if task is None:
            return {}
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.cancel()
            raise
        except _DB_ERRORS:
            return {}

    async def _write_chunks(
        self, chunks: AsyncIterator[bytes], stuffer: DotStuffer, top: TopFilter | None
    ) -> None:
        async for chunk in chunks:
            data = top.feed(chunk) if top is not None else chunk
            self.client.write(stuffer.feed(data))
            await self.client.drain()
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
        await self._settle()
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
        try:
            await self._settle()
        finally:
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


def _stuffed(raw: bytes) -> tuple[bytes, bytes]:
    """A whole message byte-stuffed, and the terminator (RFC 1939 §3)."""
    stuffer = DotStuffer()
    return stuffer.feed(raw), stuffer.end()


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk
