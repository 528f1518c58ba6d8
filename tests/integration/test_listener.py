"""The shared connection layer over real loopback sockets: limits, PROXY, TLS, clocks, drain."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trustme
from proxyprotocol.result import ProxyResultIPv4, ProxyResultIPv6
from proxyprotocol.v1 import ProxyProtocolV1
from proxyprotocol.v2 import ProxyProtocolV2

from postroom import listener as L
from tests.integration.access.pop3_support import in_thread

Handler = Callable[[L.Connection], Awaitable[None]]


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context) from a test CA."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    folder: Path = tmp_path_factory.mktemp("listener")
    assert folder.is_dir()
    return server, client


@asynccontextmanager
async def listening(
    handler: Handler,
    *,
    limits: L.ConnectionLimits | None = None,
    clocks: L.Clocks | None = None,
    tls: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
    proxies: str = "",
) -> AsyncIterator[tuple[L.Listener, int]]:
    listener = L.Listener(
        "test",
        handler,
        limits=limits or L.ConnectionLimits(100, 100),
        clocks=lambda _port: clocks or L.Clocks(idle=10),
        refusal=lambda why: f"NO {why}\r\n".encode(),
        tls=tls,
        trusted_proxies=[ipaddress.ip_network(p) for p in proxies.split(",") if p],
    )
    port = await listener.listen("127.0.0.1", L.Port("test", 0, implicit_tls=implicit_tls))
    try:
        yield listener, port
    finally:
        await listener.stop(grace=1)


async def echo_lines(conn: L.Connection) -> None:
    """Greets with the client's address, then answers each line with "got <line>"."""
    await conn.send(f"hello {conn.client_ip}\r\n".encode())
    buf = b""
    while True:
        try:
            data = await conn.read(busy=bool(buf))
        except L.Closing as closing:
            await conn.send(f"bye {closing.reason}\r\n".encode())
            return
        if not data:
            return
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            await conn.send(b"got " + line.rstrip(b"\r") + b"\r\n")


class Client:
    def __init__(self, port: int, prefix: bytes = b"") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if prefix:
            self.sock.sendall(prefix)
        self.file = self.sock.makefile("rb")

    def line(self) -> bytes:
        return self.file.readline()

    def send(self, data: bytes) -> bytes:
        self.sock.sendall(data)
        return self.line()

    def close(self) -> None:
        self.sock.close()


def test_an_ipv6_client_is_counted_as_its_64() -> None:
    limits = L.ConnectionLimits(max_total=100, max_per_client=2)
    assert limits.admit("2001:db8:1:2::1") is None
    assert limits.admit("2001:db8:1:2:ffff::9") is None
    assert limits.admit("2001:db8:1:2:abcd::1") == "per_client"
    assert limits.admit("2001:db8:1:3::1") is None
    assert L.client_key("::ffff:192.0.2.1") == "192.0.2.1"


def test_limits_refuse_past_the_total_and_release_slots() -> None:
    limits = L.ConnectionLimits(max_total=2, max_per_client=5)
    assert limits.admit("192.0.2.1") is None
    assert limits.admit("192.0.2.2") is None
    assert limits.admit("192.0.2.3") == "total"
    limits.release("192.0.2.1")
    assert limits.admit("192.0.2.3") is None


async def test_two_protocols_of_a_process_share_one_count_per_client() -> None:
    limits = L.ConnectionLimits(max_total=100, max_per_client=2)
    async with (
        listening(echo_lines, limits=limits) as (_a, port_a),
        listening(echo_lines, limits=limits) as (_b, port_b),
    ):

        def three() -> list[bytes]:
            first, second = Client(port_a), Client(port_b)
            greetings = [first.line(), second.line()]
            third = Client(port_b)
            greetings.append(third.line())
            for c in (first, second, third):
                c.close()
            return greetings

        assert await in_thread(three) == [
            b"hello 127.0.0.1\r\n",
            b"hello 127.0.0.1\r\n",
            b"NO per_client\r\n",
        ]


async def test_the_login_deadline_ends_a_busy_looking_idler() -> None:
    """However often it sends a line, a client that never logs in is out at the deadline."""
    async with listening(echo_lines, clocks=L.Clocks(idle=10, login_deadline=0.5)) as (_l, port):

        def chatter() -> bytes:
            client = Client(port)
            client.line()
            for _ in range(1000):
                time.sleep(0.01)
                line = client.send(b"NOOP\r\n")
                if not line.startswith(b"got"):
                    return line
            return b"never cut"

        assert await in_thread(chatter) == b"bye deadline\r\n"


async def test_a_drip_under_the_minimum_rate_is_cut() -> None:
    """One octet now and then inside a line keeps no connection: the rate, not each read."""
    clocks = L.Clocks(idle=10, min_rate=100, rate_grace=0.2)
    async with listening(echo_lines, clocks=clocks) as (_l, port):

        def drip() -> bytes:
            client = Client(port)
            client.line()
            client.sock.settimeout(0.05)
            for _ in range(400):
                client.sock.sendall(b"x")
                try:
                    return client.sock.recv(100)
                except TimeoutError:
                    continue
            return b"never cut"

        assert await in_thread(drip) == b"bye slow\r\n"


async def test_an_idle_client_is_timed_out() -> None:
    async with listening(echo_lines, clocks=L.Clocks(idle=0.3)) as (_l, port):

        def idle() -> list[bytes]:
            client = Client(port)
            return [client.line(), client.line(), client.line()]

        assert await in_thread(idle) == [b"hello 127.0.0.1\r\n", b"bye idle\r\n", b""]


