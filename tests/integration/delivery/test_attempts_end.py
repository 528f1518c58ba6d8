"""Every delivery ends: a tarpit next hop is cut off at the attempt deadline, the lease is
renewed meanwhile (no second worker starts it), only the lease holder's outcome counts, and
SMTPUTF8 mail is sent as such or bounced 5.6.7 (RFC 6531 §3.4)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from postroom.delivery.courier import Courier
from postroom.store import queue as queue_store
from tests.integration.delivery.harness import SinkHandler, free_port, message, settings_for
from tests.support import Tenant


@dataclass
class Tarpit:
    """A next hop that greets, then answers every command only after an hour."""

    port: int
    domain: str = "remote.test"
    connections: int = 0
    commands: list[bytes] = field(default_factory=list)


@pytest.fixture
async def tarpit() -> AsyncIterator[Tarpit]:
    pit = Tarpit(free_port())
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pit.connections += 1
        writers.append(writer)
        writer.write(b"220 tarpit ESMTP\r\n")
        await writer.drain()
        while line := await reader.readline():
            pit.commands.append(line)
            await asyncio.sleep(3600)
            writer.write(b"250 OK\r\n")

    server = await asyncio.start_server(serve, "127.0.0.1", pit.port)
    yield pit
    server.close()
    for writer in writers:
        writer.close()


def tarpit_settings(pit: Tarpit, **env: str) -> Any:
    return settings_for(
        **{
            "POSTROOM_TRANSPORT_MAP": f"{pit.domain}=[127.0.0.1]:{pit.port}",
            "POSTROOM_DELIVERY_DEADLINE": "2",
            **env,
        }
    )


async def test_a_tarpit_is_cut_off_at_the_deadline_and_the_delivery_deferred(
    make_harness: Any, tarpit: Tarpit
) -> None:
    h = await make_harness(tarpit_settings(tarpit))
    spooled = await h.spool(message(), "alice@example.test", ["carol@remote.test"])
    assert await h.courier.deliver([d.id for d in spooled.deliveries]) == 1
    d = await h.delivery(spooled.deliveries[0].id)
    assert (d.state, d.attempts, d.failures, d.lease_owner) == ("deferred", 1, 0, None)
    assert d.last_error == "4.4.2 the attempt at remote.test took longer than 2 s"
    assert tarpit.connections == 1
    assert [c.split()[0] for c in tarpit.commands] == [b"EHLO"]


async def test_the_lease_is_renewed_while_the_attempt_runs_so_nobody_else_starts_it(
    make_harness: Any, tarpit: Tarpit
) -> None:
    settings = tarpit_settings(
        tarpit, POSTROOM_DELIVERY_LEASE="0.3", POSTROOM_DELIVERY_DEADLINE="8"
    )
    h = await make_harness(settings)
    spooled = await h.spool(message(), "alice@example.test", ["carol@remote.test"])
    [did] = [d.id for d in spooled.deliveries]
    running = asyncio.create_task(h.courier.deliver([did]))
    first = None
    for _ in range(200):  # until the first lease has run out by the clock, yet is held
        d = await h.delivery(did)
        if d.lease_until is not None:
            first = first or d.lease_until
            if h.clock() > first and d.lease_until > h.clock():
                break
        h.clock.advance(timedelta(seconds=0.1))
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the lease was never renewed")
    other = Courier(settings, h.courier.pool, clock=h.clock, owner="another-worker")
    assert await other.deliver([did]) == 0
    await running
    assert tarpit.connections == 1


async def test_only_the_lease_holder_records_an_outcome(make_harness: Any) -> None:
    h = await make_harness(settings_for())
    spooled = await h.spool(message(), "alice@example.test", ["carol@remote.test"])
    [did] = [d.id for d in spooled.deliveries]
    await queue_store.claim(
        h.conn, owner="holder", lease=timedelta(minutes=1), now=h.clock(), ids=[did]
    )
    late = await queue_store.record_outcome(
        h.conn, did, "delivered", now=h.clock(), owner="someone-whose-lease-ran-out"
    )
    assert late is None
    assert (await h.delivery(did)).state == "queued"
    done = await queue_store.record_outcome(h.conn, did, "delivered", now=h.clock(), owner="holder")
    assert done is not None
    assert done.state == "delivered"


def start_sink(*, smtputf8: bool) -> Iterator[tuple[SinkHandler, int]]:
    handler = SinkHandler()
    port = free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=smtputf8, ready_timeout=10
    )
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture
def utf8_sink() -> Iterator[tuple[SinkHandler, int]]:
    yield from start_sink(smtputf8=True)


@pytest.fixture
def ascii_sink() -> Iterator[tuple[SinkHandler, int]]:
    yield from start_sink(smtputf8=False)


async def test_smtputf8_mail_goes_as_such_to_a_next_hop_that_offers_it(
    make_harness: Any, utf8_sink: Any
) -> None:
    handler, port = utf8_sink
    h = await make_harness(settings_for(POSTROOM_TRANSPORT_MAP=f"remote.test=[127.0.0.1]:{port}"))
    spooled = await h.spool(
        message(), "alice@example.test", ["jösé@remote.test"], protocol="UTF8SMTP"
    )
    await h.deliver(spooled)
    assert (await h.delivery(spooled.deliveries[0].id)).state == "delivered"
    [received] = handler.received
    assert received.rcpt_tos == ["jösé@remote.test"]
    assert "SMTPUTF8" in received.mail_options


async def test_smtputf8_mail_to_a_next_hop_without_it_bounces_with_5_6_7(
    tenant: Tenant, make_harness: Any, ascii_sink: Any
) -> None:
    handler, port = ascii_sink
    await tenant.account("alice")
    h = await make_harness(settings_for(POSTROOM_TRANSPORT_MAP=f"remote.test=[127.0.0.1]:{port}"))
    spooled = await h.spool(
        message(), tenant.address("alice"), ["jösé@remote.test"], protocol="UTF8SMTP"
    )
    await h.deliver(spooled)
    d = await h.delivery(spooled.deliveries[0].id)
    assert d.state == "bounced"
    assert d.last_error is not None
    assert d.last_error.startswith(
        f"5.6.7 the message needs SMTPUTF8 (RFC 6531) and 127.0.0.1:{port} does not offer it"
    )
    assert handler.received == []
    [dsn] = await h.inbox(tenant.address("alice"))
    assert "Final-Recipient: utf-8; jösé@remote.test".encode() in dsn
