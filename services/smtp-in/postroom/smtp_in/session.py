"""The SMTP session as a state machine: command lines in, replies and the next step out.

The session never touches a socket. The server feeds it what the `reader` framed (command
lines, DATA content, the end of DATA) and carries out the `Next` step it returns: read the
next line, read the message, read an AUTH response, start TLS, or close. Replies gather in
the session's output, which the server writes before it next waits for the client
(RFC 2920 §3.1: pipelined replies go out together). The store is reached through the
process's `Context`, and the rules come from ``syntax`` (well-formedness) and ``policy``
(relay, sender ownership, limits).

Extension points (all on `Context.hooks`, each a list any module may append to):

- ``recipient_checks``: after a local recipient resolved, before its 250; raise `SmtpError`
  to refuse it (quota: ``452 4.2.2``).
- ``new_sink``: where DATA content goes as it is unstuffed, chunk by chunk (`MessageSink`);
  the default keeps it in memory, within the message size limit.
- ``message_checks``: after the whole message, before the final reply to DATA; each returns
  a `Verdict` (reject, tempfail, accept with header fields added on top).
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool

from postroom import sasl, srs, store
from postroom.config import Settings
from postroom.db import Conn
from postroom.errors import StoreError
from postroom.smtp_in import metrics, policy, received, srs_bounces
from postroom.smtp_in import replies as R
from postroom.smtp_in import syntax as S
from postroom.smtp_in.dispatch import Dispatcher
from postroom.smtp_in.policy import Port
from postroom.smtp_in.reader import BadLine, EndOfData, Line
from postroom.smtp_in.replies import Reply, SmtpError
from postroom.smtp_in.spooling import FileSink
from postroom.store.queue import spool
from postroom.store.types import Account, AccountId, Arrival, RecipientSpec, Resolution

log = structlog.get_logger("postroom.smtp_in")


class State(enum.Enum):
    """Where a session is in RFC 5321 §4.1.4's command sequence."""

    CONNECTED = "connected"  # no EHLO/HELO yet
    GREETED = "greeted"  # no transaction
    MAIL = "mail"  # MAIL accepted, no recipient yet
    RCPT = "rcpt"  # at least one recipient accepted


# RFC 5321 §4.3.2: for each command, the states in which it is refused and with what reply.
# A command absent from the table is allowed in every state.
SEQUENCE_REFUSALS: dict[str, dict[State, Reply]] = {
    "MAIL": {
        State.CONNECTED: R.R503_HELO_FIRST,
        State.MAIL: R.R503_NESTED_MAIL,
        State.RCPT: R.R503_NESTED_MAIL,
    },
    "RCPT": {State.CONNECTED: R.R503_HELO_FIRST, State.GREETED: R.R503_MAIL_FIRST},
    "DATA": {
        State.CONNECTED: R.R503_HELO_FIRST,
        State.GREETED: R.R503_MAIL_FIRST,
        State.MAIL: R.R503_RCPT_FIRST,
    },
    "AUTH": {
        State.CONNECTED: R.R503_HELO_FIRST,
        State.MAIL: R.R503_AUTH_IN_TRANSACTION,
        State.RCPT: R.R503_AUTH_IN_TRANSACTION,
    },
    "STARTTLS": {State.MAIL: R.R503_NESTED_MAIL, State.RCPT: R.R503_NESTED_MAIL},
}


def check_sequence(verb: str, state: State) -> None:
    """Raise the 503 that RFC 5321 §4.3.2 prescribes for a command out of order."""
    refused = SEQUENCE_REFUSALS.get(verb)
    if refused is not None:
        reply = refused.get(state)
        if reply is not None:
            raise SmtpError(reply)


class Next(enum.Enum):
    """What the server does after the session has answered."""

    READ = "read"  # read the next command line, then `handle`
    DATA = "data"  # the reader frames DATA now: `content` for each piece, then `end_of_data`
    AUTH_LINE = "auth-line"  # read one line, then `auth_response`
    STARTTLS = "starttls"  # handshake (discarding buffered plaintext), then `tls_started`
    CLOSE = "close"  # write what is pending and close


# --- extension points ------------------------------------------------------------------------


