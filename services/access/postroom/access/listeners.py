"""Every listener of the access process, started together and stopped together.

A protocol joins by adding a ``ListenerFactory`` to ``FACTORIES``: given the shared context
(settings, database pool, login throttle, TLS), it starts its servers and returns a handle
that can stop them.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from psycopg_pool import AsyncConnectionPool

from postroom.config import Settings
from postroom.db import Conn, create_pool, require_url
from postroom.throttle import AuthThrottle
from postroom.tls import server_context

log = structlog.get_logger("postroom.access")


@dataclass
class AccessContext:
    """What every access listener shares in one process."""

    settings: Settings
    pool: AsyncConnectionPool[Conn]
    throttle: AuthThrottle = field(default_factory=AuthThrottle)
    tls: ssl.SSLContext | None = None


class Listener(Protocol):
    """Started servers of one protocol."""

    servers: Sequence[asyncio.Server]

    async def stop(self) -> None:
        """Stop listening and end the open sessions."""


ListenerFactory = Callable[[AccessContext], Awaitable[Listener]]


@dataclass
class Pop3Listener:
    servers: Sequence[asyncio.Server]
    close_sessions: Callable[[], Awaitable[None]]

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        await self.close_sessions()
        for server in self.servers:
            await server.wait_closed()


async def start_pop3(context: AccessContext) -> Listener:
    """POP3 with STLS on pop3_port, POP3S (implicit TLS) on pop3s_port."""
    from postroom.access.pop3.server import Pop3Server

    settings = context.settings
    pop3 = Pop3Server(settings, context.pool, context.throttle, context.tls)
    servers = [await pop3.start(settings.bind_address, settings.pop3_port, implicit_tls=False)]
    if context.tls is not None:
        servers.append(
            await pop3.start(settings.bind_address, settings.pop3s_port, implicit_tls=True)
        )
    return Pop3Listener(servers, pop3.close_sessions)


async def start_imap(context: AccessContext) -> Listener:
    """IMAP with STARTTLS on imap_port, IMAPS (implicit TLS) on imaps_port."""
    from postroom.access.imap.server import start_listener

    return await start_listener(context.settings, context.pool, context.throttle, context.tls)


FACTORIES: list[ListenerFactory] = [start_pop3, start_imap]


async def serve(
    settings: Settings,
    stop: asyncio.Event,
    *,
    factories: Sequence[ListenerFactory] | None = None,
    started: Callable[[list[Listener]], None] | None = None,
    throttle: AuthThrottle | None = None,
) -> None:
    """Run every listener until ``stop`` is set, then shut them down cleanly."""
    pool = create_pool(
        require_url(settings.database_url),
        max_size=settings.access_db_pool_size,
        statement_timeout=settings.statement_timeout,
    )
    await pool.open()
    context = AccessContext(settings, pool, throttle or AuthThrottle(), server_context(settings))
    listeners: list[Listener] = []
    try:
        for factory in factories if factories is not None else FACTORIES:
            listeners.append(await factory(context))
        for listener in listeners:
            for server in listener.servers:
                for sock in server.sockets:
                    log.info("access.listening", address=str(sock.getsockname()))
        if started is not None:
            started(listeners)
        await stop.wait()
        log.info("access.stopping")
    finally:
        await asyncio.gather(*(listener.stop() for listener in listeners))
        await pool.close()
