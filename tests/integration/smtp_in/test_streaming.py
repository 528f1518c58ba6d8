"""Large DATA goes to a file as it arrives and into Postgres as a stream, within a budget."""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from collections.abc import AsyncIterator, Callable

from postroom import store
from postroom.db import Conn
from tests.integration.smtp_in.conftest import HOSTNAME
from tests.integration.smtp_in.test_inbound import queued
from tests.integration.smtp_in.test_submission import PASSWORD, submit
from tests.integration.smtp_in.transcript import ServerThread
from tests.support import Tenant

BIG = 3 * 1024 * 1024


def big_message(size: int, subject: str = "big", sender: str = "a@b.example") -> bytes:
    head = f"From: {sender}\r\nSubject: {subject}\r\n\r\n".encode()
    line = b"0123456789" * 7 + b"abcdef\r\n"  # 78 octets
    body = line * ((size - len(head)) // len(line))
    return head + body + b".leading dot kept\r\n"


def send(port: int, to: str, msg: bytes) -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo("client.example")
        client.mail("a@b.example")
        client.rcpt(to)
        code, text = client.data(msg)
        return code, text.decode()


async def test_a_large_message_is_stored_byte_for_byte(
    start_smtp: Callable[..., ServerThread], tenant: Tenant, conn: Conn
) -> None:
    server = start_smtp(max_message_size=str(8 * 1024 * 1024))
    bob = await tenant.account("bob")
    msg = big_message(BIG)
    code, text = send(server.inbound, bob.address, msg)
    raw, recipients, _ = await queued(conn, f"{code} {text}")
    assert recipients == [bob.address]
    assert raw.startswith(b"Received: from ")
    assert raw.endswith(msg)  # unstuffed: the ".leading dot" line came in as "..leading"
    cur = await conn.execute(
        "SELECT b.sha256, b.size FROM blobs b JOIN queue_messages q ON q.blob_id = b.id "
        "WHERE q.id = %s",
        (int(text.rsplit(" ", 1)[1]),),
    )
    row = await cur.fetchone()
    assert (bytes(row["sha256"]), row["size"]) == (hashlib.sha256(raw).digest(), len(raw))


async def test_content_already_stored_is_not_stored_again(
    start_smtp: Callable[..., ServerThread], tenant: Tenant, conn: Conn
) -> None:
    server = start_smtp(max_message_size=str(8 * 1024 * 1024))
    bob = await tenant.account("bob")
    msg = big_message(BIG, "twice")
    first = send(server.inbound, bob.address, msg)
    second = send(server.inbound, bob.address, msg)
    assert first[0] == second[0] == 250
    # Each has its own Received: field (its own id and time), so each its own blob; the
    # store's content addressing is checked directly.
    chunks = [msg[i : i + 1000] for i in range(0, len(msg), 1000)]

    async def pieces() -> AsyncIterator[bytes]:
        for c in chunks:
            yield c

    digest = hashlib.sha256(msg).digest()
    one = await store.put_blob_stream(conn, digest, len(msg), pieces())
    two = await store.put_blob_stream(conn, digest, len(msg), pieces())
    assert one == two


async def test_a_large_submission_gets_message_id_and_date(
    start_smtp: Callable[..., ServerThread],
    client_tls: ssl.SSLContext,
    tenant: Tenant,
    conn: Conn,
) -> None:
    server = start_smtp(max_message_size=str(8 * 1024 * 1024))
    alice = await tenant.account("alice", PASSWORD)
    msg = big_message(BIG, sender=alice.address)
    reply = submit(
        server.submission, client_tls, alice.address, alice.address, ["bob@remote.example"], msg
    )
    raw, _, _ = await queued(conn, reply)
    head, _, body = raw.partition(b"\r\n\r\n")
    fields = head.split(b"\r\n")
    assert fields[-4:-2] == [f"From: {alice.address}".encode(), b"Subject: big"]
    assert fields[-2].startswith(b"Date: ")
    assert fields[-1].startswith(b"Message-ID: <")
    assert fields[-1].endswith(b"@" + HOSTNAME.encode() + b">")
    assert msg.endswith(body)


async def test_past_the_inflight_budget_data_is_452_4_3_1_and_the_session_goes_on(
    start_smtp: Callable[..., ServerThread], tenant: Tenant
) -> None:
    server = start_smtp(
        max_message_size=str(8 * 1024 * 1024), max_inflight_bytes=str(2 * 1024 * 1024)
    )
    bob = await tenant.account("bob")
    with smtplib.SMTP("127.0.0.1", server.inbound, timeout=60) as client:
        client.ehlo("client.example")
        client.mail("a@b.example")
        client.rcpt(bob.address)
        assert client.data(big_message(BIG)) == (
            452,
            b"4.3.1 Insufficient system storage, try again later",
        )
        # The refused message's octets were given back: a smaller one fits.
        client.mail("a@b.example")
        client.rcpt(bob.address)
        code, _ = client.data(big_message(1024 * 1024 + 500))
        assert code == 250
        assert client.noop()[0] == 250


async def test_a_large_submission_is_still_held_to_its_from_address(
    start_smtp: Callable[..., ServerThread], client_tls: ssl.SSLContext, tenant: Tenant
) -> None:
    server = start_smtp(max_message_size=str(8 * 1024 * 1024))
    alice = await tenant.account("alice", PASSWORD)
    reply = submit(
        server.submission,
        client_tls,
        alice.address,
        alice.address,
        ["bob@remote.example"],
        big_message(BIG, sender="ceo@elsewhere.example"),
    )
    assert reply == "550 5.7.1 From or Sender header address not owned by the authenticated user"


async def test_a_large_message_is_still_held_to_the_hop_limit(
    start_smtp: Callable[..., ServerThread], tenant: Tenant
) -> None:
    server = start_smtp(max_message_size=str(8 * 1024 * 1024), max_hops="3")
    bob = await tenant.account("bob")
    looped = b"Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n" * 4
    assert send(server.inbound, bob.address, looped + big_message(BIG)) == (
        554,
        "5.4.6 Too many hops (4 Received: fields): a mail loop?",
    )
