"""The POP3 server over real sockets with Python's poplib: plain, STLS, POP3S, real Postgres."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import poplib
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from postroom import store
from tests.integration.access.pop3_support import Pop3Endpoint, in_thread, inbox_of, running_pop3
from tests.support import Tenant

MSG_A = b"From: a@example.test\r\nSubject: one\r\n\r\nHello.\r\n"
MSG_DOTS = b"From: b@example.test\r\nSubject: dots\r\n\r\n.leading dot\r\n.\r\n..two\r\nend\r\n"
MSG_NO_CRLF = b"From: c@example.test\r\nSubject: open end\r\n\r\nno newline at the end"


@pytest.fixture
async def pop3(database_url: str, tmp_path: Path) -> AsyncIterator[Pop3Endpoint]:
    async with running_pop3(database_url, tmp_path) as endpoint:
        yield endpoint


def login(endpoint: Pop3Endpoint, address: str, password: str = "pw-1") -> poplib.POP3:
    client = poplib.POP3(endpoint.host, endpoint.port, timeout=30)
    client.user(address)
    client.pass_(password)
    return client


def message_bytes(lines: list[bytes]) -> bytes:
    """What poplib hands back (lines, unstuffed) as the message's bytes."""
    return b"".join(line + b"\r\n" for line in lines)


async def test_retr_returns_the_stored_bytes_with_list_sizes(
    pop3: Pop3Endpoint, tenant: Tenant
) -> None:
    address, box = await inbox_of(tenant, "alice")
    for raw in (MSG_A, MSG_DOTS):
        await store.append_message(tenant.conn, box, raw)

    def session() -> tuple[bytes, list[bytes], list[bytes]]:
        client = login(pop3, address)
        stat = client.stat()
        listing = client.list()[1]
        bodies = [message_bytes(client.retr(n)[1]) for n in (1, 2)]
        client.quit()
        assert stat == (2, len(MSG_A) + len(MSG_DOTS))
        return b"", listing, bodies

    _, listing, bodies = await in_thread(session)
    assert listing == [f"1 {len(MSG_A)}".encode(), f"2 {len(MSG_DOTS)}".encode()]
    assert bodies == [MSG_A, MSG_DOTS]


async def test_retr_in_any_order_gives_each_message_its_own_bytes(
    pop3: Pop3Endpoint, tenant: Tenant
) -> None:
    """Small messages are read ahead in batches; whatever the order of RETR and TOP, and with
    a large message in the middle, each number gives its own message."""
    address, box = await inbox_of(tenant, "alice")
    raws = [f"Subject: m{n}\r\n\r\nbody {n}\r\n".encode() * (n + 1) for n in range(40)]
    raws[20] = b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 300  # about 300 KB
    for raw in raws:
        await store.append_message(tenant.conn, box, raw)
    order = [1, 2, 3, 40, 39, 5, 21, 22, 4, 1, 30, 6, *range(7, 21), *range(23, 30)]

    def session() -> list[bytes]:
        client = login(pop3, address)
        bodies = [message_bytes(client.retr(n)[1]) for n in order]
        client.top(10, 0)
        bodies.append(message_bytes(client.retr(11)[1]))
        client.quit()
        return bodies

    bodies = await in_thread(session)
    assert bodies == [raws[n - 1] for n in [*order, 11]]


def dotted(n: int) -> bytes:
    """A small message of its own, with lines that start with a dot."""
    return f"Subject: m{n}\r\n\r\n.line {n}\r\n..\r\nbody {n}\r\n".encode() * (n + 1)


async def test_retr_in_order_across_read_ahead_batches_is_byte_exact(
    pop3: Pop3Endpoint, tenant: Tenant
) -> None:
    """While one batch of small messages is sent, the next is being read, and the message
    after a RETR is stuffed before it is asked for: 50 RETRs in order, each its own bytes."""
    address, box = await inbox_of(tenant, "alice")
    raws = [dotted(n) for n in range(50)]
    for raw in raws:
        await store.append_message(tenant.conn, box, raw)

    def session() -> list[bytes]:
        client = login(pop3, address)
        bodies = [message_bytes(client.retr(n)[1]) for n in range(1, 51)]
        client.quit()
        return bodies

    assert await in_thread(session) == raws


async def test_top_of_the_message_after_a_retr_gives_only_its_top(
    pop3: Pop3Endpoint, tenant: Tenant
) -> None:
    """The message after a RETR is stuffed ahead for a RETR; a TOP of it is still a TOP."""
    address, box = await inbox_of(tenant, "alice")
    for raw in (MSG_A, MSG_DOTS, MSG_A):
        await store.append_message(tenant.conn, box, raw)

    def session() -> tuple[list[bytes], bytes]:
        client = login(pop3, address)
        client.retr(1)
        top = client.top(2, 1)[1]
        whole = message_bytes(client.retr(2)[1])
        client.quit()
        return top, whole

    top, whole = await in_thread(session)
    assert top == [b"From: b@example.test", b"Subject: dots", b"", b".leading dot"]
    assert whole == MSG_DOTS