async def test_proxy_v1_and_v2_headers_name_the_client_from_a_trusted_proxy() -> None:
    v4 = ProxyResultIPv4(
        (ipaddress.IPv4Address("192.0.2.7"), 5555), (ipaddress.IPv4Address("127.0.0.1"), 25)
    )
    v6 = ProxyResultIPv6(
        (ipaddress.IPv6Address("2001:db8::7"), 5555), (ipaddress.IPv6Address("::1"), 25)
    )
    async with listening(echo_lines, proxies="127.0.0.0/8") as (_l, port):

        def greet(prefix: bytes) -> bytes:
            client = Client(port, prefix + b"PING\r\n")
            lines = client.line() + client.line()
            client.close()
            return lines

        assert await in_thread(greet, ProxyProtocolV1().pack(v4)) == (
            b"hello 192.0.2.7\r\ngot PING\r\n"
        )
        assert await in_thread(greet, ProxyProtocolV2().pack(v6)) == (
            b"hello 2001:db8::7\r\ngot PING\r\n"
        )


async def test_a_proxy_header_from_anyone_else_is_just_data() -> None:
    async with listening(echo_lines) as (_l, port):

        def greet() -> list[bytes]:
            client = Client(port, b"PROXY TCP4 192.0.2.7 127.0.0.1 5555 25\r\n")
            return [client.line(), client.line()]

        assert await in_thread(greet) == [
            b"hello 127.0.0.1\r\n",
            b"got PROXY TCP4 192.0.2.7 127.0.0.1 5555 25\r\n",
        ]


async def test_a_trusted_proxy_without_a_header_is_refused() -> None:
    async with listening(echo_lines, proxies="127.0.0.1/32") as (_l, port):

        def greet() -> bytes:
            client = Client(port, b"EHLO not-a-header.example\r\n")
            try:
                return client.line()
            except ConnectionResetError:
                return b""

        assert await in_thread(greet) == b""


async def test_implicit_tls_behind_a_proxy_keeps_the_client_hello(
    tls_pair: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """The header is read octet-exact, so the ClientHello sent with it is not lost."""
    server_tls, client_tls = tls_pair
    v4 = ProxyResultIPv4(
        (ipaddress.IPv4Address("198.51.100.4"), 1), (ipaddress.IPv4Address("127.0.0.1"), 2)
    )
    async with listening(echo_lines, tls=server_tls, implicit_tls=True, proxies="127.0.0.1/32") as (
        _l,
        port,
    ):

        def greet() -> bytes:
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            raw.sendall(ProxyProtocolV2().pack(v4))
            tls = client_tls.wrap_socket(raw, server_hostname="localhost")
            line = tls.makefile("rb").readline()
            tls.close()
            return line

        assert await in_thread(greet) == b"hello 198.51.100.4\r\n"


async def test_plaintext_buffered_at_starttls_is_never_read_over_tls(
    tls_pair: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """CVE-2011-0411: a command injected in a packet of its own after STARTTLS, already in
    asyncio's buffer when the handshake starts, is thrown away."""
    server_tls, client_tls = tls_pair

    async def starttls(conn: L.Connection) -> None:
        await conn.send(b"ready\r\n")
        assert await conn.read() == b"STARTTLS\r\n"
        for _ in range(500):  # until the injected packet sits in asyncio's buffer
            if conn.pending():
                break
            await asyncio.sleep(0.01)
        assert conn.pending() == len(b"INJECTED\r\n")
        await conn.send(b"go ahead\r\n")
        assert await conn.start_tls(server_tls)
        await conn.send(b"first over TLS: " + await conn.read())

    async with listening(starttls, tls=server_tls) as (_l, port):

        def client() -> list[bytes]:
            c = Client(port)
            c.line()
            c.sock.sendall(b"STARTTLS\r\n")
            time.sleep(0.2)  # a packet of its own, read by nobody before the handshake
            c.sock.sendall(b"INJECTED\r\n")
            ok = c.line()
            tls = client_tls.wrap_socket(c.sock, server_hostname="localhost")
            tls.sendall(b"REAL\r\n")
            return [ok, tls.makefile("rb").readline()]

        assert await in_thread(client) == [b"go ahead\r\n", b"first over TLS: REAL\r\n"]


async def test_shutdown_ends_idle_sessions_at_once_and_lets_busy_ones_finish() -> None:
    finished: list[str] = []

    async def busy_or_idle(conn: L.Connection) -> None:
        await conn.send(b"hello\r\n")
        try:
            data = await conn.read()
        except L.Closing as closing:
            await conn.send(f"bye {closing.reason}\r\n".encode())
            finished.append("idle")
            return
        await asyncio.sleep(0.3)  # a command at work when the stop comes
        await conn.send(b"done " + data)
        finished.append("busy")

    async with listening(busy_or_idle) as (listener, port):

        def connect(command: bytes) -> Client:
            client = Client(port)
            client.line()
            if command:
                client.sock.sendall(command)
            return client

        idle = await in_thread(connect, b"")
        busy = await in_thread(connect, b"WORK\r\n")
        await asyncio.sleep(0.1)
        await listener.stop(grace=5)
        assert await in_thread(idle.line) == b"bye shutdown\r\n"
        assert await in_thread(busy.line) == b"done WORK\r\n"
        assert sorted(finished) == ["busy", "idle"]
