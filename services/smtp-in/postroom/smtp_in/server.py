"""smtp-in's listeners: the shared connection layer wired to the SMTP reader and session.

Everything about connections (limits, PROXY, TLS, clocks, drain) is `postroom.listener`'s;
everything about SMTP is the `reader`'s and the `session`'s. What is left here is the loop
that feeds one to the other and carries out the session's `Next` step.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field
from typing import Any

import psycopg
import structlog
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from postroom import certificates
from postroom import listener as L
from postroom.auth import plaintext_auth_allowed
from postroom.config import Settings
from postroom.db import Conn, session_options
from postroom.login import LoginPath
from postroom.runtime import database_url
from postroom.smtp_in import checks, identity, metrics, quota, safeguards
from postroom.smtp_in import replies as R
from postroom.smtp_in.dispatch import Dispatcher
from postroom.smtp_in.policy import Port
from postroom.smtp_in.reader import Content, EndOfData, Reader
from postroom.smtp_in.replies import SmtpError
from postroom.smtp_in.session import Authenticator, Context, Next, Session
from postroom.smtp_in.spooling import FileSink
from postroom.spool import InflightBudget
from postroom.store.revocation import RevocationWatcher
from postroom.store.types import Account
from postroom.throttle import AuthThrottle
from postroom.tls import ServerTls

log = structlog.get_logger("postroom.smtp_in")

# What ends a session by the server's decision, per reason (RFC 5321 §4.5.3.2: a 421).
_CLOSING = {
    "idle": R.R421_TIMEOUT,
    "deadline": R.R421_TIMEOUT,
    "slow": R.R421_TIMEOUT,
    "shutdown": R.R421_SHUTTING_DOWN,
    "revoked": R.R421_CREDENTIALS_CHANGED,
}


@dataclass(frozen=True)
class ListenerSpec:
    kind: Port
    port: int  # 0: any free port (tests)


def default_listeners(settings: Settings) -> list[ListenerSpec]:
    return [
        ListenerSpec(Port.INBOUND, settings.smtp_port),
        ListenerSpec(Port.SUBMISSION, settings.submission_port),
        ListenerSpec(Port.SUBMISSIONS, settings.submissions_port),
    ]


def _refusal(refused: L.Refusal) -> bytes:
    if refused == "total":
        return bytes(R.R421_TOO_MANY_CONNECTIONS)
    return bytes(R.R421_TOO_MANY_FROM_IP)


async def serve_connection(ctx: Context, tls: ssl.SSLContext | None, conn: L.Connection) -> None:
    """One SMTP session on an accepted connection."""
    port = Port(conn.port_name)
    settings = ctx.settings

    def plaintext_auth(tls_active: bool) -> bool:
        return plaintext_auth_allowed(
            tls=tls_active, peer_ip=conn.client_ip, allow_plaintext=settings.allow_plaintext_auth
        )

    session = Session(
        ctx, port, client_ip=conn.client_ip, tls=conn.tls, plaintext_auth=plaintext_auth
    )
    reader = Reader()
    session.greeting()
    step = Next.READ
    try:
        while step is not Next.CLOSE:
            event = reader.next_event()
            if event is None:
                if out := session.output():
                    await conn.send(out)
                try:
                    data = await conn.read(busy=reader.partial)
                except L.Closing as closing:
                    step = session.closing(_CLOSING[closing.reason])
                    break
                if not data:
                    return
                reader.feed(data)
                continue
            if isinstance(event, Content):
                await session.content(event.data)
                continue
            if isinstance(event, EndOfData):
                step = await session.end_of_data(event)
            elif step is Next.AUTH_LINE:
                step = await session.auth_response(event)
            else:
                step = await session.handle(event)
            if step is Next.DATA:
                reader.begin_data(settings.max_message_size)
            elif step is Next.STARTTLS:
                assert tls is not None
                await conn.send(session.output())
                if not await conn.start_tls(tls, discarded=reader.discard()):
                    return
                session.tls_started(conn.tls)
                step = Next.READ
            if session.account is not None and conn.account_id is None:
                conn.logged_in(session.account.id, session.app_password_id)
    except (ConnectionError, ssl.SSLError):
        return
    except Exception:
        session.log.exception("smtp.session.failed")
        session.closing(R.R421_SHUTTING_DOWN)
    if out := session.output():
        with contextlib.suppress(ConnectionError, ssl.SSLError, RuntimeError):
            conn.write(out)


# How the login path's answers are given (RFC 4954 §6).
_LOGIN_REPLIES = {
    "wrong": SmtpError(R.R535_AUTH_FAILED, "auth_failed"),
    "throttled": SmtpError(R.R454_AUTH_LOCKED, "auth_locked"),
    "unavailable": SmtpError(R.R451_DATABASE, "database"),
}


def _login(path: LoginPath) -> Authenticator:
    async def authenticate(identity: str, secret: str, ip: str) -> tuple[Account, int | None]:
        result = await path.login(identity, secret, client_ip=ip, service="smtp")
        if result.account is None:
            if result.outcome == "wrong":
                metrics.AUTH_FAILURES.labels("submission").inc()
            error = _LOGIN_REPLIES[result.outcome]
            raise SmtpError(error.reply, error.reason)
        return result.account, result.app_password_id

    return authenticate


@dataclass
class SmtpServer:
    """Every listener of one smtp-in process, with its shared pool, throttle and limits."""

    settings: Settings
    ctx: Context
    listener: L.Listener
    ports: dict[Port, int] = field(default_factory=dict)
    watcher: RevocationWatcher | None = None
    _own_pool: bool = False
    inbound: checks.InboundChecks | None = None
    certificates: asyncio.Task[None] | None = None  # looks for a renewed certificate

    async def start(self, listeners: list[ListenerSpec]) -> None:
        host = self.settings.bind_address
        for spec in listeners:
            implicit_tls = spec.kind is Port.SUBMISSIONS
            bound = await self.listener.listen(
                host, L.Port(spec.kind.value, spec.port, implicit_tls=implicit_tls)
            )
            self.ports[spec.kind] = bound
            log.info("smtp.listening", listener=spec.kind.value, port=bound)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting; close idle sessions at once, let busy ones finish within ``grace``."""
        if self.watcher is not None:
            await self.watcher.stop()
        if self.certificates is not None:
            self.certificates.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.certificates
        await self.listener.stop(grace)
        await self.ctx.dispatcher.close()
        if self.inbound is not None:
            await self.inbound.close()
        if self._own_pool:
            await self.ctx.pool.close()


