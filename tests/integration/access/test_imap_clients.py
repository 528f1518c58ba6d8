"""The IMAP server over real sockets with imaplib and imapclient: TLS, two sessions, IDLE."""

from __future__ import annotations

import asyncio
import imaplib
import socket
import time
from typing import Any

import imapclient
import pytest

from postroom import store
from postroom.db import Conn
from postroom.store.types import Account, MailboxId
from tests.integration.access.imap_support import ImapEndpoint, message
from tests.integration.access.pop3_support import in_thread
from tests.support import Tenant


@pytest.fixture
async def alice(tenant: Tenant) -> Account:
    return await tenant.account("alice", "pw-1")


async def inbox_id(conn: Conn, account: Account) -> MailboxId:
    box = await store.get_mailbox(conn, account.id, "INBOX")
    assert box is not None
    return box.id


def imaplib_session(endpoint: ImapEndpoint, account: Account) -> list[Any]:
    client = imaplib.IMAP4(endpoint.host, endpoint.port, timeout=30)
    try:
        out: list[Any] = [client.login(account.address, "pw-1")]
        out.append(client.select("INBOX"))
        out.append(client.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
        out.append(client.search(None, "SUBJECT", "two"))
        out.append(client.store("1", "+FLAGS", "(\\Flagged)"))
        out.append(client.uid("COPY", "1:2", "Archive"))
        out.append(client.list())
        out.append(client.logout())
        return out
    except BaseException:
        client.shutdown()
        raise


async def test_imaplib_reads_and_changes_a_mailbox(
    imap: ImapEndpoint, conn: Conn, alice: Account
) -> None:
    box = await inbox_id(conn, alice)
    await store.append_message(conn, box, message("one"))
    await store.append_message(conn, box, message("two"))
    _login, select, fetch, search, stored, copied, listed, logout = await in_thread(
        imaplib_session, imap, alice
    )
    assert select == ("OK", [b"2"])
    assert fetch == (
        "OK",
        [
            (b"1 (FLAGS (\\Recent) BODY[HEADER.FIELDS (SUBJECT)] {16}", b"Subject: one\r\n\r\n"),
            b")",
            (b"2 (FLAGS (\\Recent) BODY[HEADER.FIELDS (SUBJECT)] {16}", b"Subject: two\r\n\r\n"),
            b")",
        ],
    )
    assert search == ("OK", [b"2"])
    assert stored == ("OK", [b"1 (FLAGS (\\Flagged \\Recent))"])
    assert copied[0] == "OK"
    assert b'(\\HasNoChildren \\Sent) "/" Sent' in listed[1]
    assert logout[0] == "BYE"


def starttls_login(endpoint: ImapEndpoint, account: Account) -> tuple[Any, Any, Any]:
    client = imaplib.IMAP4(endpoint.host, endpoint.port, timeout=30)
    try:
        before = client.capabilities
        client.starttls(ssl_context=endpoint.client_context())
        after = client.capabilities
        return before, after, client.login(account.address, "pw-1")
    finally:
        client.logout()


async def test_starttls_then_login(imap: ImapEndpoint, alice: Account) -> None:
    before, after, login = await in_thread(starttls_login, imap, alice)
    assert "STARTTLS" in before
    assert "STARTTLS" not in after
    assert login[0] == "OK"


def imaps_login(endpoint: ImapEndpoint, account: Account) -> Any:
    client = imaplib.IMAP4_SSL(
        endpoint.host, endpoint.tls_port, ssl_context=endpoint.client_context(), timeout=30
    )
    try:
        return client.login(account.address, "pw-1")
    finally:
        client.logout()


async def test_imaps_login(imap: ImapEndpoint, alice: Account) -> None:
    assert (await in_thread(imaps_login, imap, alice))[0] == "OK"


def imapclient_session(endpoint: ImapEndpoint, account: Account) -> dict[str, Any]:
    client = imapclient.IMAPClient(endpoint.host, endpoint.port, ssl=False, timeout=30)
    try:
        client.login(account.address, "pw-1")
        out: dict[str, Any] = {"caps": client.capabilities()}
        out["folders"] = client.list_folders()
        out["special"] = client.find_special_folder(imapclient.imapclient.SENT)
        client.create_folder("Projects/2024")
        out["select"] = client.select_folder("INBOX")
        uids = client.search(["ALL"])
        out["fetch"] = client.fetch(uids, ["ENVELOPE", "BODYSTRUCTURE", "RFC822.SIZE", "FLAGS"])
        out["append"] = client.append("Projects/2024", message("kept"), flags=[b"\\Seen"])
        out["move"] = client.move(uids[:1], "Trash")
        out["after_move"] = client.search(["ALL"])
        out["status"] = client.folder_status("Trash", ["MESSAGES"])
        out["namespace"] = client.namespace()
        out["id"] = client.id_({"name": "test"})
        return out
    finally:
        client.logout()


async def test_imapclient_understands_every_answer(
    imap: ImapEndpoint, conn: Conn, alice: Account
) -> None:
    box = await inbox_id(conn, alice)
    await store.append_message(conn, box, message("one"))
    await store.append_message(conn, box, message("two"))
    out = await in_thread(imapclient_session, imap, alice)
    for cap in (b"IDLE", b"MOVE", b"UIDPLUS", b"SPECIAL-USE", b"NAMESPACE"):
        assert cap in out["caps"]
    assert out["special"] == "Sent"
    assert out["select"][b"EXISTS"] == 2
    fetched = out["fetch"]
    assert isinstance(fetched, dict)
    envelope = fetched[2][b"ENVELOPE"]
    assert envelope.subject == b"two"
    assert envelope.from_[0].mailbox == b"alice"
    assert fetched[2][b"BODYSTRUCTURE"][0] == b"TEXT"
    assert fetched[2][b"RFC822.SIZE"] == len(message("two"))
    assert out["append"].startswith(b"[APPENDUID ")
    assert out["after_move"] == [2]
    assert out["status"] == {b"MESSAGES": 1}
    assert out["id"] == ((b"name", b"Postroom"),)


def idle_until_exists(
    endpoint: ImapEndpoint, account: Account, ready: socket.socket
) -> tuple[list[Any], float]:
    client = imapclient.IMAPClient(endpoint.host, endpoint.port, ssl=False, timeout=30)
    try:
        client.login(account.address, "pw-1")
        client.select_folder("INBOX")
        client.idle()
        ready.send(b"x")
        started = time.monotonic()
        responses = client.idle_check(timeout=10)
        elapsed = time.monotonic() - started
        client.idle_done()
        return responses, elapsed
    finally:
        client.logout()


async def test_idle_wakes_within_a_second_of_new_mail(
    imap: ImapEndpoint, conn: Conn, alice: Account
) -> None:
    box = await inbox_id(conn, alice)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    try:
        task = asyncio.create_task(in_thread(idle_until_exists, imap, alice, theirs))
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_recv(ours, 1), 10)
        await store.append_message(conn, box, message("new"))
        responses, elapsed = await task
    finally:
        ours.close()
        theirs.close()
    assert (1, b"EXISTS") in responses
    assert elapsed < 1.0


