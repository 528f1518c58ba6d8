"""Bounces to the SRS senders of mail we forwarded: verified, then sent back to the sender."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from postroom import srs, store
from postroom.db import Conn
from postroom.store.queue import get_queue_entry
from postroom.store.types import QueueId
from tests.integration.delivery.harness import (  # noqa: F401 - fixtures
    Sink,
    clock,
    make_harness,
    message,
    settings_for,
    sink,
)
from tests.integration.smtp_in.conftest import HOSTNAME
from tests.integration.smtp_in.transcript import ServerThread, Transcript
from tests.support import Tenant

SECRET = "the SRS secret of smtp-in's tests"


@pytest.fixture
def t(start_smtp: Callable[..., ServerThread]) -> Iterator[Transcript]:
    server = start_smtp(srs_secret=SECRET, srs_max_age_days="21")
    transcript = Transcript(server.inbound).greeting()
    transcript.send("EHLO bounces.example").reply()
    transcript.send("MAIL FROM:<>").expect_exactly("250 2.1.0 Sender OK")
    yield transcript
    transcript.close()


def srs0(sender: str, domain: str, *, days_ago: int = 0) -> str:
    return srs.forward(sender, domain, SECRET.encode(), now=time.time() - days_ago * 86400)


async def test_bounce_to_our_srs0_address_goes_to_the_original_sender(
    t: Transcript, tenant: Tenant, conn: Conn
) -> None:
    t.send(f"RCPT TO:<{srs0('alice@origin.example', tenant.domain.name)}>")
    t.expect_exactly("250 2.1.5 Recipient OK")
    t.send("DATA").expect("354")
    t.send(b"Subject: Undelivered Mail\r\n\r\nbounce\r\n.\r\n")
    reply = t.reply()[0]
    assert reply.startswith("250 2.0.0 OK queued as "), reply
    entry = await get_queue_entry(conn, QueueId(int(reply.rsplit(" ", 1)[1])))
    assert [d.recipient for d in entry.deliveries] == ["alice@origin.example"]
    assert entry.message.reverse_path == ""


async def test_srs0_address_at_the_host_name_is_honoured(t: Transcript) -> None:
    t.send(f"RCPT TO:<{srs0('alice@origin.example', HOSTNAME)}>")
    t.expect_exactly("250 2.1.5 Recipient OK")


async def test_hash_compare_ignores_case(t: Transcript, tenant: Tenant) -> None:
    address = srs0("alice@origin.example", tenant.domain.name)
    t.send(f"RCPT TO:<{address[:5] + address[5:9].swapcase() + address[9:]}>")
    t.expect_exactly("250 2.1.5 Recipient OK")


async def test_forged_srs0_address_is_refused(t: Transcript, tenant: Tenant) -> None:
    forged = srs0("alice@origin.example", tenant.domain.name).replace("=alice@", "=mallory@")
    t.send(f"RCPT TO:<{forged}>").expect_exactly("550 5.1.1 No such user here")


async def test_srs0_address_of_another_secret_is_refused(t: Transcript, tenant: Tenant) -> None:
    other = srs.forward("alice@origin.example", tenant.domain.name, b"not our secret")
    t.send(f"RCPT TO:<{other}>").expect_exactly("550 5.1.1 No such user here")


async def test_expired_srs0_address_is_refused(t: Transcript, tenant: Tenant) -> None:
    old = srs0("alice@origin.example", tenant.domain.name, days_ago=30)
    t.send(f"RCPT TO:<{old}>").expect_exactly("550 5.1.1 No such user here")


async def test_srs0_address_of_another_domain_is_not_relayed(t: Transcript) -> None:
    elsewhere = srs0("alice@origin.example", "elsewhere.example")
    t.send(f"RCPT TO:<{elsewhere}>").expect("554")


async def test_forward_then_bounce_reaches_the_original_sender(
    start_smtp: Callable[..., ServerThread],
    tenant: Tenant,
    make_harness: Any,  # noqa: F811 - the fixture
    sink: Sink,  # noqa: F811 - the fixture
) -> None:
    """End to end: an alias forwards to a remote sink with an SRS0 sender; the bounce the
    remote side sends to that address through smtp-in is delivered to the original sender."""
    await store.add_alias(tenant.conn, tenant.address("fwd"), "far@remote.test")
    h = await make_harness(settings_for(sink, POSTROOM_SRS_SECRET=SECRET))
    await h.deliver(await h.spool(message(), "alice@remote.test", [tenant.address("fwd")]))
    [forwarded] = sink.handler.received
    assert forwarded.rcpt_tos == ["far@remote.test"]
    assert forwarded.mail_from.startswith("SRS0=")
    assert forwarded.mail_from.endswith(f"=remote.test=alice@{tenant.domain.name}")

    server = start_smtp(srs_secret=SECRET)
    t = Transcript(server.inbound).greeting()
    t.send("EHLO remote.test").reply()
    t.send("MAIL FROM:<>").expect_exactly("250 2.1.0 Sender OK")
    t.send(f"RCPT TO:<{forwarded.mail_from}>").expect_exactly("250 2.1.5 Recipient OK")
    t.send("DATA").expect("354")
    t.send(b"Subject: Undelivered Mail Returned to Sender\r\n\r\nfar is gone\r\n.\r\n")
    reply = t.reply()[0]
    t.close()
    assert reply.startswith("250 2.0.0 OK queued as "), reply
    entry = await get_queue_entry(tenant.conn, QueueId(int(reply.rsplit(" ", 1)[1])))
    h.clock.advance(timedelta(minutes=1))  # the harness's clock stood still while smtp-in spooled
    await h.run([d.id for d in entry.deliveries])
    bounce = sink.handler.received[1]
    assert (bounce.mail_from, bounce.rcpt_tos) == ("<>", ["alice@remote.test"])
    assert b"far is gone" in bounce.content