async def test_retr_after_the_next_message_is_deleted_gives_the_one_asked_for(
    pop3: Pop3Endpoint, tenant: Tenant
) -> None:
    address, box = await inbox_of(tenant, "alice")
    raws = [dotted(n) for n in range(4)]
    for raw in raws:
        await store.append_message(tenant.conn, box, raw)

    def session() -> list[bytes]:
        client = login(pop3, address)
        first = message_bytes(client.retr(1)[1])
        client.dele(2)
        rest = [message_bytes(client.retr(n)[1]) for n in (3, 4)]
        client.quit()
        return [first, *rest]

    assert await in_thread(session) == [raws[0], raws[2], raws[3]]


async def test_quit_while_the_next_batch_is_read_updates_and_unlocks(
    pop3: Pop3Endpoint, tenant: Tenant
) -> None:
    """QUIT right after the first RETR of 40 messages (the next batch still being read):
    the RETR'd message becomes \\Seen and the maildrop is free for the next session."""
    address, box = await inbox_of(tenant, "alice")
    for n in range(40):
        await store.append_message(tenant.conn, box, dotted(n))

    def session() -> bytes:
        client = login(pop3, address)
        client.retr(1)
        client.quit()
        return login(pop3, address).quit()

    assert await in_thread(session) == (
        b"+OK pop.postroom.test POP3 server signing off (40 messages left)"
    )
    messages = await store.list_messages(tenant.conn, box)
    assert [m.uid for m in messages if "\\Seen" in m.flags] == [messages[0].uid]


async def test_retr_octet_count_is_the_list_size(pop3: Pop3Endpoint, tenant: Tenant) -> None:
    address, box = await inbox_of(tenant, "alice")
    await store.append_message(tenant.conn, box, MSG_DOTS)

    def session() -> tuple[bytes, bytes]:
        client = login(pop3, address)
        size = bytes(client.list(1))  # type: ignore[arg-type]
        first = client.retr(1)[0]
        client.quit()
        return size, first

    size, first = await in_thread(session)
    assert size == f"+OK 1 {len(MSG_DOTS)}".encode()
    assert first == f"+OK {len(MSG_DOTS)} octets".encode()


async def test_message_without_final_crlf_gets_one_before_the_terminator(
    pop3: Pop3Endpoint, tenant: Tenant
) -> None:
    address, box = await inbox_of(tenant, "alice")
    await store.append_message(tenant.conn, box, MSG_NO_CRLF)

    def session() -> list[bytes]:
        client = login(pop3, address)
        lines = client.retr(1)[1]
        client.quit()
        return lines

    assert message_bytes(await in_thread(session)) == MSG_NO_CRLF + b"\r\n"


async def test_large_message_streams_byte_exact(pop3: Pop3Endpoint, tenant: Tenant) -> None:
    address, box = await inbox_of(tenant, "alice")
    # 3 MiB of lines, many starting with a dot, so that chunk boundaries fall everywhere.
    body = b"".join(b".line %d with a leading dot\r\n" % i for i in range(100_000))
    raw = b"From: big@example.test\r\nSubject: big\r\n\r\n" + body
    await store.append_message(tenant.conn, box, raw)

    def session() -> bytes:
        client = login(pop3, address)
        lines = client.retr(1)[1]
        client.quit()
        return message_bytes(lines)

    got = await in_thread(session)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(raw).hexdigest()


async def test_top_gives_header_and_lines(pop3: Pop3Endpoint, tenant: Tenant) -> None:
    address, box = await inbox_of(tenant, "alice")
    await store.append_message(tenant.conn, box, MSG_DOTS)

    def session() -> list[bytes]:
        client = login(pop3, address)
        lines = client.top(1, 2)[1]
        client.quit()
        return lines

    assert await in_thread(session) == [
        b"From: b@example.test",
        b"Subject: dots",
        b"",
        b".leading dot",
        b".",
    ]


async def test_uidl_is_stable_across_sessions(pop3: Pop3Endpoint, tenant: Tenant) -> None:
    address, box = await inbox_of(tenant, "alice")
    first = await store.append_message(tenant.conn, box, MSG_A)
    mailbox = await store.get_mailbox_by_id(tenant.conn, box)
    assert mailbox is not None

    def uidl() -> list[bytes]:
        client = login(pop3, address)
        listing = client.uidl()[1]
        client.quit()
        return listing

    expected = f"1 {mailbox.uid_validity}.{first.uid}".encode()
    assert await in_thread(uidl) == [expected]
    assert await in_thread(uidl) == [expected]


