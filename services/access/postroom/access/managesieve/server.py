"""The ManageSieve listener: asyncio connections wired to the sans-I/O session and the store."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from postroom import store
from postroom.access.managesieve.protocol import (
    Close,
    Done,
    Event,
    Listing,
    Login,
    LoginFailure,
    ManageSieveSession,
    Operation,
    OperationResult,
    Refused,
    ScriptText,
    Send,
    StartTls,
    Unauthenticated,
    bye,
)
from postroom.auth import plaintext_auth_allowed
from postroom.config import Settings
from postroom.db import Conn
from postroom.errors import (
    AlreadyExists,
    AuthenticationFailed,
    LimitExceeded,
    NotFound,
    StoreError,
)
from postroom.sieve import SieveSyntaxError
from postroom.store import sieve as sieve_store
from postroom.store.types import AccountId
from postroom.throttle import AuthThrottle

log = structlog.get_logger("postroom.access.managesieve")

READ_SIZE = 64 * 1024
TLS_HANDSHAKE_TIMEOUT = 30.0
POOL_TIMEOUT = 10.0
# RFC 5804 leaves the autologout to the server; as IMAP's, at least 30 minutes is kind.
IDLE_TIMEOUT = 1800.0
_DB_ERRORS = (psycopg.Error, PoolTimeout, OSError)


class ManageSieveServer:
    """Serves ManageSieve (STARTTLS on one port) for one access process."""

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
        self._per_ip: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> asyncio.Server:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            try:
                await self.handle(reader, writer)
            except asyncio.CancelledError:
                pass
            finally:
                self._tasks.discard(task)

        return await asyncio.start_server(on_connect, host, port)

    async def close_sessions(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        ip = str(peer[0]) if peer else None
        key = ip or "?"
        if sum(self._per_ip.values()) >= self.settings.max_connections or (
            self._per_ip[key] >= self.settings.max_connections_per_ip
        ):
            log.warning("managesieve.connection.refused", client=ip, reason="too many connections")
            with contextlib.suppress(OSError):
                writer.write(bye("Too many connections, try again later.", "TRYLATER").data)
                await writer.drain()
                writer.close()
            return
        self._per_ip[key] += 1
        try:
            await _Connection(self, reader, writer, ip).run()
        finally:
            self._per_ip[key] -= 1
            if self._per_ip[key] <= 0:
                del self._per_ip[key]


class _Connection:
    def __init__(
        self,
        server: ManageSieveServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        ip: str | None,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.ip = ip
        settings = server.settings
        self.session = ManageSieveSession(
            tls_available=server.tls is not None,
            plaintext_allowed_without_tls=plaintext_auth_allowed(
                tls=False, peer_ip=ip, allow_plaintext=settings.allow_plaintext_auth
            ),
            max_script_size=settings.sieve_max_script_size,
            max_redirects=settings.sieve_max_redirects,
        )
        self.account_id: AccountId | None = None
        self.closing = False
        self.log = log.bind(session_id=secrets.token_hex(6), client=ip)

    async def run(self) -> None:
        self.log.info("managesieve.connected")
        try:
            await self._carry_out(self.session.greeting())
            while not self.closing:
                try:
                    async with asyncio.timeout(IDLE_TIMEOUT):
                        data = await self.reader.read(READ_SIZE)
                except TimeoutError:
                    await self._carry_out(self.session.idle_timeout())
                    break
                if not data:
                    break
                await self._carry_out(self.session.receive(data))
        except (ConnectionError, ssl.SSLError) as exc:
            self.log.info("managesieve.connection.lost", error=type(exc).__name__)
        except _DB_ERRORS as exc:
            self.log.error("managesieve.store_error", error=str(exc))
            with contextlib.suppress(OSError):
                self.writer.write(bye("The service is unavailable.", "TRYLATER").data)
        finally:
            with contextlib.suppress(OSError, ssl.SSLError):
                self.writer.close()
                await asyncio.wait_for(self.writer.wait_closed(), 5)
            self.log.info("managesieve.disconnected")

    async def _carry_out(self, events: list[Event]) -> None:
        pending = list(events)
        while pending:
            event = pending.pop(0)
            more: list[Event] = []
            if isinstance(event, Send):
                self.writer.write(event.data)
            elif isinstance(event, StartTls):
                more = await self._start_tls()
            elif isinstance(event, Login):
                more = await self._login(event)
            elif isinstance(event, Operation):
                more = self.session.operation_done(await self._operation(event))
            elif isinstance(event, Unauthenticated):
                self.account_id = None
            elif isinstance(event, Close):
                self.closing = True
                break
            if more:
                # The session may have further commands buffered behind the one just done.
                pending = [*more, *self.session.receive(b""), *pending]
        await self.writer.drain()

    async def _start_tls(self) -> list[Event]:
        assert self.server.tls is not None
        if self.session.reader.buffer:
            # RFC 5804 §2.2: nothing may follow STARTTLS before the handshake.
            self.log.warning("managesieve.starttls.pipelined")
            return self.session.tls_failed()
        await self.writer.drain()
        try:
            await self.writer.start_tls(
                self.server.tls, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT
            )
        except (ssl.SSLError, ConnectionError, TimeoutError) as exc:
            self.log.info("managesieve.starttls.failed", error=type(exc).__name__)
            return self.session.tls_failed()
        self.log = self.log.bind(tls=True)
        return self.session.tls_started()

    async def _login(self, login: Login) -> list[Event]:
        throttle, ip = self.server.throttle, self.ip
        await throttle.refresh(ip, login.user)
        if throttle.locked(ip, login.user):
            self.log.warning("managesieve.login.locked_out", user=login.user)
            return self.session.login_failed("locked-out")
        delay = throttle.delay(ip, login.user)
        if delay:
            await asyncio.sleep(delay)
        failure: LoginFailure = "temp"
        try:
            async with self.server.pool.connection(timeout=POOL_TIMEOUT) as conn:
                account = await store.authenticate(conn, login.user, login.password)
        except AuthenticationFailed:
            throttle.failure(ip, login.user)
            self.log.info("managesieve.login.failed", user=login.user)
            failure = "auth"
        except (*_DB_ERRORS, StoreError) as exc:
            self.log.error("managesieve.login.error", error=str(exc))
        else:
            throttle.success(ip, login.user)
            self.account_id = account.id
            self.log = self.log.bind(account_id=account.id)
            self.log.info("managesieve.login", user=account.address)
            return self.session.login_succeeded(account.address)
        return self.session.login_failed(failure)

    async def _operation(self, op: Operation) -> OperationResult:
        assert self.account_id is not None
        settings = self.server.settings
        try:
            async with self.server.pool.connection(timeout=POOL_TIMEOUT) as conn:
                return await _run(conn, self.account_id, op, settings)
        except SieveSyntaxError as exc:
            return Refused(str(exc))  # RFC 5804 §2.6: the error with the script line
        except NotFound as exc:
            return Refused(str(exc), "NONEXISTENT")
        except sieve_store.ScriptIsActive as exc:
            return Refused(str(exc), "ACTIVE")
        except AlreadyExists as exc:
            return Refused(str(exc), "ALREADYEXISTS")
        except LimitExceeded as exc:
            return Refused(str(exc), "QUOTA/MAXSCRIPTS")
        except ValueError as exc:
            return Refused(str(exc))
        except (*_DB_ERRORS, StoreError) as exc:
            self.log.error("managesieve.operation.error", command=op.command, error=str(exc))
            return Refused("The service is unavailable, try again later.", "TRYLATER")


async def _run(
    conn: Conn, account_id: AccountId, op: Operation, settings: Settings
) -> OperationResult:
    args = op.args
    if op.command == "LISTSCRIPTS":
        scripts = await sieve_store.list_scripts(conn, account_id)
        return Listing([(s.name, s.active) for s in scripts])
    if op.command == "GETSCRIPT":
        script = await sieve_store.get_script(conn, account_id, str(args[0]))
        if script is None or script.source is None:
            raise NotFound(f"no script named {args[0]!r}")
        return ScriptText(script.source)
    if op.command == "PUTSCRIPT":
        await sieve_store.put_script(
            conn,
            account_id,
            str(args[0]),
            str(args[1]),
            max_size=settings.sieve_max_script_size,
            max_scripts=settings.sieve_max_scripts,
            now=datetime.now(UTC),
        )
        return Done("Putscript completed.")
    if op.command == "SETACTIVE":
        # RFC 5804 §2.8: the empty name deactivates every script.
        await sieve_store.set_active(conn, account_id, str(args[0]) or None)
        return Done("Setactive completed.")
    if op.command == "DELETESCRIPT":
        await sieve_store.delete_script(conn, account_id, str(args[0]))
        return Done("Deletescript completed.")
    if op.command == "RENAMESCRIPT":
        await sieve_store.rename_script(conn, account_id, str(args[0]), str(args[1]))
        return Done("Renamescript completed.")
    if op.command == "HAVESPACE":
        sieve_store.check_name(str(args[0]))
        count, _octets = await sieve_store.space_used(conn, account_id)
        existing = await sieve_store.get_script(conn, account_id, str(args[0]))
        if existing is None and count >= settings.sieve_max_scripts:
            return Refused(
                f"at most {settings.sieve_max_scripts} scripts per account", "QUOTA/MAXSCRIPTS"
            )
        return Done("Putscript would succeed.")
    raise ValueError(f"unknown operation {op.command}")


@dataclass
class ManageSieveListener:
    servers: Sequence[asyncio.Server]
    server: ManageSieveServer

    async def stop(self) -> None:
        for s in self.servers:
            s.close()
        await self.server.close_sessions()
        for s in self.servers:
            await s.wait_closed()
