"""The whole path of a message through the real stack: SMTP in, queue, delivery, POP3/IMAP out."""

from __future__ import annotations

import asyncio
import email
import imaplib
import os
import poplib
import secrets
import signal
import smtplib
import time
from collections.abc import Callable, Iterator
from email import policy
from typing import Any

import httpx
import pytest
import redis
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from postroom import store
from postroom.db import connect
from tests.e2e.conftest import Stack, free_port, wait_until

pytestmark = pytest.mark.e2e

PASSWORD = "e2e-password-1"


def run(coro: Any) -> Any:
    async def wrap() -> Any:
        return await coro

    return asyncio.run(wrap())


async def _with_conn(url: str, action: Callable[[store.Conn], Any]) -> Any:  # type: ignore[name-defined]
    conn = await connect(url, autocommit=True)
    try:
        return await action(conn)
    finally:
        await conn.close()


def add_users(url: str, *locals_: str) -> tuple[str, list[str]]:
    domain = f"e{secrets.token_hex(4)}.test"

    async def action(conn: Any) -> list[str]:
        await store.create_domain(conn, domain)
        return [
            (await store.create_account(conn, f"{local}@{domain}", PASSWORD)).address
            for local in locals_
        ]

    return domain, run(_with_conn(url, action))


def inbox_count(url: str, address: str) -> int:
    async def action(conn: Any) -> int:
        account = await store.get_account(conn, address)
        assert account is not None
        box = await store.get_mailbox(conn, account.id, "INBOX")
        assert box is not None
        return (await store.mailbox_status(conn, box.id)).messages

    return int(run(_with_conn(url, action)))


def inbox_raw(url: str, address: str) -> list[bytes]:
    async def action(conn: Any) -> list[bytes]:
        account = await store.get_account(conn, address)
        assert account is not None
        box = await store.get_mailbox(conn, account.id, "INBOX")
        assert box is not None
        return [
            await store.fetch_raw(conn, box.id, uid) for uid in await store.list_uids(conn, box.id)
        ]

    return list(run(_with_conn(url, action)))


def message(sender: str, to: str, subject: str, body: str = "Hello from the e2e test.") -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{secrets.token_hex(8)}@e2e.test>\r\n"
        "Date: Thu, 26 Nov 2026 12:00:00 +0000\r\n\r\n"
        f"{body}\r\n"
    ).encode()


