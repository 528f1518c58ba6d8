"""One SMTP session: reads commands off a connection, applies protocol and policy, spools mail.

The rules live in ``protocol`` (syntax, sequence, AUTH, DATA framing) and ``policy`` (relay,
sender ownership, limits); this module does the I/O between them, the socket and the store.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool

from postroom import store
from postroom.auth import plaintext_auth_allowed
from postroom.config import Settings
from postroom.db import Conn
from postroom.errors import AuthenticationFailed, StoreError
from postroom.queue import AsyncPublisher
from postroom.runtime import redis_url
from postroom.smtp_in import metrics, policy, received
from postroom.smtp_in import protocol as P
from postroom.smtp_in import replies as R
from postroom.smtp_in.policy import Listener
from postroom.smtp_in.replies import Reply, SmtpError
from postroom.store.queue import spool
from postroom.store.types import Account, AccountId, Arrival, RecipientSpec
from postroom.throttle import AuthThrottle
from postroom.tls import describe

log = structlog.get_logger("postroom.smtp_in")

READ_SIZE = 256 * 1024


# How long the dispatcher lets ids gather before a publish: a few milliseconds of delivery
# latency for one LPUSH per handful of messages instead of one each.
DISPATCH_LINGER = 0.005


class Dispatcher:
    """Hands delivery ids to the queue from the event loop, batching whatever piles up while a
    publish is under way (one LPUSH, no thread). Losing a batch (Redis down, process killed)
    only delays mail: the delivery worker's sweep finds every queued delivery in Postgres."""

    def __init__(
        self,
        settings: Settings,
        send: Callable[[Sequence[int]], Awaitable[bool]] | None = None,
    ) -> None:
        self._settings = settings
        self._publisher: AsyncPublisher | None = None
        self._send = send
        self._pending: list[int] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def submit(self, ids: list[int]) -> None:
        self._pending.extend(ids)
        self._wakeup.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _publish(self, ids: Sequence[int]) -> bool:
        if self._send is not None:
            return await self._send(ids)
        if self._publisher is None:
            self._publisher = AsyncPublisher(redis_url(self._settings))
        return await self._publisher.dispatch(ids)

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            if not self._closing:
                await asyncio.sleep(DISPATCH_LINGER)
            self._wakeup.clear()
            batch, self._pending = self._pending, []
            if batch:
                try:
                    await self._publish(batch)
                except Exception:  # never let a broker problem end the dispatcher
                    log.exception("smtp.dispatch.failed", deliveries=len(batch))
            if self._closing and not self._pending:
                return

    async def close(self, grace: float = 5.0) -> None:
        if self._task is not None:
            self._closing = True
            self._wakeup.set()
            try:
                await asyncio.wait_for(self._task, grace)
            except TimeoutError:
                self._task.cancel()
        if self._publisher is not None:
            await self._publisher.close()


class AcceptedRecipients:
    """Addresses recently found deliverable, remembered for a few seconds so that a burst of
    mail to one address does not look it up for every message. Only acceptances are kept: a
    new account is never refused from memory, and a removed one is found by the delivery
    worker, which resolves every recipient again."""

    def __init__(self, ttl: float = 10.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[Listener, str], float] = OrderedDict()

    def __contains__(self, key: tuple[Listener, str]) -> bool:
        when = self._seen.get(key)
        if when is None:
            return False
        if time.monotonic() - when > self.ttl:
            del self._seen[key]
            return False
        return True

    def add(self, key: tuple[Listener, str]) -> None:
        self._seen[key] = time.monotonic()
        self._seen.move_to_end(key)
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)


@dataclass
class Context:
    """What every session of one process shares."""

    settings: Settings
    pool: AsyncConnectionPool[Conn]
    throttle: AuthThrottle
    tls_context: ssl.SSLContext | None
    dispatcher: Dispatcher
    # Seconds to wait for a database connection before answering 451.
    db_timeout: float = 10.0
    accepted: AcceptedRecipients = field(default_factory=AcceptedRecipients)


class _Closed(Exception):
    """The client went away (or must be sent away): end the session."""


@dataclass
class _Transaction:
    reverse_path: str
    options: P.MailOptions
    recipients: list[str]
    attempted: int = 0
    dsn: dict[str, P.RecipientOptions] = field(default_factory=dict)


