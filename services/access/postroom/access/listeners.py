"""Every listener of the access process, started together and stopped together.

A protocol joins by adding a ``ListenerFactory`` to ``FACTORIES``: given the shared context
(settings, database pool, login throttle, TLS, and the process's one set of connection
limits), it starts its ports on the shared connection layer and returns a handle that can
stop them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from psycopg_pool import AsyncConnectionPool

from postroom import certificates
from postroom import listener as L
from postroom.access.pop3.server import Pop3Server
from postroom.config import Settings
from postroom.db import Conn, create_pool, require_url
from postroom.login import LoginPath
from postroom.store.revocation import RevocationWatcher
from postroom.store.types import AccountId
from postroom.throttle import AuthThrottle
from postroom.tls import ServerTls

log = structlog.get_logger("postroom.access")


@dataclass
class AccessContext:
    """What every access listener shares in one process."""

    settings: Settings
    pool: AsyncConnectionPool[Conn]
    throttle: AuthThrottle = field(default_factory=AuthThrottle)
    tls: ssl.SSLContext | None = None
    limits: L.ConnectionLimits | None = None  # every protocol of the process counts here
    login: LoginPath | None = None  # one login path (credential cache, argon2 threads)

    def __post_init__(self) -> None:
        if self.limits is None:
            self.limits = L.ConnectionLimits.from_settings(self.settings)
        if self.login is None:
            self.login = LoginPath(self.pool, self.throttle)


class Started(Protocol):
    """The started ports of one protocol."""

    @property
    def listener(self) -> L.Listener:
        """The connection layer's listener (its ports, its sessions)."""

    async def stop(self, grace: float = 10.0) -> None:
        """Stop listening and end the open sessions."""


ListenerFactory = Callable[[AccessContext], Awaitable[Started]]


@dataclass
class Pop3Listener:
    pop3: Pop3Server

    @property
    def listener(self) -> L.Listener:
        return self.pop3.listener

    async def stop(self, grace: float = 10.0) -> None:
        await self.pop3.stop(grace)


async def start_pop3(context: AccessContext) -> Started:
    """POP3 with STLS on pop3_port, POP3S (implicit TLS) on pop3s_port."""
    settings = context.settings
    pop3 = Pop3Server(settings, context.pool, context.throttle, context.tls, limits=context.limits)
    await pop3.start(settings.bind_address, settings.pop3_port, implicit_tls=False)
    if context.tls is not None:
        await pop3.start(settings.bind_address, settings.pop3s_port, implicit_tls=True)
    return Pop3Listener(pop3)


async def start_imap(context: AccessContext) -> Started:
    """IMAP with STARTTLS on imap_port, IMAPS (implicit TLS) on imaps_port."""
    from postroom.access.imap.server import start_listener

    assert context.limits is not None
    return await start_listener(
        context.settings,
        context.pool,
        context.throttle,
        context.tls,
        context.limits,
        context.login,
    )


async def start_managesieve(context: AccessContext) -> Started:
    """ManageSieve (RFC 5804) with STARTTLS on managesieve_port."""
    from postroom.access.managesieve.server import ManageSieveListener, ManageSieveServer

    settings = context.settings
    server = ManageSieveServer(
        settings,
        context.pool,
        context.throttle,
        context.tls,
        limits=context.limits,
        login=context.login,
    )
    await server.start(settings.bind_address, settings.managesieve_port)
    return ManageSieveListener(server)


FACTORIES: list[ListenerFactory] = [start_pop3, start_imap, start_managesieve]


# A pooled connection back from a command less than this long ago is handed out unchecked.
POOL_RECHECK_AFTER = 2.0


async def serve(
    settings: Settings,
    stop: asyncio.Event,
    *,
    factories: Sequence[ListenerFactory] | None = None,
    started: Callable[[list[Started]], None] | None = None,
    throttle: AuthThrottle | None = None,
) -> None:
    """Run every listener until ``stop`` is set, then shut them down cleanly."""
    pool = create_pool(
        require_url(settings.database_url),
        max_size=settings.access_db_pool_size,
        statement_timeout=settings.statement_timeout,
        recheck_after=POOL_RECHECK_AFTER,
    )
    await pool.open()
    # The certificate in force now; a renewed one is presented without a restart.
    server_tls = ServerTls(settings)
    context = AccessContext(settings, pool, throttle or AuthThrottle(), server_tls.context)
    reloading = asyncio.create_task(certificates.watch(server_tls, settings, pool))
    listeners: list[Started] = []

    def revoked(account_id: AccountId, app_password_id: int | None) -> None:
        ended = sum(
            started.listener.end_sessions_of(account_id, app_password_id) for started in listeners
        )
        log.info(
            "access.sessions_revoked",
            account_id=account_id,
            app_password_id=app_password_id,
            sessions=ended,
        )

    # A password changed, an account disabled or an app password revoked anywhere ends its
    # sessions here too.
    watcher = RevocationWatcher(require_url(settings.database_url), revoked)
    await watcher.start()
    try:
        # No session opens before the watcher listens, so none can miss its revocation.
        async with asyncio.timeout(30):
            await watcher.listening.wait()
        for factory in factories if factories is not None else FACTORIES:
            listeners.append(await factory(context))
        for started_ports in listeners:
            log.info("access.listening", ports=started_ports.listener.ports)
        if started is not None:
            started(listeners)
        await stop.wait()
        log.info("access.stopping")
    finally:
        reloading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reloading
        await watcher.stop()
        grace = settings.shutdown_grace
        await asyncio.gather(*(listener.stop(grace) for listener in listeners))
        await pool.close()