class Sink:
    """An SMTP server standing in for a remote MTA: records mail, answers as told."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []
        self.reply = "250 2.0.0 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if self.reply.startswith("250"):
            content = envelope.original_content or b""
            self.received.append((envelope.mail_from or "", list(envelope.rcpt_tos), content))
        return self.reply


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    handler = Sink()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def test_inbound_mail_is_readable_identically_over_pop3_imap_and_the_api(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    _, [alice] = add_users(stack.database_url, "alice")
    raw = message("outside@remote.example", alice, "over every protocol")
    with smtplib.SMTP("127.0.0.1", stack.port("smtp"), timeout=30) as smtp:
        smtp.sendmail("outside@remote.example", [alice], raw)
    wait_until(lambda: inbox_count(stack.database_url, alice) == 1, 60, "delivery to INBOX")

    pop = poplib.POP3("127.0.0.1", stack.port("pop3"), timeout=30)
    pop.user(alice)
    pop.pass_(PASSWORD)
    _, lines, _ = pop.retr(1)
    pop.quit()
    via_pop3 = b"\r\n".join(lines) + b"\r\n"

    imap = imaplib.IMAP4("127.0.0.1", stack.port("imap"), timeout=30)
    imap.login(alice, PASSWORD)
    imap.select("INBOX", readonly=True)
    _, data = imap.fetch("1", "(BODY.PEEK[])")
    imap.logout()
    item = data[0]
    assert isinstance(item, tuple)
    via_imap = item[1]

    api = f"http://127.0.0.1:{stack.port('http')}/api/v1"
    login = httpx.post(f"{api}/tokens", json={"address": alice, "password": PASSWORD}, timeout=30)
    assert login.status_code == 201, login.text
    bearer = {"Authorization": f"Bearer {login.json()['token']}"}
    folders = httpx.get(f"{api}/mailboxes", headers=bearer, timeout=30).json()
    [inbox] = [f for f in folders if f["name"] == "INBOX"]
    page = httpx.get(f"{api}/mailboxes/{inbox['id']}/messages", headers=bearer, timeout=30)
    [summary] = page.json()["items"]
    download = httpx.get(
        f"{api}/mailboxes/{inbox['id']}/messages/{summary['uid']}/raw", headers=bearer, timeout=30
    )
    assert download.status_code == 200
    via_api = download.content

    [stored] = inbox_raw(stack.database_url, alice)
    assert via_pop3 == via_imap == via_api == stored
    assert stored.endswith(raw)  # only trace fields were prepended
    head = email.message_from_bytes(stored, policy=policy.default)
    assert head["Return-Path"] == "<outside@remote.example>"
    assert head["Delivered-To"] == alice
    assert "Received" in head


def test_submission_to_a_remote_domain_reaches_the_next_hop(
    make_stack: Callable[..., Stack], sink: tuple[Sink, int]
) -> None:
    handler, port = sink
    stack = make_stack(POSTROOM_TRANSPORT_MAP=f"remote.e2e=[127.0.0.1]:{port}")
    _, [alice] = add_users(stack.database_url, "alice")
    raw = message(alice, "bob@remote.e2e", "leaving the building")
    with smtplib.SMTP("127.0.0.1", stack.port("submission"), timeout=30) as smtp:
        smtp.starttls(context=stack.tls_context())  # trusts the stack's self-signed pair
        smtp.login(alice, PASSWORD)
        smtp.sendmail(alice, ["bob@remote.e2e"], raw)
    wait_until(lambda: len(handler.received) == 1, 60, "the sink to receive the message")
    sender, recipients, content = handler.received[0]
    assert (sender, recipients) == (alice, ["bob@remote.e2e"])
    assert content.endswith(raw.split(b"\r\n\r\n", 1)[1])


def test_a_permanent_failure_bounces_to_the_senders_inbox(
    make_stack: Callable[..., Stack], sink: tuple[Sink, int]
) -> None:
    handler, port = sink
    handler.reply = "550 5.1.1 no such user here"
    stack = make_stack(POSTROOM_TRANSPORT_MAP=f"remote.e2e=[127.0.0.1]:{port}")
    _, [alice] = add_users(stack.database_url, "alice")
    with smtplib.SMTP("127.0.0.1", stack.port("submission"), timeout=30) as smtp:
        smtp.starttls(context=stack.tls_context())
        smtp.login(alice, PASSWORD)
        smtp.sendmail(alice, ["ghost@remote.e2e"], message(alice, "ghost@remote.e2e", "hello?"))
    wait_until(lambda: inbox_count(stack.database_url, alice) == 1, 60, "the DSN")
    [dsn_bytes] = inbox_raw(stack.database_url, alice)
    dsn = email.message_from_bytes(dsn_bytes, policy=policy.default)
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    status = next(p for p in dsn.walk() if p.get_content_type() == "message/delivery-status")
    text = status.as_string()
    assert "Action: failed" in text
    assert "Status: 5.1.1" in text
    assert "ghost@remote.e2e" in text


def test_three_workers_lose_nothing_when_one_is_killed_and_redis_is_flushed(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(workers=3, POSTROOM_DELIVERY_LEASE="5")
    count = 500
    _, users = add_users(stack.database_url, *(f"u{i}" for i in range(5)))
    sent_ids: dict[str, list[str]] = {u: [] for u in users}
    killed = flushed = False
    with smtplib.SMTP("127.0.0.1", stack.port("smtp"), timeout=60) as smtp:
        for n in range(count):
            to = users[n % len(users)]
            raw = message("load@remote.example", to, f"load {n}")
            smtp.sendmail("load@remote.example", [to], raw)
            sent_ids[to].append(email.message_from_bytes(raw)["Message-ID"])
            if n == count // 3 and not killed:
                os.kill(stack.pid_of("worker-2"), signal.SIGKILL)
                killed = True
            if n == count // 2 and not flushed:
                client = redis.Redis.from_url(
                    stack.env["POSTROOM_REDIS_URL"].replace("redis+socket://", "unix://")
                )
                client.flushdb()
                client.close()
                flushed = True
    wait_until(
        lambda: sum(inbox_count(stack.database_url, u) for u in users) >= count,
        180,
        f"{count} deliveries",
    )
    time.sleep(3)  # a duplicate, if any, would land now
    for user in users:
        got = [
            email.message_from_bytes(raw)["Message-ID"]
            for raw in inbox_raw(stack.database_url, user)
        ]
        assert sorted(got) == sorted(sent_ids[user]), f"{user}: lost or doubled mail"
    assert "worker-2 | exited with -9" in stack.output()


def test_a_stack_restart_during_a_deferred_retry_still_delivers(
    make_stack: Callable[..., Stack], sink: tuple[Sink, int]
) -> None:
    handler, port = sink
    handler.reply = "451 4.3.0 try again later"
    settings = {
        "POSTROOM_TRANSPORT_MAP": f"remote.e2e=[127.0.0.1]:{port}",
        "POSTROOM_RETRY_INTERVAL": "6",
    }
    stack = make_stack(**settings)
    _, [alice] = add_users(stack.database_url, "alice")
    with smtplib.SMTP("127.0.0.1", stack.port("submission"), timeout=30) as smtp:
        smtp.starttls(context=stack.tls_context())
        smtp.login(alice, PASSWORD)
        smtp.sendmail(alice, ["later@remote.e2e"], message(alice, "later@remote.e2e", "retry"))

    def deferred() -> bool:
        async def action(conn: Any) -> bool:
            cur = await conn.execute(
                "SELECT state FROM deliveries WHERE recipient = 'later@remote.e2e'"
            )
            rows = await cur.fetchall()
            return bool(rows) and rows[0]["state"] == "deferred"

        return bool(run(_with_conn(stack.database_url, action)))

    wait_until(deferred, 60, "the first attempt to be deferred")
    stack.stop()
    handler.reply = "250 2.0.0 OK"
    stack.start()
    wait_until(lambda: len(handler.received) == 1, 60, "delivery after the restart")
    assert handler.received[0][1] == ["later@remote.e2e"]