@dataclass
class Envelope:
    """One mail transaction (RFC 5321 §3.3) and the session facts checks need."""

    reverse_path: str
    options: S.MailOptions
    client_ip: str
    helo: str | None
    port: Port
    tls: str | None
    account: Account | None
    owned: tuple[str, ...] = ()  # the addresses the authenticated account may send as
    recipients: list[str] = field(default_factory=list)
    dsn: dict[str, S.RecipientOptions] = field(default_factory=dict)
    attempted: int = 0  # RCPT commands, accepted or not
    # Where each accepted local recipient goes, as looked up (or remembered) at RCPT.
    resolutions: dict[str, Resolution] = field(default_factory=dict)


class MessageSink(Protocol):
    """Where the content of DATA goes, piece by piece, as the reader unstuffs it."""

    async def write(self, data: bytes) -> None:
        """Take the next piece; raise `SmtpError` to refuse the message (the reply is given
        after the end of DATA, the rest of the content is read and dropped)."""

    async def read(self) -> bytes:
        """The whole content, after the end of DATA (for checks and the spool)."""

    async def discard(self) -> None:
        """The transaction is over (stored or failed): forget what was written."""


class MemorySink:
    """The default sink: the content in memory (the reader already bounds its size)."""

    def __init__(self) -> None:
        self._data = bytearray()

    async def write(self, data: bytes) -> None:
        self._data += data

    async def read(self) -> bytes:
        return bytes(self._data)

    async def discard(self) -> None:
        self._data = bytearray()


@dataclass(frozen=True)
class Verdict:
    """A message check's answer. ``reply`` (a 4xx tempfail or 5xx reject) ends the
    transaction with it; ``headers`` (complete header fields with CRLF) go on top of the
    message when it is accepted. ``content`` replaces the message (header fields the check
    removed); ``target_special_use`` files it into that folder (``\\Junk``); ``checks`` is
    kept with the queue entry for the trace; ``reason`` names a refusal in logs and metrics."""

    reply: Reply | None = None
    headers: bytes = b""
    content: bytes | None = None
    target_special_use: str | None = None
    checks: dict[str, Any] | None = None
    reason: str | None = None


ACCEPT = Verdict()

RecipientCheck = Callable[[Envelope, str, Resolution], Awaitable[None]]
MessageCheck = Callable[[Envelope, bytes], Awaitable[Verdict]]
SizeCheck = Callable[[Envelope, int], Awaitable[Verdict]]


@dataclass
class Hooks:
    recipient_checks: list[RecipientCheck] = field(default_factory=list)
    message_checks: list[MessageCheck] = field(default_factory=list)
    # Checks that need only the header section, or only the size: with no message check
    # installed, a large message is then never read whole.
    header_checks: list[MessageCheck] = field(default_factory=list)
    size_checks: list[SizeCheck] = field(default_factory=list)
    new_sink: Callable[[Envelope], MessageSink] = lambda _envelope: MemorySink()


# --- what every session of a process shares ---------------------------------------------------


def _header_section(raw: bytes) -> bytes:
    """The header fields and the empty line after them (all of ``raw`` without a body)."""
    end = raw.find(b"\r\n\r\n")
    return raw if end < 0 else raw[: end + 4]


class AcceptedRecipients:
    """Addresses recently found deliverable, remembered for a few seconds so that a burst of
    mail to one address does not look it up for every message. Only acceptances are kept: a
    new account is never refused from memory, and a removed one is found by the delivery
    worker, which resolves every recipient again."""

    def __init__(self, ttl: float = 10.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[Port, str], tuple[float, Resolution | None]] = OrderedDict()

    def get(self, key: tuple[Port, str]) -> tuple[Resolution | None] | None:
        """(resolution,) when remembered, else None."""
        entry = self._seen.get(key)
        if entry is None:
            return None
        when, resolution = entry
        if time.monotonic() - when > self.ttl:
            del self._seen[key]
            return None
        return (resolution,)

    def add(self, key: tuple[Port, str], resolution: Resolution | None) -> None:
        self._seen[key] = (time.monotonic(), resolution)
        self._seen.move_to_end(key)
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)


# (identity, secret, client ip) → the account and the app password that opened it (None: the
# account's password); raises SmtpError (535, 454, 451): the login path.
Authenticator = Callable[[str, str, str], Awaitable[tuple[Account, int | None]]]


@dataclass
class Context:
    """What every session of one process shares."""

    settings: Settings
    pool: AsyncConnectionPool[Conn]
    dispatcher: Dispatcher
    authenticate: Authenticator  # (username, password, client ip)
    tls_available: bool
    # Seconds to wait for a database connection before answering 451.
    db_timeout: float = 10.0
    accepted: AcceptedRecipients = field(default_factory=AcceptedRecipients)
    hooks: Hooks = field(default_factory=Hooks)


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


