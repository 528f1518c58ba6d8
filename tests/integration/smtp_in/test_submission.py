"""Submission (STARTTLS and implicit TLS): AUTH, sender ownership, relaying, header fixes."""

from __future__ import annotations

import base64
import smtplib
import socket
import ssl
from collections.abc import Callable

import pytest
import structlog

from postroom import store
from postroom.db import Conn
from postroom.smtp_in import server
from postroom.store import app_passwords
from postroom.throttle import AuthThrottle
from tests.integration.smtp_in.conftest import HOSTNAME
from tests.integration.smtp_in.test_inbound import queued
from tests.integration.smtp_in.transcript import ServerThread, Transcript
from tests.support import Tenant

PASSWORD = "correct horse 1"


def plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def submit(
    port: int, tls: ssl.SSLContext, user: str, sender: str, to: list[str], msg: bytes
) -> str:
    """Send with smtplib over STARTTLS and AUTH; the DATA reply as text."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.starttls(context=tls)
        client.login(user, PASSWORD)
        client.mail(sender)
        for rcpt in to:
            code, text = client.rcpt(rcpt)
            assert code == 250, (code, text)
        code, text = client.data(msg)
        return f"{code} {text.decode()}"


def test_ehlo_on_submission_offers_starttls_then_auth(
    smtp: ServerThread, client_tls: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As seen by a client that is not on loopback: no AUTH before TLS.
    monkeypatch.setattr(server, "plaintext_auth_allowed", lambda *, tls, **kw: tls)
    t = Transcript(smtp.submission).greeting()
    t.send("EHLO client.example").expect_exactly(
        f"250-{HOSTNAME}", "250-PIPELINING", "250-SIZE 65536", "250-8BITMIME",
        "250-SMTPUTF8", "250-ENHANCEDSTATUSCODES", "250-DSN", "250 STARTTLS",
    )  # fmt: skip
    t.send(f"AUTH PLAIN {plain('a@b.example', 'x')}").expect_exactly(
        "538 5.7.11 Encryption required for requested authentication mechanism"
    )
    t.starttls(client_tls)
    t.send("EHLO client.example").expect_exactly(
        f"250-{HOSTNAME}", "250-PIPELINING", "250-SIZE 65536", "250-8BITMIME",
        "250-SMTPUTF8", "250-ENHANCEDSTATUSCODES", "250-DSN", "250 AUTH PLAIN LOGIN",
    )  # fmt: skip
    t.close()


def test_mail_without_auth_is_refused_with_530(smtp: ServerThread) -> None:
    t = Transcript(smtp.submission).greeting()
    t.send("EHLO client.example").expect("250 ")
    t.send("MAIL FROM:<a@b.example>").expect_exactly("530 5.7.0 Authentication required")
    t.close()


def test_commands_after_starttls_in_the_same_packet_are_discarded(
    smtp: ServerThread, client_tls: ssl.SSLContext
) -> None:
    t = Transcript(smtp.submission).greeting()
    t.send("EHLO client.example").expect("250 ")
    t.send(b"STARTTLS\r\nNOOP\r\n").expect_exactly("220 2.0.0 Ready to start TLS")
    t.sock = client_tls.wrap_socket(t.sock, server_hostname="localhost")
    t.file = t.sock.makefile("rb")
    # Had the injected NOOP survived, its 250 would come first.
    t.send("MAIL FROM:<a@b.example>").expect_exactly("503 5.5.1 Send EHLO or HELO first")
    t.close()


async def test_submission_over_starttls_spools_with_message_id_and_date(
    smtp: ServerThread, client_tls: ssl.SSLContext, tenant: Tenant, conn: Conn
) -> None:
    alice = await tenant.account("alice", PASSWORD)
    msg = b"From: alice\r\nTo: bob@remote.example\r\nSubject: hi\r\n\r\nhello\r\n"
    reply = submit(smtp.submission, client_tls, alice.address, alice.address,
                   ["bob@remote.example"], msg)  # fmt: skip
    raw, recipients, reverse_path = await queued(conn, reply)
    assert recipients == ["bob@remote.example"]
    assert reverse_path == alice.address
    head, _, body = raw.partition(b"\r\n\r\n")
    assert body == b"hello\r\n"
    fields = head.split(b"\r\n")
    assert fields[0] == b"Received: from [127.0.0.1] ([127.0.0.1])"
    assert b"\twith ESMTPSA id " in fields[2]
    assert fields[3].startswith(b"\t(version=TLSv1.")
    assert fields[-5:-2] == [b"From: alice", b"To: bob@remote.example", b"Subject: hi"]
    assert fields[-2].startswith(b"Date: ")
    assert fields[-1].startswith(b"Message-ID: <")
    assert fields[-1].endswith(b"@" + HOSTNAME.encode() + b">")


async def test_existing_message_id_and_date_are_kept(
    smtp: ServerThread, client_tls: ssl.SSLContext, tenant: Tenant, conn: Conn
) -> None:
    alice = await tenant.account("alice", PASSWORD)
    msg = b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <x@y>\r\n\r\nhi\r\n"
    reply = submit(smtp.submission, client_tls, alice.address, alice.address, [alice.address], msg)
    raw, _, _ = await queued(conn, reply)
    assert raw.endswith(msg)


async def test_implicit_tls_submission(
    smtp: ServerThread, client_tls: ssl.SSLContext, tenant: Tenant, conn: Conn
) -> None:
    alice = await tenant.account("alice", PASSWORD)
    with smtplib.SMTP_SSL("127.0.0.1", smtp.submissions, context=client_tls, timeout=10) as c:
        c.ehlo("client.example")
        assert c.has_extn("auth")
        assert not c.has_extn("starttls")
        c.login(alice.address, PASSWORD)
        refused = c.sendmail(alice.address, ["carol@remote.example"], b"Subject: s\r\n\r\nx\r\n")
        assert refused == {}


async def test_sender_must_be_owned_by_the_account(
    smtp: ServerThread, client_tls: ssl.SSLContext, tenant: Tenant, conn: Conn
) -> None:
    alice = await tenant.account("alice", PASSWORD)
    await tenant.account("bob", PASSWORD)
    await store.add_alias(conn, tenant.address("sales"), alice.address)
    with smtplib.SMTP("127.0.0.1", smtp.submission, timeout=10) as c:
        c.starttls(context=client_tls)
        c.login(alice.address, PASSWORD)
        for sender, expected in [
            (
                tenant.address("bob"),
                (553, b"5.7.1 Sender address not owned by the authenticated user"),
            ),
            ("", (553, b"5.7.1 Sender address not owned by the authenticated user")),
            (tenant.address("sales"), (250, b"2.1.0 Sender OK")),
            (tenant.address("alice+tag"), (250, b"2.1.0 Sender OK")),
        ]:
            assert c.mail(sender) == expected, sender
            c.rset()


def test_auth_login_dialogue(smtp: ServerThread, client_tls: ssl.SSLContext) -> None:
    t = Transcript(smtp.submissions, tls=client_tls).greeting()
    t.send("EHLO client.example").expect("250 ")
    t.send("AUTH LOGIN").expect_exactly("334 VXNlcm5hbWU6")
    t.send(b64("nobody@nowhere.example")).expect_exactly("334 UGFzc3dvcmQ6")
    t.send(b64("wrong")).expect_exactly("535 5.7.8 Authentication credentials invalid")
    t.send("AUTH PLAIN").expect_exactly("334 ")
    t.send("*").expect_exactly("501 5.7.0 Authentication cancelled")
    t.send("AUTH PLAIN !!!").expect_exactly("501 5.5.2 Cannot decode the authentication data")
    t.send("AUTH CRAM-MD5").expect_exactly("504 5.5.4 Unrecognized authentication mechanism")
    t.close()


async def test_auth_success_then_sequence_rules(
    smtp: ServerThread, client_tls: ssl.SSLContext, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", PASSWORD)
    t = Transcript(smtp.submissions, tls=client_tls).greeting()
    t.send(f"AUTH PLAIN {plain(alice.address, PASSWORD)}").expect_exactly(
        "503 5.5.1 Send EHLO or HELO first"
    )
    t.send("EHLO client.example").expect("250 ")
    t.send(f"AUTH PLAIN {plain(alice.address, PASSWORD)}").expect_exactly(
        "235 2.7.0 Authentication successful"
    )
    t.send(f"AUTH PLAIN {plain(alice.address, PASSWORD)}").expect_exactly(
        "503 5.5.1 Already authenticated"
    )
    t.send("STARTTLS").expect_exactly("503 5.5.1 TLS already active")
    t.close()


async def test_failed_auth_is_slowed_then_the_client_blocked(
    start_smtp: Callable[..., ServerThread], client_tls: ssl.SSLContext, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", PASSWORD)
    throttle = AuthThrottle(free_failures=1, base_delay=0.01, block_after=3)
    server = start_smtp(kwargs={"throttle": throttle})
    t = Transcript(server.submissions, tls=client_tls).greeting()
    t.send("EHLO client.example").expect("250 ")
    for _ in range(3):
        t.send(f"AUTH PLAIN {plain(alice.address, 'wrong')}").expect_exactly(
            "535 5.7.8 Authentication credentials invalid"
        )
    # This client is blocked for now: even the right password is not checked.
    t.send(f"AUTH PLAIN {plain(alice.address, PASSWORD)}").expect_exactly(
        "454 4.7.0 Too many failed authentications, try again later"
    )
    t.close()


async def test_passwords_never_reach_the_logs(
    smtp: ServerThread, client_tls: ssl.SSLContext, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", PASSWORD)
    with structlog.testing.capture_logs() as logs:
        t = Transcript(smtp.submissions, tls=client_tls).greeting()
        t.send("EHLO client.example").expect("250 ")
        t.send(f"AUTH PLAIN {plain(alice.address, 'secret-wrong-1')}").expect("535")
        t.send(f"AUTH PLAIN {plain(alice.address, PASSWORD)}").expect("235")
        t.send("QUIT").expect("221")
        t.close()
    text = repr(logs)
    assert "login.failed" in text
    assert "login.succeeded" in text
    assert "secret-wrong-1" not in text
    assert PASSWORD not in text
    # A failed login's identity is not logged either: a mistyped one is often a password.
    failed = [entry for entry in logs if entry["event"] == "login.failed"]
    assert failed
    assert alice.address not in repr(failed)


def test_a_command_injected_in_a_packet_of_its_own_after_starttls_is_never_run(
    smtp: ServerThread, client_tls: ssl.SSLContext
) -> None:
    """CVE-2011-0411: the injection reaches the server after STARTTLS, in its own segment.
    Whether it meets the reader, the connection's buffer or the handshake, it never runs."""
    t = Transcript(smtp.submission).greeting()
    t.send("EHLO client.example").expect("250 ")
    t.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t.sock.sendall(b"STARTTLS\r\n")
    t.sock.sendall(b"EHLO injected.example\r\n")
    t.expect_exactly("220 2.0.0 Ready to start TLS")
    try:
        t.sock = client_tls.wrap_socket(t.sock, server_hostname="localhost")
    except (ssl.SSLError, ConnectionError):
        return  # the plaintext met the handshake, which failed: nothing ran
    t.file = t.sock.makefile("rb")
    # Had the injected EHLO run, MAIL would not be refused for want of one.
    t.send("MAIL FROM:<a@b.example>").expect_exactly("503 5.5.1 Send EHLO or HELO first")
    t.close()


