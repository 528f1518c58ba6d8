"""The listeners: accept connections within the limits, run a session for each, shut down."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg
import structlog
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from postroom.config import Settings
from postroom.db import Conn, session_options
from postroom.runtime import database_url
from postroom.smtp_in import metrics
from postroom.smtp_in import replies as R
from postroom.smtp_in.handler import Context, Dispatcher, Session
from postroom.smtp_in.policy import Listener
from postroom.throttle import AuthThrottle
from postroom.tls import server_context

log = structlog.get_logger("postroom.smtp_in")


@dataclass(frozen=True)
class ListenerSpec:
    kind: Listener
    port: int  # 0: any free port (tests)


def default_listeners(settings: Settings) -> list[ListenerSpec]:
    return [
        ListenerSpec(Listener.INBOUND, settings.smtp_port),
        ListenerSpec(Listener.SUBMISSION, settings.submission_port),
        ListenerSpec(Listener.SUBMISSIONS, settings.submissions_port),
    ]


@dataclass
class SmtpServer:
    """Every listener of one smtp-in process, with its shared pool, throttle and limits."""

    settings: Settings
    ctx: Context
    ports: dict[Listener, int] = field(default_factory=dict)
    _servers: list[asyncio.Server] = field(default_factory=list)
    _sessions: dict[asyncio.Task[None], Session] = field(default_factory=dict)
    _per_ip: Counter[str] = field(default_factory=Counter)
    _own_pool: bool = False

    async def _accept(
        self, kind: Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        ip = peer[0] if isinstance(peer, tuple) else "unknown"
        refusal = None
        if len(self._sessions) >= self.settings.max_connections:
            refusal = R.R421_TOO_MANY_CONNECTIONS
        elif self._per_ip[ip] >= self.settings.max_connections_per_ip:
            refusal = R.R421_TOO_MANY_FROM_IP
        if refusal is not None:
            metrics.REJECTED.labels(kind.value, "connection_limit").inc()
            log.info("smtp.connection.refused", client=ip, reason=refusal.text)
            with contextlib.suppress(Exception):
                writer.write(bytes(refusal))
                writer.close()
            return
        session = Session(self.ctx, kind, reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self._sessions[task] = session
        self._per_ip[ip] += 1
        try:
            await session.run()
        finally:
            del self._sessions[task]
            self._per_ip[ip] -= 1
            if self._per_ip[ip] <= 0:
                del self._per_ip[ip]

    async def start(self, listeners: list[ListenerSpec]) -> None:
        host = self.settings.bind_address
        for spec in listeners:
            implicit_tls = spec.kind is Listener.SUBMISSIONS
            if implicit_tls and self.ctx.tls_context is None:
                raise RuntimeError("implicit TLS needs a TLS context")

            async def accept(
                r: asyncio.StreamReader, w: asyncio.StreamWriter, kind: Listener = spec.kind
            ) -> None:
                await self._accept(kind, r, w)

            server = await asyncio.start_server(
                accept,
                host,
                spec.port,
                ssl=self.ctx.tls_context if implicit_tls else None,
                ssl_handshake_timeout=30 if implicit_tls else None,
                backlog=1024,
                reuse_address=True,
            )
            self._servers.append(server)
            self.ports[spec.kind] = server.sockets[0].getsockname()[1]
            log.info("smtp.listening", listener=spec.kind.value, port=self.ports[spec.kind])

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting; close idle sessions at once, let busy ones finish within ``grace``."""
        for server in self._servers:
            server.close()
        for task, session in list(self._sessions.items()):
            if session.idle:
                task.cancel()
        if self._sessions:
            _done, pending = await asyncio.wait(list(self._sessions), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
        await self.ctx.dispatcher.close()
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
) -> SmtpServer:
    """Open the pool and the listeners; the returned server's ``ports`` says where."""
    own_pool = pool is None
    if pool is None:
        pool = _pool(database_url(settings), settings)
        await pool.open(wait=False)
    ctx = Context(
        settings=settings,
        pool=pool,
        throttle=throttle or AuthThrottle(),
        tls_context=tls_context if tls_context is not None else server_context(settings),
        dispatcher=dispatcher or Dispatcher(settings),
        db_timeout=db_timeout,
    )
    server = SmtpServer(settings, ctx, _own_pool=own_pool)
    await server.start(listeners if listeners is not None else default_listeners(settings))
    return server