@dataclass
class _AuthExchange:
    """An AUTH in progress: its mechanism and, for LOGIN, the username given."""

    mechanism: str
    username: str | None = None


# --- the session -----------------------------------------------------------------------------


class Session:
    """The dialogue with one client on one port."""

    def __init__(
        self,
        ctx: Context,
        port: Port,
        *,
        client_ip: str,
        tls: str | None,
        plaintext_auth: Callable[[bool], bool],
    ) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.port = port
        self.client_ip = client_ip
        self.tls = tls
        self._plaintext_auth = plaintext_auth  # tls active → may a password be sent?
        self.helo: str | None = None
        self.esmtp = False
        self.account: Account | None = None
        self.app_password_id: int | None = None  # revoking it ends this session
        self.owned: list[str] = []
        self.txn: Envelope | None = None
        self.errors = 0
        self.transactions = 0
        self.closed = False
        self._out: list[bytes] = []
        self._auth: _AuthExchange | None = None
        self._data: tuple[Envelope, MessageSink] | None = None
        self._sink_error: SmtpError | None = None
        self._handlers: dict[str, Callable[[str], Awaitable[Next]]] = {
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
        self.log = log.bind(client=client_ip, listener=port.value)

    # --- output ----------------------------------------------------------------------------

    def reply(self, reply: Reply | bytes) -> None:
        """Queue a reply; replies go out together before the next read (RFC 2920 §3.1)."""
        self._out.append(reply if isinstance(reply, bytes) else bytes(reply))

    def output(self) -> bytes:
        """The replies queued since the last call."""
        data = b"".join(self._out)
        self._out.clear()
        return data

    def greeting(self) -> None:
        self.reply(f"220 {self.settings.hostname} ESMTP Postroom ready\r\n".encode())

    def closing(self, reply: Reply) -> Next:
        """The server ends the session (a clock ran out, shutdown): say why."""
        self.reply(reply)
        self.closed = True
        return Next.CLOSE

    @property
    def state(self) -> State:
        if self.helo is None:
            return State.CONNECTED
        if self.txn is None:
            return State.GREETED
        return State.RCPT if self.txn.recipients else State.MAIL

    # --- the command loop ------------------------------------------------------------------

    async def handle(self, event: Line | BadLine) -> Next:
        """Answer one command line (or a line the reader refused)."""
        if isinstance(event, BadLine):
            self.reply(event.reply)
            return self._count_error("line")
        try:
            verb, arg = S.split_line(event.data)
            handler = self._handlers.get(verb)
            if handler is None:
                raise SmtpError(R.R502_NOT_IMPLEMENTED)
            return await handler(arg)
        except SmtpError as exc:
            return self._refused(exc)

    def _refused(self, exc: SmtpError) -> Next:
        self.reply(exc.reply)
        if exc.reason:
            metrics.REJECTED.labels(self.port.value, exc.reason).inc()
        if exc.reply.permanent:
            return self._count_error(exc.reason or "syntax")
        return Next.READ

    def _count_error(self, reason: str) -> Next:
        self.errors += 1
        if self.errors >= policy.MAX_ERRORS:
            self.log.info("smtp.session.too_many_errors", errors=self.errors)
            return self.closing(R.R421_TOO_MANY_ERRORS)
        return Next.READ

    def _db(self) -> _PooledConnection:
        return _PooledConnection(self.ctx.pool, self.ctx.db_timeout)

    # --- HELO, EHLO, RSET, NOOP, QUIT, VRFY, HELP --------------------------------------------

    async def smtp_HELO(self, arg: str) -> Next:
        self.helo = S.parse_helo(arg)
        self.esmtp = False
        self.txn = None
        self.reply(f"250 {self.settings.hostname}\r\n".encode())
        return Next.READ

    async def smtp_EHLO(self, arg: str) -> Next:
        # RFC 5321 §4.1.4: EHLO resets the transaction; what follows is what is honoured.
        self.helo = S.parse_helo(arg)
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
        if self.ctx.tls_available and self.tls is None:
            lines.append("STARTTLS")
        if self.port.is_submission and self._plaintext_auth(self.tls is not None):
            lines.append("AUTH " + " ".join(S.AUTH_MECHANISMS))
        self.reply(R.multiline(250, lines))
        return Next.READ

    async def smtp_RSET(self, arg: str) -> Next:
        if arg:
            raise SmtpError(R.R501_NO_ARGUMENTS)
        self.txn = None
        self.reply(R.R250_RESET)
        return Next.READ

    async def smtp_NOOP(self, arg: str) -> Next:
        # RFC 5321 §4.1.1.9: a parameter may be given and is ignored.
        self.reply(R.R250_OK)
        return Next.READ

    async def smtp_QUIT(self, arg: str) -> Next:
        if arg:
            raise SmtpError(R.R501_NO_ARGUMENTS)
        self.reply(R.R221_BYE)
        self.closed = True
        return Next.CLOSE

    async def smtp_VRFY(self, arg: str) -> Next:
        # RFC 5321 §3.5.3: 252 without looking anything up (no address oracle).
        if not arg:
            raise SmtpError(R.R501_VRFY_SYNTAX)
        self.reply(R.R252_CANNOT_VRFY)
        return Next.READ

    async def smtp_HELP(self, arg: str) -> Next:
        self.reply(R.R214_HELP)
        return Next.READ

    # --- the mail transaction ----------------------------------------------------------------

    async def smtp_MAIL(self, arg: str) -> Next:
        check_sequence("MAIL", self.state)
        policy.require_auth(self.port, self.account is not None)
        path = S.parse_path_argument(arg, "FROM", null_ok=True)
        options = S.mail_options(path, esmtp=self.esmtp, max_size=self.settings.max_message_size)
        if policy.check_sender(self.port, path.address, self.owned):
            await self._check_tag_is_free(path.address)
        if self.transactions >= policy.MAX_TRANSACTIONS:
            return self.closing(R.R421_TOO_MANY_ERRORS)
        self.txn = Envelope(
            path.address,
            options,
            client_ip=self.client_ip,
            helo=self.helo,
            port=self.port,
            tls=self.tls,
            account=self.account,
            owned=tuple(self.owned),
        )
        self.reply(R.R250_SENDER_OK)
        return Next.READ

    async def _check_tag_is_free(self, address: str) -> None:
        """``own+tag`` is the account's only when no account or alias has that very address
        (account ``a@d`` may not send as the distinct account ``a+b@d``)."""
        try:
            async with self._db() as conn:
                taken = await store.address_taken(conn, address)
        except (psycopg.Error, StoreError):
            raise SmtpError(R.R451_DATABASE, "database") from None
        if taken:
            raise SmtpError(R.R553_NOT_OWNER, "sender_not_owned")

    async def smtp_RCPT(self, arg: str) -> Next:
        check_sequence("RCPT", self.state)
        txn = self.txn
        assert txn is not None
        txn.attempted += 1
        path = S.parse_path_argument(arg, "TO", null_ok=False)
        address = S.rcpt_address(path, txn.options)
        dsn = S.rcpt_options(path)
        if address == "postmaster":
            address = f"postmaster@{self.settings.hostname}"
        policy.check_recipient_count(len(txn.recipients), self.settings.max_recipients)
        key = (self.port, address.lower())
        known = self.ctx.accepted.get(key)
        resolution: Resolution | None
        if (target := await self._srs_target(address)) is not None:
            # A bounce to mail we forwarded: it goes back to the original sender.
            address, resolution = target, Resolution(remote=(target,))
        elif known is None:
            resolution = await self._resolve(address)
            self.ctx.accepted.add(key, resolution)
        else:
            (resolution,) = known
        if resolution is not None:
            for check in self.ctx.hooks.recipient_checks:
                await check(txn, address, resolution)
        if address.lower() not in (r.lower() for r in txn.recipients):
            txn.recipients.append(address)
            txn.dsn[address] = dsn
            if resolution is not None:
                txn.resolutions[address] = resolution
        self.reply(R.R250_RECIPIENT_OK)
        return Next.READ

    async def _srs_target(self, address: str) -> str | None:
        if not srs.is_srs(address):
            return None
        try:
            async with self._db() as conn:
                return await srs_bounces.srs_target(conn, self.settings, address)
        except (psycopg.Error, StoreError):
            raise SmtpError(R.R451_DATABASE, "database") from None

    async def _resolve(self, address: str) -> Resolution | None:
        try:
            async with self._db() as conn:
                resolution = await store.resolve(conn, address)
        except (psycopg.Error, StoreError) as exc:
            self.log.warning("smtp.rcpt.deferred", error=str(exc).splitlines()[0][:200])
            raise SmtpError(R.R451_DATABASE, "database") from None
        try:
            policy.check_recipient(self.port, resolution)
        except SmtpError as exc:
            self.log.info("smtp.rcpt.rejected", recipient=address, reason=exc.reason)
            raise
        return resolution

    async def smtp_DATA(self, arg: str) -> Next:
        txn = self.txn
        if txn is not None and not txn.recipients and txn.attempted:
            # RFC 2920 §3.1: with pipelining, DATA after only failed RCPTs gets 554.
            raise SmtpError(R.R554_NO_VALID_RECIPIENTS, "no_valid_recipients")
        check_sequence("DATA", self.state)
        assert txn is not None
        if arg:
            raise SmtpError(R.R501_NO_ARGUMENTS)
        self.txn = None
        self.transactions += 1
        self._data = (txn, self.ctx.hooks.new_sink(txn))
        self._sink_error = None
        self.reply(R.R354_START_MAIL)
        return Next.DATA

    async def content(self, data: bytes) -> None:
        """The next piece of the message, unstuffed."""
        assert self._data is not None
        if self._sink_error is not None:
            return
        try:
            await self._data[1].write(data)
        except SmtpError as exc:
            self._sink_error = exc

    async def end_of_data(self, end: EndOfData) -> Next:
        """CRLF.CRLF: check, spool, and give the final reply to DATA."""
        assert self._data is not None
        txn, sink = self._data
        self._data = None
        try:
            if end.problem is not None:
                raise SmtpError(end.problem, "size" if end.problem.code == 552 else "bare_line")
            if self._sink_error is not None:
                raise self._sink_error
            return await self._accept(txn, sink, end.size)
        except SmtpError as exc:
            self._log_transaction(txn, "rejected", size=end.size, reason=exc.reason)
            return self._refused(exc)
        finally:
            await sink.discard()  # stored or refused, its file and budget go back

    async def _accept(self, txn: Envelope, sink: MessageSink, size: int) -> Next:
        for size_check in self.ctx.hooks.size_checks:
            verdict = await size_check(txn, size)
            if verdict.reply is not None:
                raise SmtpError(verdict.reply, "message_check")
        # A large message in a file is stored as a stream, unless a check needs it whole.
        streamed = isinstance(sink, FileSink) and sink.streamed
        streamed = streamed and not self.ctx.hooks.message_checks
        raw = b"" if streamed else await sink.read()
        if self.ctx.hooks.header_checks:
            head = sink.header_section() if isinstance(sink, FileSink) else _header_section(raw)
            for header_check in self.ctx.hooks.header_checks:
                verdict = await header_check(txn, head)
                if verdict.reply is not None:
                    raise SmtpError(verdict.reply, verdict.reason or "message_check")
        added = b""
        target: str | None = None
        checks: dict[str, Any] = {}
        for check in self.ctx.hooks.message_checks:
            verdict = await check(txn, raw)
            if verdict.reply is not None:
                raise SmtpError(verdict.reply, verdict.reason or "message_check")
            added += verdict.headers
            raw = verdict.content if verdict.content is not None else raw
            target = verdict.target_special_use or target
            checks.update(verdict.checks or {})
        now = datetime.now(UTC)
        if self.port.is_submission and not streamed:
            raw = received.add_submission_headers(raw, hostname=self.settings.hostname, now=now)
        protocol = received.protocol_name(
            esmtp=self.esmtp,
            tls=self.tls is not None,
            authenticated=self.account is not None,
            smtputf8=txn.options.smtputf8,
        )
        trace = received.received_header(
            helo=self.helo or "unknown",
            client_ip=self.client_ip,
            hostname=self.settings.hostname,
            protocol=protocol,
            transaction_id=received.new_transaction_id(),
            tls=self.tls,
            recipient=txn.recipients[0] if len(txn.recipients) == 1 else None,
            now=now,
        )
        arrival = Arrival(
            source=self.port.source,  # type: ignore[arg-type]
            client_address=self.client_ip,
            helo_name=self.helo,
            protocol=protocol,
            tls=self.tls,
            auth_account_id=AccountId(self.account.id) if self.account else None,
            env_id=txn.options.envid,
            dsn_ret=txn.options.ret,
            target_special_use=target,
            checks=checks or None,
        )
        message = trace + added + raw
        try:
            async with self._db() as conn:
                blob_id = None
                if streamed:
                    assert isinstance(sink, FileSink)
                    blob_id, message = await sink.store(
                        conn,
                        message,
                        submission=self.port.is_submission,
                        hostname=self.settings.hostname,
                        now=now,
                    )
                spooled = await spool(
                    conn,
                    message,
                    blob_id=blob_id,
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
            raise SmtpError(R.R451_DATABASE, "database") from None
        queue_id = spooled.message.id
        self.reply(f"250 2.0.0 OK queued as {queue_id}\r\n".encode())
        self.ctx.dispatcher.submit([d.id for d in spooled.deliveries])
        metrics.ACCEPTED.labels(self.port.value).inc()
        metrics.ACCEPTED_BYTES.labels(self.port.value).inc(spooled.message.size)
        self._log_transaction(txn, "accepted", size=spooled.message.size, queue_id=queue_id)
        return Next.READ

    def _log_transaction(
        self,
        txn: Envelope,
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

    # --- STARTTLS (RFC 3207) -----------------------------------------------------------------

    async def smtp_STARTTLS(self, arg: str) -> Next:
        check_sequence("STARTTLS", self.state)
        if self.tls is not None:
            raise SmtpError(R.R503_ALREADY_TLS)
        if arg:
            raise SmtpError(R.R501_NO_ARGUMENTS)
        if not self.ctx.tls_available:
            raise SmtpError(R.R454_TLS_UNAVAILABLE)
        self.reply(R.R220_READY_TLS)
        return Next.STARTTLS

    def tls_started(self, description: str | None) -> None:
        # RFC 3207 §4.2: forget everything learnt before, the client starts with EHLO again.
        self.tls = description
        self.helo = None
        self.esmtp = False
        self.txn = None
        self.account = None
        self.app_password_id = None
        self.owned = []

    # --- AUTH (RFC 4954) ---------------------------------------------------------------------

    async def smtp_AUTH(self, arg: str) -> Next:
        if not self.port.is_submission:
            raise SmtpError(R.R502_AUTH_UNAVAILABLE)
        if self.account is not None:
            raise SmtpError(R.R503_ALREADY_AUTHENTICATED)
        check_sequence("AUTH", self.state)
        if not self.esmtp:
            raise SmtpError(R.R503_HELO_FIRST)
        if not self._plaintext_auth(self.tls is not None):
            raise SmtpError(R.R538_ENCRYPTION_REQUIRED, "encryption_required")
        mechanism, initial = S.parse_auth(arg)
        self._auth = _AuthExchange(mechanism)
        if initial is not None:
            return await self._auth_step(initial)
        self.reply(S.PLAIN_CHALLENGE if mechanism == "PLAIN" else S.LOGIN_USERNAME_CHALLENGE)
        return Next.AUTH_LINE

    async def auth_response(self, event: Line | BadLine) -> Next:
        """The client's line after a 334 challenge."""
        if isinstance(event, BadLine):
            self._auth = None
            return self._refused(SmtpError(R.R501_AUTH_BASE64))
        try:
            return await self._auth_step(event.data.decode("ascii", "replace").strip())
        except SmtpError as exc:
            return self._refused(exc)

    async def _auth_step(self, response: str) -> Next:
        exchange = self._auth
        assert exchange is not None
        try:
            if exchange.mechanism == "PLAIN":
                credentials = sasl.decode_plain(sasl.decode_response(response))
            elif exchange.username is None:
                exchange.username = sasl.decode_text(sasl.decode_response(response))
                self.reply(S.LOGIN_PASSWORD_CHALLENGE)
                return Next.AUTH_LINE
            else:
                password = sasl.decode_text(sasl.decode_response(response))
                credentials = sasl.Credentials(exchange.username, password)
        except sasl.SaslError as exc:
            self._auth = None
            raise SmtpError(*S.SASL_REPLIES[exc.problem]) from None
        self._auth = None
        account, app_password_id = await self.ctx.authenticate(
            credentials.identity, credentials.secret, self.client_ip
        )
        try:
            async with self._db() as conn:
                owned = await store.addresses_of(conn, account.id)
                owned += await store.send_as_of(conn, account.id)
        except (psycopg.Error, StoreError):
            raise SmtpError(R.R451_DATABASE, "database") from None
        self.account = account
        self.app_password_id = app_password_id
        self.owned = owned
        self.log = self.log.bind(account=account.address)
        self.reply(R.R235_AUTH_OK)
        return Next.READ
