"""The ManageSieve listener: asyncio connections wired to the sans-I/O session and the store."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from postroom import listener as L
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
from postroom.access.serving import ProtocolServer
from postroom.auth import plaintext_auth_allowed
from postroom.config import Settings
from postroom.db import Conn
from postroom.errors import (
    AlreadyExists,
    LimitExceeded,
    NotFound,
    StoreError,
)
from postroom.login import LoginPath
from postroom.sieve import SieveSyntaxError
from postroom.store import sieve as sieve_store
from postroom.store.types import AccountId
from postroom.throttle import AuthThrottle

log = structlog.get_logger("postroom.access.managesieve")

POOL_TIMEOUT = 10.0
# RFC 5804 leaves the autologout to the server; as IMAP's (RFC 3501 §5.4), 30 minutes.
IDLE_TIMEOUT = 1800.0
_DB_ERRORS = (psycopg.Error, PoolTimeout, OSError)
R_TOO_MANY = bye("Too many connections, try again later.", "TRYLATER").data
# What ends a session by the server's decision (RFC 5804 §1.3: BYE, TRYLATER to come back).
_CLOSING: dict[L.CloseReason, bytes] = {
    "idle": bye("Disconnected for inactivity.").data,
    "deadline": bye("Disconnected for inactivity.").data,
    "slow": bye("Disconnected for inactivity.").data,
    "shutdown": bye("Server shutting down.", "TRYLATER").data,
    "revoked": bye("Credentials changed, log in again.").data,
}


# How the login path's answers are given (RFC 5804 §1.3 response codes).
_LOGIN_FAILURES: dict[str, LoginFailure] = {
    "wrong": "auth",
    "throttled": "locked-out",
    "unavailable": "temp",
}


class ManageSieveServer(ProtocolServer):
    """Serves ManageSieve (STARTTLS on one port) for one access process."""

    protocol = "managesieve"

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
            idle=IDLE_TIMEOUT,
            refusal=R_TOO_MANY,
            throttle=throttle,
            tls=tls,
            limits=limits,
            login=login,
        )

    async def handle(self, conn: L.Connection) -> None:
        await _Connection(self, conn).run()


class _Connection:
    def __init__(self, server: ManageSieveServer, conn: L.Connection) -> None:
        self.server = server
        self.client = conn
        self.ip = conn.client_ip
        settings = server.settings
        self.session = ManageSieveSession(
            tls_available=server.tls is not None,
            tls_active=conn.tls is not None,
            plaintext_allowed_without_tls=plaintext_auth_allowed(
                tls=False, peer_ip=self.ip, allow_plaintext=settings.allow_plaintext_auth
            ),
            max_script_size=settings.sieve_max_script_size,
            max_redirects=settings.sieve_max_redirects,
        )
        self.account_id: AccountId | None = None
        self.closing = False
        self.log = log.bind(session_id=conn.id, client=self.ip)

    async def run(self) -> None:
        self.log.info("managesieve.connected")
        try:
            await self._carry_out(self.session.greeting())
            while not self.closing:
                try:
                    # Busy while a command or literal is half read: the data rate applies.
                    data = await self.client.read(busy=bool(self.session.reader.buffer))
                except L.Closing as closing:
                    self.log.info("managesieve.closing", reason=closing.reason)
                    await self.client.send(_CLOSING[closing.reason])
                    break
                if not data:
                    break
                await self._carry_out(self.session.receive(data))
        except (ConnectionError, ssl.SSLError) as exc:
            self.log.info("managesieve.connection.lost", error=type(exc).__name__)
        except _DB_ERRORS as exc:
            self.log.error("managesieve.store_error", error=str(exc))
        finally:
            self.log.info("managesieve.disconnected")

    async def _carry_out(self, events: list[Event]) -> None:
        pending = list(events)
        while pending:
            event = pending.pop(0)
            more: list[Event] = []
            if isinstance(event, Send):
                self.client.write(event.data)
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
        await self.client.drain()

    async def _start_tls(self) -> list[Event]:
        assert self.server.tls is not None
        await self.client.drain()
        # RFC 5804 §2.2 / CVE-2011-0411: nothing the client sent before TLS is read after it.
        discarded = len(self.session.reader.buffer)
        self.session.reader.buffer.clear()
        if not await self.client.start_tls(self.server.tls, discarded=discarded):
            return self.session.tls_failed()
        self.log = self.log.bind(tls=True)
        return self.session.tls_started()

    async def _login(self, login: Login) -> list[Event]:
        result = await self.server.login.login(
            login.user, login.password, client_ip=self.ip, service="managesieve"
        )
        if result.account is None:
            return self.session.login_failed(_LOGIN_FAILURES[result.outcome])
        account = result.account
        self.account_id = account.id
        self.client.logged_in(account.id, result.app_password_id)
        self.log = self.log.bind(account_id=account.id)
        self.log.info("managesieve.login", user=account.address)
        return self.session.login_succeeded(account.address)

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
    server: ManageSieveServer

    @property
    def listener(self) -> L.Listener:
        return self.server.listener

    async def stop(self, grace: float = 10.0) -> None:
        await self.server.stop(grace)
