"""The one connection layer of every protocol server: accept, limits, PROXY, TLS, clocks, drain.

A protocol server (smtp-in, POP3, IMAP, ManageSieve) supplies only a handler that runs one
session on a `Connection`, and its refusal line. Everything a stranger can abuse before the
protocol even starts is decided here, once, for all of them:

- **Limits** (`ConnectionLimits`): one count per process across every protocol it serves,
  in total and per client, an IPv6 client counted as its /64 (one subscriber gets a /64).
- **PROXY protocol** v1/v2, read only from ``POSTROOM_TRUSTED_PROXIES`` and required from
  them, so that limits, throttling and ``Received:`` see the client behind a load balancer.
  The header is read off the raw socket with exact-sized reads, so not one octet of what
  follows it (a TLS ClientHello) is taken from the stream.
- **TLS**: implicit TLS after the PROXY header, and STARTTLS (`Connection.start_tls`), the one
  place that touches asyncio's stream buffer: plaintext the client sent after the command
  is thrown away, never read as if it came over TLS (RFC 3207 §4.2, CVE-2011-0411).
- **Clocks** (`Connection.read`): an idle timeout per read, a total deadline until login,
  and a minimum data rate while a command, message or literal is in transit.
- **Drain**: `Listener.stop` closes idle sessions at once (their read raises `Closing`
  with reason ``shutdown``, so each protocol says goodbye its own way) and gives busy ones a
  grace period.
- **Metrics**: one set for every protocol, labelled by protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
import socket
import ssl
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from prometheus_client import Counter, Gauge
from proxyprotocol import ProxyProtocolIncompleteError
from proxyprotocol.detect import ProxyProtocolDetect
from proxyprotocol.result import ProxyResult, is_ipv4, is_ipv6

from postroom.config import Settings
from postroom.tls import describe

log = structlog.get_logger("postroom.listener")

READ_SIZE = 256 * 1024
TLS_HANDSHAKE_TIMEOUT = 30.0
# A trusted proxy sends its header at once; a v2 header with TLVs is at most this long.
PROXY_HEADER_TIMEOUT = 5.0
MAX_PROXY_HEADER = 4096
# The minimum data rate applies after this long in one transfer (TCP slow start, a client
# that composes its literal): a drip then has to keep up ``min_data_rate`` on average.
RATE_GRACE = 30.0
CLOSE_TIMEOUT = 5.0

CloseReason = Literal["idle", "deadline", "slow", "shutdown", "revoked"]
Refusal = Literal["total", "per_client"]

CONNECTIONS = Counter(
    "postroom_connections", "Connections accepted, by protocol and port", ["protocol", "port"]
)
ACTIVE = Gauge("postroom_connections_active", "Connections open now", ["protocol"])
REFUSED = Counter(
    "postroom_connections_refused",
    "Connections refused at once (limits, a bad PROXY header, a failed TLS handshake)",
    ["protocol", "reason"],
)
CLOSED = Counter(
    "postroom_connections_closed_by_server",
    "Connections ended by the server's clocks or its shutdown",
    ["protocol", "reason"],
)
PLAINTEXT_DISCARDED = Counter(
    "postroom_tls_plaintext_discarded",
    "STARTTLS with plaintext after the command, thrown away before the handshake",
    ["protocol"],
)


class Closing(Exception):
    """The connection ends by the server's decision: ``reason`` says which clock or shutdown.
    The protocol answers with its own line (421, ``* BYE``, ``-ERR``) and closes."""

    def __init__(self, reason: CloseReason) -> None:
        super().__init__(reason)
        self.reason: CloseReason = reason


def client_key(ip: str) -> str:
    """What the per-client limits count: an IPv4 address, or the /64 of an IPv6 address
    (IPv4-mapped IPv6 counts as the IPv4 address it maps)."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass
class ConnectionLimits:
    """Connections of one process, every protocol together (one instance per process)."""

    max_total: int
    max_per_client: int
    total: int = 0
    _per_client: Tally[str] = field(default_factory=Tally)

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(settings.max_connections, settings.max_connections_per_ip)

    def admit(self, ip: str) -> Refusal | None:
        """Count a new connection from ``ip``, or say why it is refused (nothing counted)."""
        key = client_key(ip)
        if self.total >= self.max_total:
            return "total"
        if self._per_client[key] >= self.max_per_client:
            return "per_client"
        self.total += 1
        self._per_client[key] += 1
        return None

    def release(self, ip: str) -> None:
        key = client_key(ip)
        self.total -= 1
        self._per_client[key] -= 1
        if self._per_client[key] <= 0:
            del self._per_client[key]

    def of_client(self, ip: str) -> int:
        return self._per_client.get(client_key(ip), 0)