class Session:
    """The dialogue with one client on one listener."""

    def __init__(
        self,
        ctx: Context,
        listener: Listener,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.listener = listener
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer_ip: str = peer[0] if isinstance(peer, tuple) else "unknown"
        self.tls: str | None = describe(writer.get_extra_info("ssl_object"))
        self.helo: str | None = None
        self.esmtp = False
        self.account: Account | None = None
        self.owned: list[str] = []
        self.txn: _Transaction | None = None
        self.errors = 0
        self.transactions = 0
        self.idle = False  # waiting for a command (safe to close at shutdown)
        self._buf = bytearray()
        self._out: list[bytes] = []
        self._handlers: dict[str, Callable[[str], Awaitable[None]]] = {
            "HELO": self.smtp_HELO,
            "EHLO": self.smtp_EHLO,
            "MAIL": self.smtp_MAIL,
            "RCPT": self.smtp_RCPT,
            "DATA": self.smtp_DATA,
            "RSET": self.smtp_RSET,
            "NOOP": self.smtp_NOOP,
            "QUIT": self.smtp_QUIT,
            "VRFY": self.smtp_VRFY,
            "HELP": self.smtp_HELP,
            "STARTTLS": self.smtp_STARTTLS,
            "AUTH": self.smtp_AUTH,
        }
        self.log = log.bind(client=self.peer_ip, listener=listener.value)

    # ----------------------------------------------------------------------------------------
    # I/O

    def reply(self, reply: Reply | bytes) -> None:
        """Queue a reply; replies go out together before the next read (RFC 2920 §3.1)."""
        self._out.append(reply if isinstance(reply, bytes) else bytes(reply))

    async def flush(self) -> None:
        if self._out:
            self.writer.write(b"".join(self._out))
            self._out.clear()
            await self.writer.drain()

    async def _fill(self) -> None:
        """Read what the client sent next into the buffer, flushing replies first."""
        await self.flush()
        try:
            async with asyncio.timeout(self.settings.smtp_timeout):
                chunk = await self.reader.read(READ_SIZE)
        except TimeoutError:
            # RFC 5321 §4.5.3.2: a server should time out a silent client, with a 421.
            self.reply(R.R421_TIMEOUT)
            raise _Closed from None
        except (ConnectionError, ssl.SSLError):
            raise _Closed from None
        if not chunk:
            raise _Closed
        self._buf += chunk

    async def read_line(self) -> bytes | None:
        """The next line without its CRLF; None when it was too long or not ended by CRLF
        (a reply has been queued for it)."""
        buf = self._buf
        scanned = 0
        while True:
            end = buf.find(b"\n", scanned)
            if end >= 0:
                break
            if len(buf) > P.MAX_LINE:
                # Discard the overlong line up to its end, then answer it (in sync).
                while True:
                    buf.clear()
                    await self._fill()
                    end = buf.find(b"\n")
                    if end >= 0:
                        del buf[: end + 1]
                        self.reply(R.R500_LINE_TOO_LONG)
                        return None
            scanned = len(buf)
            await self._fill()
        line = bytes(buf[: end + 1])
        del buf[: end + 1]
        if len(line) > P.MAX_LINE:
            self.reply(R.R500_LINE_TOO_LONG)
            return None
        if not line.endswith(b"\r\n") or b"\r" in line[:-2]:
            self.reply(R.R500_BARE_LF)
            return None
        return line[:-2]

    # ----------------------------------------------------------------------------------------
    # The command loop

    async def run(self) -> None:
        metrics.SESSIONS.labels(self.listener.value).inc()
        metrics.ACTIVE_SESSIONS.labels(self.listener.value).inc()
        try:
            self.reply(f"220 {self.settings.hostname} ESMTP Postroom ready\r\n".encode())
            while True:
                self.idle = True
                line = await self.read_line()
                self.idle = False
                if line is None:
                    await self._count_error("line")
                    continue
                try:
                    verb, arg = P.split_line(line)
                    handler = self._handlers.get(verb)
                    if handler is None:
                        raise SmtpError(R.R502_NOT_IMPLEMENTED)
                    await handler(arg)
                except SmtpError as exc:
                    self.reply(exc.reply)
                    if exc.reason:
                        metrics.REJECTED.labels(self.listener.value, exc.reason).inc()
                    if exc.reply.permanent:
                        await self._count_error(exc.reason or "syntax")
        except _Closed:
            pass
        except asyncio.CancelledError:
            # Shutdown: tell an idle client why the door closes.
            self.reply(R.R421_SHUTTING_DOWN)
        except Exception:
            self.log.exception("smtp.session.failed")
        finally:
            metrics.ACTIVE_SESSIONS.labels(self.listener.value).dec()
            await self._close()

    async def _count_error(self, reason: str) -> None:
        self.errors += 1
        if self.errors >= policy.MAX_ERRORS:
            self.log.info("smtp.session.too_many_errors", errors=self.errors)
            self.reply(R.R421_TOO_MANY_ERRORS)
            raise _Closed

    async def _close(self) -> None:
        try:
            if self._out and not self.writer.is_closing():
                self.writer.write(b"".join(self._out))
                self._out.clear()
            self.writer.close()
            async with asyncio.timeout(5):
                await self.writer.wait_closed()
        except (Exception, asyncio.CancelledError):  # the peer is gone; nothing left to say
            self.writer.transport.abort()

    @property
    def phase(self) -> P.Phase:
        if self.helo is None:
            return P.Phase.CONNECTED
        if self.txn is None:
            return P.Phase.GREETED
        return P.Phase.RCPT if self.txn.recipients else P.Phase.MAIL

    # ----------------------------------------------------------------------------------------
    # Commands

    async def smtp_HELO(self, arg: str) -> None:
        self.helo = P.parse_helo(arg)
        self.esmtp = False
        self.txn = None
        self.reply(f"250 {self.settings.hostname}\r\n".encode())

    async def smtp_EHLO(self, arg: str) -> None:
        # RFC 5321 §4.1.4: EHLO resets the transaction; what follows is what is honoured.
        self.helo = P.parse_helo(arg)
        self.esmtp = True
        self.txn = None
        lines = [
            self.settings.hostname,
            "PIPELINING",
            f"SIZE {self.settings.max_message_size}",
            "8BITMIME",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
            "DSN",
        ]
        if self.ctx.tls_context is not None and self.tls is None:
            lines.append("STARTTLS")
        if self.listener.is_submission and self._auth_allowed():
            lines.append("AUTH " + " ".join(P.AUTH_MECHANISMS))
        self.reply(R.multiline(250, lines))

    def _auth_allowed(self) -> bool:
        return plaintext_auth_allowed(
            tls=self.tls is not None,
            peer_ip=self.peer_ip,
            allow_plaintext=self.settings.allow_plaintext_auth,
        )

    async def smtp_MAIL(self, arg: str) -> None:
        P.check_sequence("MAIL", self.phase)
        policy.require_auth(self.listener, self.account is not None)
        path = P.parse_path_argument(arg, "FROM", null_ok=True)
        options = P.mail_options(path, esmtp=self.esmtp, max_size=self.settings.max_message_size)
        policy.check_sender(self.listener, path.address, self.owned)
        if self.transactions >= policy.MAX_TRANSACTIONS:
            self.reply(R.R421_TOO_MANY_ERRORS)
            raise _Closed
        self.txn = _Transaction(path.address, options, [])
        self.reply(R.R250_SENDER_OK)

    async def smtp_RCPT(self, arg: str) -> None:
        P.check_sequence("RCPT", self.phase)
        txn = self.txn
        assert txn is not None
        txn.attempted += 1
        path = P.parse_path_argument(arg, "TO", null_ok=False)
        address = P.rcpt_address(path, txn.options)
        dsn = P.rcpt_options(path)
        if address == "postmaster":
            address = f"postmaster@{self.settings.hostname}"
        policy.check_recipient_count(len(txn.recipients), self.settings.max_recipients)
        key = (self.listener, address.lower())
        if key not in self.ctx.accepted:
            await self._check_recipient(address)
            self.ctx.accepted.add(key)
        if address.lower() not in (r.lower() for r in txn.recipients):
            txn.recipients.append(address)
            txn.dsn[address] = dsn
        self.reply(R.R250_RECIPIENT_OK)

    async def _check_recipient(self, address: str) -> None:
        try:
            async with self._db() as conn:
                resolution = await store.resolve(conn, address)
        except (psycopg.Error, StoreError) as exc:
            self.log.warning("smtp.rcpt.deferred", error=str(exc).splitlines()[0][:200])
            raise SmtpError(R.R451_DATABASE, "database") from None
        try:
            policy.check_recipient(self.listener, resolution)
        except SmtpError as exc:
            self.log.info("smtp.rcpt.rejected", recipient=address, reason=exc.reason)
            raise

    async def smtp_DATA(self, arg: str) -> None:
        txn = self.txn
        if txn is not None and not txn.recipients and txn.attempted:
            # RFC 2920 §3.1: with pipelining, DATA after only failed RCPTs gets 554.
            raise SmtpError(R.R554_NO_VALID_RECIPIENTS, "no_valid_recipients")
        P.check_sequence("DATA", self.phase)
        assert txn is not None
        if arg:
            raise SmtpError(R.R501_NO_ARGUMENTS)
        self.txn = None
        self.transactions += 1
        self.reply(R.R354_START_MAIL)
        try:
            raw = await self._read_data()
        except SmtpError as exc:
            self._log_transaction(txn, "rejected", size=None, reason=exc.reason)
            raise
        now = datetime.now(UTC)
        transaction_id = received.new_transaction_id()
        if self.listener.is_submission:
            raw = received.add_submission_headers(raw, hostname=self.settings.hostname, now=now)
        protocol = received.protocol_name(
            esmtp=self.esmtp,
            tls=self.tls is not None,
            authenticated=self.account is not None,
            smtputf8=txn.options.smtputf8,
        )
        trace = received.received_header(
            helo=self.helo or "unknown",
            client_ip=self.peer_ip,
            hostname=self.settings.hostname,
            protocol=protocol,
            transaction_id=transaction_id,
            tls=self.tls,
            recipient=txn.recipients[0] if len(txn.recipients) == 1 else None,
            now=now,
        )
        arrival = Arrival(
            source=self.listener.source,  # type: ignore[arg-type]
            client_address=self.peer_ip,
            helo_name=self.helo,
            protocol=protocol,
            tls=self.tls,
            auth_account_id=AccountId(self.account.id) if self.account else None,
            env_id=txn.options.envid,
            dsn_ret=txn.options.ret,
        )
        message = trace + raw
        try:
            async with self._db() as conn:
                spooled = await spool(
                    conn,
                    message,
                    reverse_path=txn.reverse_path,
                    recipients=[
                        RecipientSpec(r, txn.dsn[r].original, txn.dsn[r].notify)
                        if r in txn.dsn
                        else RecipientSpec(r)
                        for r in txn.recipients
                    ],
                    arrival=arrival,
                    now=now,
                )
        except (psycopg.Error, StoreError) as exc:
            # Never 250 without the commit (the design's first rule): the client retries.
            self.log.warning("smtp.data.deferred", error=str(exc).splitlines()[0][:200])
            self._log_transaction(txn, "deferred", size=len(raw), reason="database")
            raise SmtpError(R.R451_DATABASE, "database") from None
        queue_id = spooled.message.id
        self.reply(f"250 2.0.0 OK queued as {queue_id}\r\n".encode())
        # The end of DATA closes a pipelined group (RFC 2920 §3.1): the 250 goes out before
        # the bookkeeping below, which the client need not wait for.
        await self.flush()
        self.ctx.dispatcher.submit([d.id for d in spooled.deliveries])
        metrics.ACCEPTED.labels(self.listener.value).inc()
        metrics.ACCEPTED_BYTES.labels(self.listener.value).inc(len(message))
        self._log_transaction(txn, "accepted", size=len(message), queue_id=queue_id)

    async def _read_data(self) -> bytes:
        reader = P.DataReader(self.settings.max_message_size)
        if self._buf:
            chunk = bytes(self._buf)
            self._buf.clear()
            reader.feed(chunk)
        while not reader.done:
            await self._fill()
            chunk = bytes(self._buf)
            self._buf.clear()
            reader.feed(chunk)
        self._buf += reader.rest
        return reader.content(self.settings.max_message_size)

    def _log_transaction(
        self,
        txn: _Transaction,
        result: str,
        *,
        size: int | None,
        reason: str | None = None,
        queue_id: int | None = None,
    ) -> None:
        self.log.info(
            f"smtp.message.{result}",
            queue_id=queue_id,
            tls=self.tls,
            sender=txn.reverse_path,
            recipients=len(txn.recipients),
            size=size,
            reason=reason,
        )

    async def smtp_RSET(self, arg: str) -> None:
        if arg:
            raise SmtpError(R.R501_NO_ARGUMENTS)
        self.txn = None
        self.reply(R.R250_RESET)

    async def smtp_NOOP(self, arg: str) -> None:
        # RFC 5321 §4.1.1.9: a parameter may be given and is ignored.
        self.reply(R.R250_OK)

    async def smtp_QUIT(self, arg: str) -> None:
        if arg:
            raise SmtpError(R.R501_NO_ARGUMENTS)
        self.reply(R.R221_BYE)
        raise _Closed

    async def smtp_VRFY(self, arg: str) -> None:
        # RFC 5321 §3.5.3: 252 without looking anything up (no address oracle).
        if not arg:
            raise SmtpError(R.R501_VRFY_SYNTAX)
        self.reply(R.R252_CANNOT_VRFY)

    async def smtp_HELP(self, arg: str) -> None:
        self.reply(R.R214_HELP)

    async def smtp_STARTTLS(self, arg: str) -> None:
        P.check_sequence("STARTTLS", self.phase)
        if self.tls is not None:
            raise SmtpError(R.R503_ALREADY_TLS)
        if arg:
            raise SmtpError(R.R501_NO_ARGUMENTS)
        if self.ctx.tls_context is None:
            raise SmtpError(R.R454_TLS_UNAVAILABLE)
        self.reply(R.R220_READY_TLS)
        await self.flush()
        # RFC 3207 §4.2 / CVE-2011-0411: whatever the client sent after STARTTLS in the clear
        # is discarded, never read as if it had come over TLS.
        self._buf.clear()
        pending: Any = getattr(self.reader, "_buffer", None)
        if pending:
            pending.clear()
        try:
            await self.writer.start_tls(self.ctx.tls_context, ssl_handshake_timeout=30)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            self.log.info("smtp.tls.failed", error=str(exc)[:200])
            raise _Closed from None
        self.tls = describe(self.writer.get_extra_info("ssl_object"))
        # RFC 3207 §4.2: forget everything learnt before, the client starts with EHLO again.
        self.helo = None
        self.esmtp = False
        self.txn = None
        self.account = None
        self.owned = []

    async def smtp_AUTH(self, arg: str) -> None:
        if not self.listener.is_submission:
            raise SmtpError(R.R502_AUTH_UNAVAILABLE)
        if self.account is not None:
            raise SmtpError(R.R503_ALREADY_AUTHENTICATED)
        P.check_sequence("AUTH", self.phase)
        if not self.esmtp:
            raise SmtpError(R.R503_HELO_FIRST)
        if not self._auth_allowed():
            raise SmtpError(R.R538_ENCRYPTION_REQUIRED, "encryption_required")
        mechanism, initial = P.parse_auth(arg)
        throttle = self.ctx.throttle
        await throttle.refresh(self.peer_ip)
        if throttle.locked(self.peer_ip):
            raise SmtpError(R.R454_AUTH_LOCKED, "auth_locked")
        if mechanism == "PLAIN":
            response = initial if initial is not None else await self._challenge(P.PLAIN_CHALLENGE)
            credentials = P.decode_plain(P.decode_response(response))
        else:
            if initial is not None:
                username = P.decode_text(P.decode_response(initial))
            else:
                line = await self._challenge(P.LOGIN_USERNAME_CHALLENGE)
                username = P.decode_text(P.decode_response(line))
            line = await self._challenge(P.LOGIN_PASSWORD_CHALLENGE)
            credentials = P.Credentials(username, P.decode_text(P.decode_response(line)))
        username = credentials.username
        await throttle.refresh(self.peer_ip, username)
        if throttle.locked(self.peer_ip, username):
            raise SmtpError(R.R454_AUTH_LOCKED, "auth_locked")
        delay = throttle.delay(self.peer_ip, username)
        if delay:
            await self.flush()
            await asyncio.sleep(delay)
        try:
            async with self._db() as conn:
                account = await store.authenticate(conn, username, credentials.password)
                owned = await store.addresses_of(conn, account.id)
        except AuthenticationFailed:
            throttle.failure(self.peer_ip, username)
            metrics.AUTH_FAILURES.labels(self.listener.value).inc()
            self.log.info("smtp.auth.failed", username=username)
            raise SmtpError(R.R535_AUTH_FAILED, "auth_failed") from None
        except (psycopg.Error, StoreError):
            raise SmtpError(R.R451_DATABASE, "database") from None
        throttle.success(self.peer_ip, username)
        self.account = account
        self.owned = owned
        self.log = self.log.bind(account=account.address)
        self.log.info("smtp.auth.succeeded")
        self.reply(R.R235_AUTH_OK)

    async def _challenge(self, challenge: bytes) -> str:
        self.reply(challenge)
        line = await self.read_line()
        if line is None:
            raise SmtpError(R.R501_AUTH_BASE64)
        return line.decode("ascii", "replace").strip()

    def _db(self) -> _PooledConnection:
        return _PooledConnection(self.ctx.pool, self.ctx.db_timeout)


class _PooledConnection:
    """A pooled connection in autocommit mode, as the store expects."""

    def __init__(self, pool: AsyncConnectionPool[Conn], timeout: float) -> None:
        self._pool = pool
        self._timeout = timeout
        self._conn: Conn | None = None

    async def __aenter__(self) -> Conn:
        conn = await self._pool.getconn(timeout=self._timeout)
        self._conn = conn
        if not conn.autocommit:
            await conn.set_autocommit(True)
        return conn

    async def __aexit__(self, *exc: object) -> None:
        assert self._conn is not None
        await self._pool.putconn(self._conn)
