"""What every protocol server of the access process shares: its settings, the database pool,
the one login path, TLS, and its listener on the shared connection layer."""

from __future__ import annotations

import ssl

from psycopg_pool import AsyncConnectionPool

from postroom import listener as L
from postroom.config import Settings
from postroom.db import Conn
from postroom.login import LoginPath
from postroom.throttle import AuthThrottle

# How long a login waits for a free database connection before answering "try later".
POOL_TIMEOUT = 10.0


class ProtocolServer:
    """One protocol's ports in one process; a subclass runs a session in `handle`."""

    protocol = "?"

    def __init__(
        self,
        settings: Settings,
        pool: AsyncConnectionPool[Conn],
        *,
        idle: float,
        refusal: bytes,
        throttle: AuthThrottle | None = None,
        tls: ssl.SSLContext | None = None,
        limits: L.ConnectionLimits | None = None,
        login: LoginPath | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.tls = tls
        self.login = login or LoginPath(pool, throttle, pool_timeout=POOL_TIMEOUT)
        self.listener = L.Listener.from_settings(
            self.protocol,
            self.handle,
            settings,
            idle=idle,
            refusal=lambda _why: refusal,
            tls=tls,
            limits=limits,
        )

    async def start(self, host: str, port: int, *, implicit_tls: bool = False) -> int:
        """Listen on host:port (port 0 picks a free one), "<protocol>s" with implicit TLS;
        the bound port."""
        name = self.protocol + ("s" if implicit_tls else "")
        return await self.listener.listen(host, L.Port(name, port, implicit_tls=implicit_tls))

    async def stop(self, grace: float = 10.0) -> None:
        """Stop listening; idle sessions end at once, busy ones within ``grace``."""
        await self.listener.stop(grace)

    async def handle(self, conn: L.Connection) -> None:
        raise NotImplementedError