@dataclass(frozen=True)
class Clocks:
    """The timeouts a `Connection` keeps (seconds; ``min_rate`` in octets a second)."""

    idle: float
    login_deadline: float | None = None
    min_rate: int = 1024
    rate_grace: float = RATE_GRACE

    @classmethod
    def from_settings(cls, settings: Settings, *, idle: float, login: bool) -> Clocks:
        """``login``: this port has a login to reach (submission, POP3, IMAP, not MX)."""
        return cls(
            idle=idle,
            login_deadline=settings.login_deadline if login else None,
            min_rate=settings.min_data_rate,
        )


class Connection:
    """One accepted client: its streams, its real address, its TLS state and its clocks."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        protocol: str,
        port_name: str,
        client_ip: str,
        clocks: Clocks,
        tls: str | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = protocol
        self.port_name = port_name
        self.client_ip = client_ip
        self.clocks = clocks
        self.tls = tls  # "TLSv1.3 TLS_AES_256_GCM_SHA384", None in the clear
        self.id = secrets.token_hex(6)
        self.account_id: int | None = None  # set at login; revocation finds sessions by it
        self.app_password_id: int | None = None  # the app password it logged in with
        self.waiting = False  # in a read between commands: safe to end at shutdown
        self.draining = False
        self.end_reason: CloseReason = "shutdown"  # what ends a draining session
        self._loop = asyncio.get_running_loop()
        start = self._loop.time()
        self._deadline = (
            start + clocks.login_deadline if clocks.login_deadline is not None else None
        )
        self._transfer_start: float | None = None
        self._transfer_octets = 0

    # --- reading ---------------------------------------------------------------------------

    def logged_in(self, account_id: int | None = None, app_password_id: int | None = None) -> None:
        """The client has logged in (with the account's password, or with the app password
        ``app_password_id``): the login deadline no longer applies."""
        self._deadline = None
        self.account_id = account_id
        self.app_password_id = app_password_id

    def _timeout(self, busy: bool) -> tuple[float, CloseReason]:
        now = self._loop.time()
        timeout = self.clocks.idle
        reason: CloseReason = "idle"
        if self._deadline is not None and self._deadline - now < timeout:
            timeout, reason = self._deadline - now, "deadline"
        if busy:
            if self._transfer_start is None:
                self._transfer_start, self._transfer_octets = now, 0
            # The next octet must come before the rate falls under min_rate (after the grace).
            clocks = self.clocks
            due = self._transfer_start + clocks.rate_grace
            due += (self._transfer_octets + 1) / clocks.min_rate
            if due - now < timeout:
                timeout, reason = due - now, "slow"
        else:
            self._transfer_start = None
        return max(timeout, 0.0), reason

    async def read(self, size: int = READ_SIZE, *, busy: bool = False) -> bytes:
        """What the client sent next (b"" at EOF), within the clocks, else `Closing`.

        ``busy``: the protocol holds part of a command, message or literal, so the minimum
        data rate applies; otherwise the client is between commands and may be idle.
        """
        if self.draining and not busy:
            raise Closing(self.end_reason)
        timeout, reason = self._timeout(busy)
        self.waiting = not busy
        try:
            async with asyncio.timeout(timeout):
                data = await self.reader.read(size)
        except TimeoutError:
            CLOSED.labels(self.protocol, reason).inc()
            raise Closing(reason) from None
        except asyncio.CancelledError:
            self.interrupted()
            raise
        finally:
            self.waiting = False
        if busy:
            self._transfer_octets += len(data)
        return data

    def interrupted(self) -> None:
        """Call on CancelledError in a wait of one's own (IDLE): when the cancellation was
        the listener ending a waiting session, raise `Closing` instead; else return (and the
        caller re-raises)."""
        task = asyncio.current_task()
        if self.draining and task is not None and task.uncancel() == 0:
            raise Closing(self.end_reason) from None

    def pending(self) -> int:
        """Octets asyncio has received and nobody has read yet."""
        # asyncio keeps them in a private buffer; this layer is the only reader of it.
        buffer: Any = getattr(self.reader, "_buffer", b"")
        return len(buffer)

    # --- writing ---------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def drain(self) -> None:
        await self.writer.drain()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    # --- TLS -------------------------------------------------------------------------------

    async def start_tls(self, context: ssl.SSLContext, *, discarded: int = 0) -> bool:
        """STARTTLS after the protocol's "go ahead" was written: throw away whatever the
        client sent after its command (``discarded``: octets the protocol's own reader held
        and dropped), then handshake. False when the handshake failed (close then)."""
        # RFC 3207 §4.2, RFC 2595 §4, RFC 3501 §6.2.1 / CVE-2011-0411: nothing sent in the
        # clear may be read as if it had come over TLS.
        buffer: Any = getattr(self.reader, "_buffer", None)
        held = len(buffer) if buffer is not None else 0
        if buffer is not None:
            buffer.clear()
        if held or discarded:
            PLAINTEXT_DISCARDED.labels(self.protocol).inc()
            log.warning(
                "tls.plaintext_discarded",
                protocol=self.protocol,
                client=self.client_ip,
                octets=held + discarded,
            )
        try:
            await self.writer.start_tls(context, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            log.info("tls.handshake_failed", protocol=self.protocol, error=str(exc)[:200])
            return False
        self.tls = describe(self.writer.get_extra_info("ssl_object"))
        return True

    async def close(self) -> None:
        try:
            if not self.writer.is_closing():
                self.writer.close()
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.writer.wait_closed()
        except (Exception, asyncio.CancelledError):  # the peer is gone; nothing left to say
            self.writer.transport.abort()


Handler = Callable[[Connection], Awaitable[None]]


@dataclass(frozen=True)
class Port:
    """One listening port of a protocol: ``name`` for logs and metrics ("imaps")."""

    name: str
    port: int  # 0: any free port (tests)
    implicit_tls: bool = False


def _trusted(ip: str, proxies: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    if not proxies:
        return False
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    return any(address in network for network in proxies)


async def _recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = await loop.sock_recv(sock, n - len(data))
        if not chunk:
            raise ConnectionError("closed inside the PROXY header")
        data += chunk
    return bytes(data)


async def read_proxy_header(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> ProxyResult:
    """The PROXY protocol header (v1 or v2) read off the raw socket, octet-exact: what
    follows it stays in the socket for TLS or the protocol."""
    parser = ProxyProtocolDetect()
    data = bytearray()
    while True:
        try:
            return parser.unpack(bytes(data))
        except ProxyProtocolIncompleteError as exc:
            want = exc.want_read
        if len(data) > MAX_PROXY_HEADER:
            raise ValueError("PROXY header too long")
        if want.want_bytes is not None:
            data += await _recv_exactly(loop, sock, want.want_bytes)
        elif want.want_line:
            # v1: one line of at most 107 octets; read up to its LF and no further.
            while not data.endswith(b"\n"):
                if len(data) > 107:
                    raise ValueError("PROXY v1 line too long")
                data += await _recv_exactly(loop, sock, 1)
        else:
            raise ValueError("PROXY header parser wants nothing")


def _proxied_ip(result: ProxyResult) -> str | None:
    """The client address a PROXY header names; None for LOCAL (the proxy's own check)."""
    if is_ipv4(result) or is_ipv6(result):
        return str(result.source[0])
    if result.proxied:
        raise ValueError("PROXY header without a usable address")
    return None


class Listener:
    """Every port of one protocol in one process, on the process's shared limits."""

    def __init__(
        self,
        protocol: str,
        handler: Handler,
        *,
        limits: ConnectionLimits,
        clocks: Callable[[Port], Clocks],
        refusal: Callable[[Refusal], bytes],
        tls: ssl.SSLContext | None = None,
        trusted_proxies: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
    ) -> None:
        self.protocol = protocol
        self.handler = handler
        self.limits = limits
        self.clocks = clocks
        self.refusal = refusal
        self.tls = tls
        self.trusted_proxies = list(trusted_proxies)
        self.ports: dict[str, int] = {}
        self.connections: dict[asyncio.Task[None], Connection | None] = {}
        self._sockets: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []
        self._stopping = False

    @classmethod
    def from_settings(
        cls,
        protocol: str,
        handler: Handler,
        settings: Settings,
        *,
        idle: float,
        refusal: Callable[[Refusal], bytes],
        tls: ssl.SSLContext | None,
        limits: ConnectionLimits | None = None,
        login: Callable[[Port], bool] = lambda _port: True,
    ) -> Listener:
        """A protocol's listener with the process's settings: ``idle`` seconds a client may
        wait between commands, ``login`` whether a port has a login to reach (the deadline)."""

        def clocks(port: Port) -> Clocks:
            return Clocks.from_settings(settings, idle=idle, login=login(port))

        return cls(
            protocol,
            handler,
            limits=limits or ConnectionLimits.from_settings(settings),
            clocks=clocks,
            refusal=refusal,
            tls=tls,
            trusted_proxies=settings.trusted_proxies,
        )

    async def listen(self, host: str, port: Port) -> int:
        """Bind ``host:port`` and accept on it; the bound port number."""
        if port.implicit_tls and self.tls is None:
            raise ValueError(f"{port.name} needs a TLS context")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port.port), family=family, backlog=1024)
        sock.setblocking(False)
        self._sockets.append(sock)
        bound = int(sock.getsockname()[1])
        self.ports[port.name] = bound
        loop = asyncio.get_running_loop()
        self._accepting.append(loop.create_task(self._accept_loop(sock, port)))
        log.info("listener.listening", protocol=self.protocol, port=port.name, number=bound)
        return bound

    async def _accept_loop(self, sock: socket.socket, port: Port) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                client, address = await loop.sock_accept(sock)
            except asyncio.CancelledError:
                raise
            except OSError as exc:
                # EMFILE and friends: back off a moment instead of spinning.
                log.warning("listener.accept_failed", protocol=self.protocol, error=str(exc))
                await asyncio.sleep(0.1)
                continue
            client.setblocking(False)
            with contextlib.suppress(OSError):
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = loop.create_task(self._serve(client, str(address[0]), port))
            self.connections[task] = None
            task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self.connections.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("listener.session_crashed", error=repr(task.exception()))

    async def _serve(self, sock: socket.socket, peer_ip: str, port: Port) -> None:
        loop = asyncio.get_running_loop()
        client_ip = peer_ip
        if _trusted(peer_ip, self.trusted_proxies):
            try:
                async with asyncio.timeout(PROXY_HEADER_TIMEOUT):
                    header = await read_proxy_header(loop, sock)
                client_ip = _proxied_ip(header) or peer_ip
            except (Exception, TimeoutError) as exc:
                REFUSED.labels(self.protocol, "proxy_header").inc()
                log.warning("listener.proxy_header_refused", proxy=peer_ip, error=str(exc))
                sock.close()
                return
        refused = self.limits.admit(client_ip)
        if refused is not None:
            REFUSED.labels(self.protocol, refused).inc()
            log.info("listener.refused", protocol=self.protocol, client=client_ip, why=refused)
            await self._refuse(sock, port, refused)
            return
        try:
            await self._run(sock, client_ip, port)
        finally:
            self.limits.release(client_ip)

    async def _streams(
        self, sock: socket.socket, port: Port
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=READ_SIZE)
        writers: list[asyncio.StreamWriter] = []

        def connected(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # Made through the callback, the streams know they are the server side (which
            # StreamWriter.start_tls asks its protocol).
            writers.append(writer)

        await loop.connect_accepted_socket(
            lambda: asyncio.StreamReaderProtocol(reader, connected),
            sock,
            ssl=self.tls if port.implicit_tls else None,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if port.implicit_tls else None,
        )
        return reader, writers[0]

    async def _refuse(self, sock: socket.socket, port: Port, refused: Refusal) -> None:
        try:
            _reader, writer = await self._streams(sock, port)
        except (OSError, ssl.SSLError, TimeoutError):
            sock.close()
            return
        with contextlib.suppress(Exception):
            writer.write(self.refusal(refused))
            writer.close()
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await writer.wait_closed()

    async def _run(self, sock: socket.socket, client_ip: str, port: Port) -> None:
        try:
            reader, writer = await self._streams(sock, port)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            REFUSED.labels(self.protocol, "tls_handshake").inc()
            log.info("listener.tls_failed", protocol=self.protocol, error=str(exc)[:200])
            sock.close()
            return
        connection = Connection(
            reader,
            writer,
            protocol=self.protocol,
            port_name=port.name,
            client_ip=client_ip,
            clocks=self.clocks(port),
            tls=describe(writer.get_extra_info("ssl_object")),
        )
        task = asyncio.current_task()
        assert task is not None
        self.connections[task] = connection
        if self._stopping:
            connection.draining = True
        CONNECTIONS.labels(self.protocol, port.name).inc()
        ACTIVE.labels(self.protocol).inc()
        try:
            await self.handler(connection)
        except Closing:
            pass
        finally:
            ACTIVE.labels(self.protocol).dec()
            await connection.close()

    def sessions(self) -> Iterable[Connection]:
        return (c for c in self.connections.values() if c is not None)

    def end_sessions_of(self, account_id: int, app_password_id: int | None = None) -> int:
        """End every session logged in to this account (its password changed, or it was
        disabled), or only those opened with the app password ``app_password_id`` (it was
        revoked): a waiting one at once, a busy one after its command. How many."""
        told = 0
        for task, connection in list(self.connections.items()):
            if (
                connection is not None
                and connection.account_id == account_id
                and app_password_id in (None, connection.app_password_id)
            ):
                connection.end_reason = "revoked"
                connection.draining = True
                if connection.waiting:
                    task.cancel()
                told += 1
        return told

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting; end idle sessions now and busy ones after ``grace`` seconds."""
        self._stopping = True
        for accepting in self._accepting:
            accepting.cancel()
        await asyncio.gather(*self._accepting, return_exceptions=True)
        for sock in self._sockets:
            sock.close()
        for task, connection in list(self.connections.items()):
            if connection is None:
                task.cancel()
                continue
            connection.draining = True
            if connection.waiting:
                task.cancel()
        tasks = list(self.connections)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=CLOSE_TIMEOUT)
