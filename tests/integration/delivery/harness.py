"""Delivery test harness: an in-process Courier with a movable clock, and SMTP sinks."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from postroom import store
from postroom.config import Settings, load_settings
from postroom.db import Conn
from postroom.delivery.courier import Courier, create_pool
from postroom.store import queue as queue_store
from postroom.store.types import Arrival, DeliveryId, RecipientSpec, Spooled
from postroom.tls import make_self_signed


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    mail_options: list[str]
    tls: bool


@dataclass
class SinkHandler:
    """An SMTP server that records what it accepts and answers as the test scripts it."""

    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)  # address -> replies
    data_replies: list[str] = field(default_factory=list)
    advertise_8bitmime: bool = True
    received: list[Received] = field(default_factory=list)
    transactions: int = 0

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if not self.advertise_8bitmime:
            responses = [r for r in responses if "8BITMIME" not in r]
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        replies = self.rcpt_replies.get(address.lower())
        if replies:
            reply = replies.pop(0) if len(replies) > 1 else replies[0]
            if not reply.startswith("250"):
                return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.transactions += 1
        if self.data_replies:
            reply = self.data_replies.pop(0)
            if not reply.startswith("250"):
                return reply
        content = envelope.original_content or b""
        self.received.append(
            Received(
                envelope.mail_from or "",
                list(envelope.rcpt_tos),
                content,
                list(envelope.mail_options),
                session.ssl is not None,
            )
        )
        return "250 2.0.0 queued as sink"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Sink:
    handler: SinkHandler
    port: int
    domain: str


@pytest.fixture(scope="session")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    folder: Path = tmp_path_factory.mktemp("sink-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    make_self_signed("sink.remote.test", cert, key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def start_sink(domain: str, tls: ssl.SSLContext | None = None, **kw: Any) -> Iterator[Sink]:
    handler = SinkHandler(**kw)
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        **({"tls_context": tls} if tls else {}),
        ready_timeout=10,
    )
    controller.start()
    try:
        yield Sink(handler, port, domain)
    finally:
        controller.stop()


@pytest.fixture
def sink() -> Iterator[Sink]:
    yield from start_sink("remote.test")


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Dispatched:
    """Records what a Courier dispatches, so a test can run the queue itself."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    async def __call__(self, ids: Sequence[int]) -> None:
        self.ids += list(ids)

    def take(self) -> list[int]:
        ids, self.ids = self.ids, []
        return ids


SRS_SECRET = "the SRS secret of these tests"


def settings_for(*sinks: Sink, **env: str) -> Settings:
    transport = ",".join(f"{s.domain}=[127.0.0.1]:{s.port}" for s in sinks)
    return load_settings(
        {
            "POSTROOM_HOSTNAME": "mx.postroom.test",
            "POSTROOM_TRANSPORT_MAP": transport,
            "POSTROOM_SRS_SECRET": SRS_SECRET,
            **env,
        }
    )


@dataclass
class Harness:
    courier: Courier
    dispatched: Dispatched
    clock: Clock
    conn: Conn

    async def spool(
        self, raw: bytes, sender: str, recipients: Sequence[str | RecipientSpec], **arrival: Any
    ) -> Spooled:
        return await queue_store.spool(
            self.conn,
            raw,
            reverse_path=sender,
            recipients=list(recipients),
            arrival=Arrival(source="smtp", **arrival),
            now=self.clock(),
        )

    async def run(self, ids: Sequence[int]) -> None:
        """Deliver these, then whatever they dispatched (DSNs, forwards), until quiet."""
        pending = list(ids)
        for _ in range(10):
            if not pending:
                return
            await self.courier.deliver(pending)
            pending = self.dispatched.take()
        raise AssertionError("the queue did not settle")

    async def deliver(self, spooled: Spooled) -> None:
        await self.run([d.id for d in spooled.deliveries])

    async def inbox(self, address: str) -> list[bytes]:
        account = await store.get_account(self.conn, address)
        box = await store.get_mailbox(self.conn, account.id, "INBOX")
        assert box is not None
        return [
            await store.fetch_raw(self.conn, box.id, m.uid)
            for m in await store.list_messages(self.conn, box.id)
        ]

    async def delivery(self, delivery_id: DeliveryId) -> store.Delivery:
        entry = None
        cur = await self.conn.execute(
            "SELECT queue_message_id FROM deliveries WHERE id = %s", (delivery_id,)
        )
        row = await cur.fetchone()
        assert row is not None
        entry = await queue_store.get_queue_entry(self.conn, row["queue_message_id"])
        return next(d for d in entry.deliveries if d.id == delivery_id)


@pytest.fixture
async def make_harness(database_url: str, conn: Conn, clock: Clock) -> AsyncIterator[Any]:
    pools = []

    async def make(settings: Settings, **kw: Any) -> Harness:
        pool = create_pool(database_url, max_size=4)
        await pool.open()
        pools.append(pool)
        dispatched = Dispatched()
        courier = Courier(settings, pool, clock=clock, dispatch=dispatched, **kw)
        return Harness(courier, dispatched, clock, conn)

    yield make
    for pool in pools:
        await asyncio.wait_for(pool.close(), 10)


def message(
    sender: str = "alice@example.test", to: str = "bob@remote.test", body: str = "Hello."
) -> bytes:
    return (
        f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: greetings\r\n"
        f"Message-ID: <m{id(body)}@example.test>\r\n"
        f"Date: Thu, 26 Nov 2026 12:00:00 +0000\r\n\r\n{body}\r\n"
    ).encode()