async def test_dele_then_quit_removes_the_message(pop3: Pop3Endpoint, tenant: Tenant) -> None:
    address, box = await inbox_of(tenant, "alice")
    await store.append_message(tenant.conn, box, MSG_A)
    kept = await store.append_message(tenant.conn, box, MSG_DOTS)

    def session() -> bytes:
        client = login(pop3, address)
        client.dele(1)
        return client.quit()

    assert (
        await in_thread(session)
        == b"+OK pop.postroom.test POP3 server signing off (1 messages left)"
    )
    assert [m.uid for m in await store.list_messages(tenant.conn, box)] == [kept.uid]


async def test_dropped_connection_after_dele_keeps_the_mail(
    pop3: Pop3Endpoint, tenant: Tenant
) -> None:
    address, box = await inbox_of(tenant, "alice")
    await store.append_message(tenant.conn, box, MSG_A)

    def session() -> None:
        client = login(pop3, address)
        client.dele(1)
        client.close()  # no QUIT: no UPDATE state

    await in_thread(session)
    # The lock is released when the server sees the connection go; a new session proves it.

    def again() -> int:
        client = login(pop3, address)
        count = client.stat()[0]
        client.quit()
        return count

    assert await retry_while_in_use(again) == 1
    assert len(await store.list_messages(tenant.conn, box)) == 1


async def retry_while_in_use(fn: object) -> int:
    """A new login right after a dropped connection may race the server noticing the drop."""
    for _ in range(50):
        try:
            return await in_thread(fn)  # type: ignore[arg-type]
        except poplib.error_proto as exc:
            if b"[IN-USE]" not in exc.args[0]:
                raise
            await asyncio.sleep(0.1)
    raise AssertionError("the maildrop stayed locked")


async def test_second_session_for_the_account_is_refused_in_use(
    pop3: Pop3Endpoint, tenant: Tenant
) -> None:
    address, _ = await inbox_of(tenant, "alice")

    def sessions() -> bytes:
        first = login(pop3, address)
        try:
            with pytest.raises(poplib.error_proto) as refused:
                login(pop3, address)
        finally:
            first.quit()
        return bytes(refused.value.args[0])

    assert await in_thread(sessions) == b"-ERR [IN-USE] The maildrop is in use by another session"


async def test_lock_is_released_at_quit(pop3: Pop3Endpoint, tenant: Tenant) -> None:
    address, _ = await inbox_of(tenant, "alice")

    def twice() -> bytes:
        login(pop3, address).quit()
        return login(pop3, address).quit()

    assert (await in_thread(twice)).startswith(b"+OK")


async def test_mail_arriving_mid_session_waits_for_the_next_session(
    pop3: Pop3Endpoint, tenant: Tenant
) -> None:
    address, box = await inbox_of(tenant, "alice")
    await store.append_message(tenant.conn, box, MSG_A)
    client = await in_thread(login, pop3, address)
    await store.append_message(tenant.conn, box, MSG_DOTS)
    assert (await in_thread(client.stat))[0] == 1
    with pytest.raises(poplib.error_proto):
        await in_thread(client.retr, 2)
    await in_thread(client.quit)
    client = await in_thread(login, pop3, address)
    assert (await in_thread(client.stat))[0] == 2
    await in_thread(client.quit)


async def test_wrong_password_is_refused_with_auth_code(pop3: Pop3Endpoint, tenant: Tenant) -> None:
    address, _ = await inbox_of(tenant, "alice")
    with pytest.raises(poplib.error_proto) as refused:
        await in_thread(login, pop3, address, "wrong")
    assert refused.value.args[0] == b"-ERR [AUTH] Authentication failed"


async def test_retrieved_messages_are_seen_after_quit(pop3: Pop3Endpoint, tenant: Tenant) -> None:
    address, box = await inbox_of(tenant, "alice")
    await store.append_message(tenant.conn, box, MSG_A)
    await store.append_message(tenant.conn, box, MSG_DOTS)

    def session() -> None:
        client = login(pop3, address)
        client.retr(1)
        client.top(2, 0)
        client.quit()

    await in_thread(session)
    flags = [m.flags for m in await store.list_messages(tenant.conn, box)]
    assert flags == [frozenset({"\\Seen"}), frozenset()]


async def test_auth_plain_logs_in(pop3: Pop3Endpoint, tenant: Tenant) -> None:
    address, _ = await inbox_of(tenant, "alice")
    token = base64.b64encode(f"\0{address}\0pw-1".encode())
    reader, writer = await raw_session(pop3)
    writer.write(b"AUTH PLAIN " + token + b"\r\n")
    async with asyncio.timeout(30):
        reply = await reader.readline()
    assert reply == b"+OK Logged in, maildrop has 0 messages (0 octets)\r\n"
    writer.close()