def _pool(url: str, settings: Settings) -> AsyncConnectionPool[Conn]:
    """Autocommit connections, as the store expects. No liveness check at each checkout (a
    round trip per use): a connection found broken is dropped by the pool, the command that
    met it gets 451 and the client's retry gets a fresh connection."""
    return AsyncConnectionPool(
        url,
        min_size=4,
        max_size=20,
        open=False,
        kwargs={
            "row_factory": dict_row,
            "autocommit": True,
            **session_options(statement_timeout=settings.statement_timeout),
        },
        connection_class=psycopg.AsyncConnection[dict[str, Any]],
    )


async def start_server(
    settings: Settings,
    listeners: list[ListenerSpec] | None = None,
    *,
    pool: AsyncConnectionPool[Conn] | None = None,
    tls_context: ssl.SSLContext | None = None,
    throttle: AuthThrottle | None = None,
    dispatcher: Dispatcher | None = None,
    db_timeout: float = 10.0,
    limits: L.ConnectionLimits | None = None,
    login: LoginPath | None = None,
    watch_revocations: bool = True,
) -> SmtpServer:
    """Open the pool and the listeners; the returned server's ``ports`` says where."""
    own_pool = pool is None
    if pool is None:
        pool = _pool(database_url(settings), settings)
        await pool.open(wait=False)
    server_tls = None
    if tls_context is None:
        # The certificate in force now; a renewed one is presented without a restart.
        server_tls = ServerTls(settings)
    tls = tls_context if server_tls is None else server_tls.context
    ctx = Context(
        settings=settings,
        pool=pool,
        dispatcher=dispatcher or Dispatcher(settings),
        authenticate=_login(login or LoginPath(pool, throttle, pool_timeout=db_timeout)),
        tls_available=tls is not None,
        db_timeout=db_timeout,
    )
    safeguards.install(ctx.hooks, settings)
    quota.install(ctx.hooks)
    identity.install(ctx.hooks, pool, db_timeout)
    inbound = checks.install(ctx)
    budget = InflightBudget(settings.max_inflight_bytes)
    folder = settings.data_dir / "spool"
    ctx.hooks.new_sink = lambda _envelope: FileSink(folder, budget)

    async def handler(conn: L.Connection) -> None:
        await serve_connection(ctx, tls, conn)

    listener = L.Listener.from_settings(
        "smtp",
        handler,
        settings,
        idle=settings.smtp_timeout,
        refusal=_refusal,
        tls=tls,
        limits=limits,
        # Only submission has a login to reach; the inbound MX has no deadline.
        login=lambda port: Port(port.name).is_submission,
    )
    server = SmtpServer(settings, ctx, listener, _own_pool=own_pool, inbound=inbound)
    if server_tls is not None:
        server.certificates = asyncio.create_task(certificates.watch(server_tls, settings, pool))
    if watch_revocations:
        # A password changed or an account disabled anywhere ends its sessions here too.
        server.watcher = RevocationWatcher(database_url(settings), listener.end_sessions_of)
        await server.watcher.start()
    await server.start(listeners if listeners is not None else default_listeners(settings))
    return server
