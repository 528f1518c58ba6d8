"""No loops, no amplifier: the hop limit (554 5.4.6) and the DSN policy for senders who did
not authenticate (NOTIFY kinds kept as POSTROOM_UNAUTHENTICATED_NOTIFY says, RET=HDRS)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from postroom.store import queue as queue_store
from postroom.store.types import QueueId
from tests.integration.smtp_in.transcript import ServerThread, Transcript
from tests.support import Tenant


@pytest.fixture
def t(smtp: ServerThread) -> Iterator[Transcript]:
    transcript = Transcript(smtp.inbound).greeting()
    transcript.send("EHLO client.example").reply()
    yield transcript
    transcript.close()


def hops(n: int) -> bytes:
    received = b"".join(
        f"Received: from h{i}.example by h{i + 1}.example; 1 Dec 2026 10:00:00 +0000\r\n".encode()
        for i in range(n)
    )
    return received + b"Subject: loop\r\n\r\nbody\r\n.\r\n"


async def test_more_received_fields_than_the_hop_limit_is_554_5_4_6(
    t: Transcript, tenant: Tenant
) -> None:
    bob = (await tenant.account("bob")).address
    t.send("MAIL FROM:<a@b.example>").expect("250")
    t.send(f"RCPT TO:<{bob}>").expect("250")
    t.send("DATA").expect("354")
    t.send(hops(51)).expect_exactly("554 5.4.6 Too many hops (51 Received: fields): a mail loop?")
    t.send("NOOP").expect_exactly("250 2.0.0 OK")


async def test_mail_at_the_hop_limit_is_accepted(t: Transcript, tenant: Tenant) -> None:
    bob = (await tenant.account("bob")).address
    t.send("MAIL FROM:<a@b.example>").expect("250")
    t.send(f"RCPT TO:<{bob}>").expect("250")
    t.send("DATA").expect("354")
    t.send(hops(50)).expect("250 2.0.0 OK queued as")


async def spooled_notify(t: Transcript, tenant: Tenant, mail: str, *rcpts: str) -> tuple[
    str | None, list[str | None]
]:  # fmt: skip
    t.send(f"MAIL FROM:<a@b.example>{mail}").expect("250")
    for rcpt in rcpts:
        t.send(f"RCPT TO:<{rcpt}").expect("250")
    t.send("DATA").expect("354")
    t.send(b"Subject: dsn\r\n\r\nbody\r\n.\r\n").expect("250 2.0.0 OK queued as")
    queue_id = QueueId(int(t.last[-1].rsplit(" ", 1)[1]))
    entry = await queue_store.get_queue_entry(tenant.conn, queue_id)
    return entry.message.dsn_ret, [d.notify for d in entry.deliveries]


async def test_a_stranger_gets_no_success_dsn_and_headers_only(
    t: Transcript, tenant: Tenant
) -> None:
    bob = (await tenant.account("bob")).address
    carol = (await tenant.account("carol")).address
    dave = (await tenant.account("dave")).address
    ret, notify = await spooled_notify(
        t,
        tenant,
        " RET=FULL",
        f"{bob}> NOTIFY=SUCCESS",
        f"{carol}> NOTIFY=SUCCESS,FAILURE,DELAY",
        f"{dave}>",
    )
    assert ret == "HDRS"
    assert notify == ["NEVER", "FAILURE", "FAILURE"]


async def test_notify_never_stays_never(t: Transcript, tenant: Tenant) -> None:
    bob = (await tenant.account("bob")).address
    _, notify = await spooled_notify(t, tenant, "", f"{bob}> NOTIFY=NEVER")
    assert notify == ["NEVER"]