async def test_stls_then_login(pop3: Pop3Endpoint, tenant: Tenant) -> None:
    address, box = await inbox_of(tenant, "alice")
    await store.append_message(tenant.conn, box, MSG_A)

    def session() -> tuple[dict[str, list[str]], list[bytes]]:
        client = poplib.POP3(pop3.host, pop3.port, timeout=30)
        client.stls(pop3.client_context())
        caps = client.capa()
        client.user(address)
        client.pass_("pw-1")
        lines = client.retr(1)[1]
        client.quit()
        return caps, lines

    caps, lines = await in_thread(session)
    assert "STLS" not in caps
    assert message_bytes(lines) == MSG_A


async def test_pop3s_implicit_tls(pop3: Pop3Endpoint, tenant: Tenant) -> None:
    address, box = await inbox_of(tenant, "alice")
    await store.append_message(tenant.conn, box, MSG_DOTS)

    def session() -> list[bytes]:
        client = poplib.POP3_SSL(
            pop3.host, pop3.tls_port, context=pop3.client_context(), timeout=30
        )
        client.user(address)
        client.pass_("pw-1")
        lines = client.retr(1)[1]
        client.quit()
        return lines

    assert message_bytes(await in_thread(session)) == MSG_DOTS


async def test_capa_over_plain_loopback(pop3: Pop3Endpoint) -> None:
    def capa() -> dict[str, list[str]]:
        client = poplib.POP3(pop3.host, pop3.port, timeout=30)
        caps = client.capa()
        client.quit()
        return caps

    caps = await in_thread(capa)
    assert caps["SASL"] == ["PLAIN"]
    assert {"TOP", "UIDL", "USER", "STLS", "PIPELINING", "RESP-CODES"} <= caps.keys()


async def raw_session(pop3: Pop3Endpoint) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(pop3.host, pop3.port)
    assert (await reader.readline()).startswith(b"+OK")
    return reader, writer


async def test_overlong_line_is_refused_and_the_session_goes_on(pop3: Pop3Endpoint) -> None:
    reader, writer = await raw_session(pop3)
    writer.write(b"USER " + b"x" * 100_000 + b"\r\nNOOP\r\n")
    async with asyncio.timeout(10):
        assert await reader.readline() == b"-ERR Line too long\r\n"
        assert await reader.readline() == b"-ERR NOOP is not valid in the AUTHORIZATION state\r\n"
    writer.close()


async def test_pipelined_commands_are_answered_in_order(pop3: Pop3Endpoint, tenant: Tenant) -> None:
    address, box = await inbox_of(tenant, "alice")
    await store.append_message(tenant.conn, box, MSG_A)
    reader, writer = await raw_session(pop3)
    writer.write(f"USER {address}\r\nPASS pw-1\r\nSTAT\r\nLIST 1\r\nQUIT\r\n".encode())
    async with asyncio.timeout(10):
        replies = [await reader.readline() for _ in range(5)]
    assert replies[2:] == [
        f"+OK 1 {len(MSG_A)}\r\n".encode(),
        f"+OK 1 {len(MSG_A)}\r\n".encode(),
        b"+OK pop.postroom.test POP3 server signing off (1 messages left)\r\n",
    ]
    writer.close()


async def test_idle_session_is_logged_out(
    database_url: str, tmp_path: Path, tenant: Tenant
) -> None:
    async with running_pop3(database_url, tmp_path, POSTROOM_POP3_IDLE_TIMEOUT="0.3") as pop3:
        reader, writer = await raw_session(pop3)
        async with asyncio.timeout(10):
            assert await reader.readline() == b"-ERR Disconnected for inactivity\r\n"
            assert await reader.read() == b""
        writer.close()


async def test_a_command_injected_after_stls_is_never_run(pop3: Pop3Endpoint) -> None:
    """CVE-2011-0411: a command after STLS, in the same packet or its own, never runs."""

    def inject(separate: bool) -> list[bytes]:
        sock = socket.create_connection((pop3.host, pop3.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        file = sock.makefile("rb")
        file.readline()
        if separate:
            sock.sendall(b"STLS\r\n")
            sock.sendall(b"CAPA\r\n")
        else:
            sock.sendall(b"STLS\r\nCAPA\r\n")
        ok = file.readline()
        try:
            tls = pop3.client_context().wrap_socket(sock, server_hostname="localhost")
        except (ssl.SSLError, ConnectionError):
            return [ok, b"handshake refused"]
        tls.sendall(b"USER someone\r\n")
        reply = tls.makefile("rb").readline()
        tls.close()
        return [ok, reply]

    for separate in (False, True):
        ok, after = await in_thread(inject, separate)
        assert ok == b"+OK Begin TLS negotiation\r\n"
        # Had CAPA run, its "+OK Capability list follows" would come first.
        assert after in (b"+OK Send PASS\r\n", b"handshake refused")