async def test_a_new_password_ends_an_open_smtp_session(smtp: ServerThread, tenant: Tenant) -> None:
    alice = await tenant.account("alice", PASSWORD)
    t = Transcript(smtp.submission).greeting()
    t.send("EHLO client.example").expect("250 ")
    t.send(f"AUTH PLAIN {plain(alice.address, PASSWORD)}").expect("235")
    await store.set_password(tenant.conn, alice.address, "a-new-password")
    t.expect_exactly("421 4.7.0 Credentials changed, closing connection")
    assert t.closed()
    t.close()


def message_from(sender: str, extra: str = "") -> bytes:
    return f"From: {sender}\r\n{extra}To: bob@remote.example\r\nSubject: hi\r\n\r\nhi\r\n".encode()


async def test_a_from_header_of_someone_else_is_refused_with_550(
    smtp: ServerThread, client_tls: ssl.SSLContext, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", PASSWORD)
    ceo = tenant.address("ceo")
    await tenant.account("ceo", PASSWORD)
    reply = submit(smtp.submission, client_tls, alice.address, alice.address,
                   ["bob@remote.example"], message_from(f"The CEO <{ceo}>"))  # fmt: skip
    assert reply == "550 5.7.1 From or Sender header address not owned by the authenticated user"


async def test_a_sender_header_of_someone_else_is_refused_with_550(
    smtp: ServerThread, client_tls: ssl.SSLContext, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", PASSWORD)
    msg = message_from(alice.address, extra=f"Sender: {tenant.address('ceo')}\r\n")
    reply = submit(smtp.submission, client_tls, alice.address, alice.address,
                   ["bob@remote.example"], msg)  # fmt: skip
    assert reply.startswith("550 5.7.1 ")


async def test_own_address_alias_and_free_plus_tag_are_accepted_in_from(
    smtp: ServerThread, client_tls: ssl.SSLContext, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", PASSWORD)
    sales = tenant.address("sales")
    await store.add_alias(tenant.conn, sales, alice.address)
    for sender in (f"Alice <{alice.address.upper()}>", sales, tenant.address("alice+news")):
        reply = submit(smtp.submission, client_tls, alice.address, alice.address,
                       ["bob@remote.example"], message_from(sender))  # fmt: skip
        assert reply.startswith("250 "), (sender, reply)


async def test_a_plus_tag_that_is_another_account_is_not_ours(
    smtp: ServerThread, client_tls: ssl.SSLContext, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", PASSWORD)
    other = await tenant.account("alice+b", PASSWORD)
    with smtplib.SMTP("127.0.0.1", smtp.submission, timeout=10) as client:
        client.starttls(context=client_tls)
        client.login(alice.address, PASSWORD)
        code, text = client.mail(other.address)
    assert (code, text) == (553, b"5.7.1 Sender address not owned by the authenticated user")
    reply = submit(smtp.submission, client_tls, alice.address, alice.address,
                   ["bob@remote.example"], message_from(other.address))  # fmt: skip
    assert reply.startswith("550 5.7.1 ")


async def test_a_revoked_app_password_ends_the_smtp_session_it_opened(
    smtp: ServerThread, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", PASSWORD)
    phone, secret = await app_passwords.create_app_password(tenant.conn, alice.id, "Phone")
    t = Transcript(smtp.submission).greeting()
    t.send("EHLO client.example").expect("250 ")
    t.send(f"AUTH PLAIN {plain(alice.address, secret)}").expect("235")
    await app_passwords.revoke_app_password(tenant.conn, alice.id, phone.id)
    t.expect_exactly("421 4.7.0 Credentials changed, closing connection")
    assert t.closed()
    t.close()
