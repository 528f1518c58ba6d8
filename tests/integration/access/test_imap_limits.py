"""IMAP against strangers: connection and session limits, login throttling, autologout."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

import pytest

from postroom import store
from postroom.access.imap.parser import Command
from postroom.access.imap.protocol import Next, Session
from postroom.db import Conn, connect
from postroom.store.types import Account
from postroom.throttle import AuthThrottle
from tests.integration.access.imap_support import ImapEndpoint, Transcript, message, running_imap
from tests.integration.access.pop3_support import in_thread
from tests.support import Tenant


class Line:
    """A raw IMAP connection read line by line."""

    def __init__(self, endpoint: ImapEndpoint) -> None:
        self.sock = socket.create_connection((endpoint.host, endpoint.port), timeout=10)
        self.file = self.sock.makefile("rb")

    def read(self) -> bytes:
        return self.file.readline()

    def send(self, line: str) -> bytes:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.read()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def until_tagged(conn: Line, line: str) -> list[bytes]:
    """Send a command; every line up to and including its tagged reply."""
    tag = line.split(" ", 1)[0].encode()
    lines = [conn.send(line)]
    while not lines[-1].startswith(tag + b" ") and lines[-1]:
        lines.append(conn.read())
    return lines


def second_connection_refused(endpoint: ImapEndpoint) -> list[bytes]:
    first = Line(endpoint)
    try:
        greeting = first.read()
        second = Line(endpoint)
        try:
            return [greeting[:4], second.read(), second.read()]
        finally:
            second.close()
    finally:
        first.close()


async def test_connections_per_ip_are_limited(database_url: str, tmp_path: Path) -> None:
    async with running_imap(database_url, tmp_path, POSTROOM_MAX_CONNECTIONS_PER_IP="1") as imap:
        assert await in_thread(second_connection_refused, imap) == [
            b"* OK",
            b"* BYE [UNAVAILABLE] Too many connections, try again later\r\n",
            b"",
        ]


def two_logins(endpoint: ImapEndpoint, account: Account) -> list[bytes]:
    a, b = Line(endpoint), Line(endpoint)
    try:
        a.read(), b.read()
        first = a.send(f"a LOGIN {account.address} pw-1")
        second = b.send(f"b LOGIN {account.address} pw-1")
        return [first[:4], second]
    finally:
        a.close()
        b.close()


async def test_sessions_per_account_are_limited(
    database_url: str, tmp_path: Path, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "pw-1")
    async with running_imap(
        database_url, tmp_path, POSTROOM_IMAP_MAX_SESSIONS_PER_ACCOUNT="1"
    ) as imap:
        assert await in_thread(two_logins, imap, alice) == [
            b"a OK",
            b"b NO [LIMIT] Too many sessions for this account\r\n",
        ]


def guess(endpoint: ImapEndpoint, account: Account, tries: int) -> list[bytes]:
    conn = Line(endpoint)
    try:
        conn.read()
        answers = [conn.send(f"a{n} LOGIN {account.address} wrong-{n}") for n in range(tries)]
        answers.append(conn.send(f"z LOGIN {account.address} pw-1"))
        return answers
    finally:
        conn.close()


async def test_repeated_failures_lock_the_account_out(
    database_url: str, tmp_path: Path, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "pw-1")
    throttle = AuthThrottle(free_failures=1, base_delay=0.01, block_after=3)
    async with running_imap(database_url, tmp_path, throttle=throttle) as imap:
        answers = await in_thread(guess, imap, alice, 3)
    assert answers == [
        b"a0 NO [AUTHENTICATIONFAILED] Authentication failed\r\n",
        b"a1 NO [AUTHENTICATIONFAILED] Authentication failed\r\n",
        b"a2 NO [AUTHENTICATIONFAILED] Authentication failed\r\n",
        # Locked out: even the right password is refused for now.
        b"z NO [UNAVAILABLE] Too many failed logins, try again later\r\n",
    ]


def wait_for_bye(endpoint: ImapEndpoint, account: Account, idle: bool) -> tuple[list[bytes], float]:
    conn = Line(endpoint)
    try:
        conn.read()
        conn.send(f"a LOGIN {account.address} pw-1")
        started = time.monotonic()
        lines = [conn.send("b IDLE")] if idle else []
        lines += [conn.read(), conn.read()]
        return lines, time.monotonic() - started
    finally:
        conn.close()


async def test_an_idle_client_is_logged_out(
    database_url: str, tmp_path: Path, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "pw-1")
    async with running_imap(database_url, tmp_path, POSTROOM_IMAP_IDLE_TIMEOUT="0.5") as imap:
        lines, elapsed = await in_thread(wait_for_bye, imap, alice, False)
    assert lines == [b"* BYE Autologout; idle for too long\r\n", b""]
    assert 0.4 < elapsed < 5


async def test_idle_too_is_ended_by_the_autologout_timer(
    database_url: str, tmp_path: Path, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "pw-1")
    async with running_imap(database_url, tmp_path, POSTROOM_IMAP_IDLE_TIMEOUT="0.5") as imap:
        lines, _ = await in_thread(wait_for_bye, imap, alice, True)
    assert lines == [b"+ idling\r\n", b"* BYE Autologout; idle for too long\r\n", b""]


def starttls_injection(endpoint: ImapEndpoint) -> list[bytes]:
    conn = Line(endpoint)
    try:
        conn.read()
        # A command sent in the same packet as STARTTLS must not run after the handshake.
        conn.sock.sendall(b"a STARTTLS\r\nb CAPABILITY\r\n")
        ok = conn.read()
        context = ssl.create_default_context(cafile=str(endpoint.ca_file))
        tls = context.wrap_socket(conn.sock, server_hostname="localhost")
        tls.sendall(b"c NOOP\r\n")
        return [ok, tls.recv(1024)]
    finally:
        conn.close()


async def test_commands_pipelined_before_the_tls_handshake_are_discarded(
    database_url: str, tmp_path: Path
) -> None:
    async with running_imap(database_url, tmp_path) as imap:
        assert await in_thread(starttls_injection, imap) == [
            b"a OK Begin TLS negotiation now\r\n",
            b"c OK NOOP completed\r\n",
        ]


def noop_twice(endpoint: ImapEndpoint) -> list[bytes]:
    conn = Line(endpoint)
    try:
        conn.read()
        return [conn.send("a NOOP"), conn.read(), conn.read()]
    finally:
        conn.close()


def noop_greeting(endpoint: ImapEndpoint) -> bytes:
    conn = Line(endpoint)
    try:
        return conn.read()
    finally:
        conn.close()


async def test_a_failure_inside_a_command_ends_only_that_session_with_bye(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: Session, command: Command) -> Next:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Session, "_cmd_noop", broken)
    async with running_imap(database_url, tmp_path) as imap:
        assert await in_thread(noop_twice, imap) == [
            b"\r\n",
            b"* BYE [SERVERBUG] Internal error, closing\r\n",
            b"",
        ]
        # The server itself goes on.
        assert (await in_thread(noop_greeting, imap)).startswith(b"* OK [CAPABILITY ")


def literal_exchange(endpoint: ImapEndpoint, address: str | None) -> list[bytes]:
    """A 100,000-octet APPEND literal announced with LITERAL+, before or after LOGIN."""
    line = Line(endpoint)
    try:
        line.read()
        if address is not None:
            assert line.send(f'l LOGIN "{address}" "pw-1"').startswith(b"l OK")
        line.sock.sendall(b"a APPEND INBOX {100000+}\r\n" + b"x" * 100_000 + b"\r\n")
        reply = line.read()
        return [reply, line.send("n NOOP")]
    finally:
        line.close()


async def test_a_stranger_cannot_send_a_message_sized_literal(
    database_url: str, tmp_path: Path
) -> None:
    """Before LOGIN an APPEND literal is held to the limit of any literal (64 KiB), so an
    unauthenticated connection never makes the server buffer a whole message."""
    async with running_imap(database_url, tmp_path) as imap:
        refused, after = await in_thread(literal_exchange, imap, None)
    assert refused == b"a NO [TOOBIG] Literal too big\r\n"
    assert after.startswith(b"n OK")


async def test_a_logged_in_client_may_append_a_large_message(
    database_url: str, tmp_path: Path, tenant: Tenant
) -> None:
    await tenant.account("alice", "pw-1")
    async with running_imap(database_url, tmp_path) as imap:
        appended, after = await in_thread(literal_exchange, imap, tenant.address("alice"))
    assert appended.startswith(b"a OK [APPENDUID ")
    assert after.startswith(b"n OK")


async def test_a_search_past_the_statement_timeout_answers_no_limit_and_the_session_goes_on(
    database_url: str, tmp_path: Path, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "pw-1")
    inbox = await store.get_mailbox(tenant.conn, alice.id, "INBOX")
    assert inbox is not None
    await store.append_message(tenant.conn, inbox.id, message("zebra crossing"))
    async with running_imap(database_url, tmp_path, POSTROOM_STATEMENT_TIMEOUT="0.3") as imap:
        line = Line(imap)
        try:
            await in_thread(line.read)
            await in_thread(until_tagged, line, f"a LOGIN {alice.address} pw-1")
            await in_thread(until_tagged, line, "b SELECT INBOX")
            # Another session holds the table the search reads; the lock wait counts
            # towards the statement timeout, so the search is cancelled without a slow query.
            holder = await connect(database_url)
            try:
                await holder.execute("LOCK TABLE blobs IN ACCESS EXCLUSIVE MODE")
                refused = await in_thread(until_tagged, line, "c SEARCH SUBJECT zebra")
            finally:
                await holder.rollback()
                await holder.close()
            answered = await in_thread(until_tagged, line, "d SEARCH SUBJECT zebra")
        finally:
            line.close()
    assert refused == [b"c NO [LIMIT] the search took too long; narrow it down\r\n"]
    assert answered == [b"* SEARCH 1\r\n", b"d OK SEARCH completed\r\n"]


async def test_a_search_with_a_body_term_too_short_for_the_index_answers_no_limit(
    conn: Conn, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "pw-1")
    t = Transcript(conn)
    await t.send(f"a LOGIN {alice.address} pw-1")
    await t.send("b SELECT INBOX")
    assert await t.lines("c SEARCH BODY ab") == [
        "c NO [LIMIT] body and text search terms need at least 3 characters"
    ]
    assert await t.lines("d SEARCH BODY abc") == ["* SEARCH", "d OK SEARCH completed"]


def starttls_injection_in_its_own_packet(endpoint: ImapEndpoint) -> list[bytes]:
    conn = Line(endpoint)
    try:
        conn.read()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sock.sendall(b"a STARTTLS\r\n")
        conn.sock.sendall(b"b CAPABILITY\r\n")
        ok = conn.read()
        context = ssl.create_default_context(cafile=str(endpoint.ca_file))
        try:
            tls = context.wrap_socket(conn.sock, server_hostname="localhost")
        except (ssl.SSLError, ConnectionError):
            return [ok, b"handshake refused"]
        tls.sendall(b"c NOOP\r\n")
        return [ok, tls.recv(1024)]
    finally:
        conn.close()


async def test_a_command_injected_in_a_packet_of_its_own_after_starttls_is_never_run(
    database_url: str, tmp_path: Path
) -> None:
    """CVE-2011-0411: whether the injection meets the reader, the connection's buffer or the
    handshake, it never runs as if it had come over TLS."""
    async with running_imap(database_url, tmp_path) as imap:
        ok, after = await in_thread(starttls_injection_in_its_own_packet, imap)
    assert ok == b"a OK Begin TLS negotiation now\r\n"
    assert after in (b"c OK NOOP completed\r\n", b"handshake refused")


def noop_until_bye(endpoint: ImapEndpoint) -> bytes:
    conn = Line(endpoint)
    try:
        conn.read()
        for _ in range(1000):
            time.sleep(0.01)
            line = conn.send("a NOOP")
            if not line.startswith(b"a OK"):
                return line
        return b"never logged out"
    finally:
        conn.close()


async def test_a_client_that_never_logs_in_is_out_at_the_login_deadline(
    database_url: str, tmp_path: Path
) -> None:
    """Per-read timeouts alone let a stranger stay for ever by sending NOOP; the deadline
    counts the whole time before login."""
    async with running_imap(database_url, tmp_path, POSTROOM_LOGIN_DEADLINE="0.5") as imap:
        assert await in_thread(noop_until_bye, imap) == b"* BYE Autologout; no login in time\r\n"