def two_sessions(endpoint: ImapEndpoint, account: Account) -> list[Any]:
    a = imaplib.IMAP4(endpoint.host, endpoint.port, timeout=30)
    b = imaplib.IMAP4(endpoint.host, endpoint.port, timeout=30)
    try:
        for client in (a, b):
            client.login(account.address, "pw-1")
            client.select("INBOX")
        a.store("1", "+FLAGS", "(\\Deleted)")
        a.expunge()
        a.append("INBOX", None, None, message("three"))
        b.noop()
        return [b.response("EXPUNGE"), b.response("EXISTS"), b.fetch("1:*", "(UID)")]
    finally:
        a.logout()
        b.logout()


async def test_a_second_session_sees_expunge_and_exists(
    imap: ImapEndpoint, conn: Conn, alice: Account
) -> None:
    box = await inbox_id(conn, alice)
    await store.append_message(conn, box, message("one"))
    await store.append_message(conn, box, message("two"))
    expunged, exists, fetched = await in_thread(two_sessions, imap, alice)
    assert expunged == ("EXPUNGE", [b"1"])
    assert exists == ("EXISTS", [b"2", b"2"])  # after SELECT, then after NOOP
    assert fetched == ("OK", [b"1 (UID 2)", b"2 (UID 3)"])


def bad_password(endpoint: ImapEndpoint, account: Account) -> str:
    client = imaplib.IMAP4(endpoint.host, endpoint.port, timeout=30)
    try:
        client.login(account.address, "wrong")
    except imaplib.IMAP4.error as exc:
        return str(exc)
    finally:
        client.shutdown()
    return "logged in"


async def test_a_wrong_password_is_refused(imap: ImapEndpoint, alice: Account) -> None:
    assert "[AUTHENTICATIONFAILED]" in await in_thread(bad_password, imap, alice)


def huge_literal(endpoint: ImapEndpoint) -> list[bytes]:
    with socket.create_connection((endpoint.host, endpoint.port), timeout=30) as sock:
        stream = sock.makefile("rwb")
        stream.readline()
        stream.write(b"a LOGIN {999999999}\r\n")
        stream.flush()
        first = stream.readline()
        stream.write(b"b NOOP\r\n")
        stream.flush()
        return [first, stream.readline()]


async def test_an_oversized_literal_is_refused_and_the_connection_lives(
    imap: ImapEndpoint,
) -> None:
    assert await in_thread(huge_literal, imap) == [
        b"a NO [TOOBIG] Literal too big\r\n",
        b"b OK NOOP completed\r\n",
    ]


def fetch_big(endpoint: ImapEndpoint, account: Account) -> list[Any]:
    client = imaplib.IMAP4(endpoint.host, endpoint.port, timeout=30)
    try:
        client.login(account.address, "pw-1")
        client.select("INBOX")
        out = [client.fetch("1", "(RFC822.SIZE)")]
        out.append(client.fetch("1", "(BODY.PEEK[])"))
        out.append(client.fetch("1", "(BODY.PEEK[]<10.300000>)"))
        out.append(client.fetch("1", "(BODY.PEEK[HEADER])"))
        out.append(client.fetch("1", "(BODY.PEEK[TEXT]<0.5>)"))
        return out
    finally:
        client.logout()


async def test_large_messages_stream_whole_with_their_trace_prefix(
    imap: ImapEndpoint, conn: Conn, alice: Account
) -> None:
    prefix = b"Return-Path: <alice@example.test>\r\nReceived: from test by test\r\n"
    body = b"".join(b"line %07d of a large message\r\n" % n for n in range(40_000))
    raw = message("large", body.decode())
    await store.append_message(conn, await inbox_id(conn, alice), raw, header_prefix=prefix)
    whole = prefix + raw
    size, full, partial, header, text = await in_thread(fetch_big, imap, alice)
    assert size == ("OK", [b"1 (RFC822.SIZE %d)" % len(whole)])
    assert full[1][0][1] == whole
    assert partial[1][0] == (b"1 (BODY[]<10> {300000}", whole[10:300_010])
    assert header[1][0][1] == whole[: whole.index(b"\r\n\r\n") + 4]
    assert text[1][0] == (b"1 (BODY[TEXT]<0> {5}", b"line ")
