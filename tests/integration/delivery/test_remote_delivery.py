"""Remote delivery to a real SMTP server on 127.0.0.1 (via the transport map), retries, DSNs."""

from __future__ import annotations

import email
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from postroom.config import load_settings
from postroom.delivery import remote
from postroom.store import queue as queue_store
from postroom.store.types import RecipientSpec
from tests.integration.delivery.harness import (
    Sink,
    free_port,
    message,
    settings_for,
    start_sink,
)
from tests.support import Tenant


async def test_all_recipients_at_one_destination_share_one_transaction(
    make_harness: Any, sink: Sink
) -> None:
    h = await make_harness(settings_for(sink))
    spooled = await h.spool(message(), "a@example.test", ["x@remote.test", "y@remote.test"])
    await h.deliver(spooled)
    [received] = sink.handler.received
    assert received.rcpt_tos == ["x@remote.test", "y@remote.test"]
    assert received.content.endswith(b"Hello.\r\n")
    assert f"SIZE={spooled.message.size}" in received.mail_options
    entry = await queue_store.get_queue_entry(h.conn, spooled.message.id)
    assert [d.state for d in entry.deliveries] == ["delivered", "delivered"]
    assert {a.reply_text for a in entry.attempts} == {"2.0.0 queued as sink"}
    assert {a.host for a in entry.attempts} == {f"127.0.0.1:{sink.port}"}


async def test_one_refused_recipient_does_not_stop_the_others(
    tenant: Tenant, make_harness: Any, sink: Sink
) -> None:
    await tenant.account("alice")
    sink.handler.rcpt_replies["gone@remote.test"] = ["550 5.1.1 no such user"]
    h = await make_harness(settings_for(sink))
    spooled = await h.spool(
        message(), tenant.address("alice"), ["ok@remote.test", "gone@remote.test"]
    )
    await h.deliver(spooled)
    assert sink.handler.received[0].rcpt_tos == ["ok@remote.test"]
    entry = await queue_store.get_queue_entry(h.conn, spooled.message.id)
    assert [d.state for d in entry.deliveries] == ["delivered", "bounced"]


async def test_451_defers_until_the_retry_interval_then_250_delivers(
    make_harness: Any, sink: Sink
) -> None:
    sink.handler.rcpt_replies["bob@remote.test"] = ["451 4.7.1 try again later", "250 OK"]
    h = await make_harness(settings_for(sink, POSTROOM_RETRY_INTERVAL="30m"))
    spooled = await h.spool(message(), "a@example.test", ["bob@remote.test"])
    [delivery] = spooled.deliveries
    await h.deliver(spooled)
    deferred = await h.delivery(delivery.id)
    assert deferred.state == "deferred"
    assert deferred.next_attempt_at == h.clock() + timedelta(minutes=30)
    assert deferred.last_error == "451 4.7.1 try again later"
    # Not due yet: nothing happens.
    h.clock.advance(timedelta(minutes=29))
    assert await h.courier.deliver([delivery.id]) == 0
    h.clock.advance(timedelta(minutes=1))
    await h.run([delivery.id])
    assert (await h.delivery(delivery.id)).state == "delivered"
    [received] = sink.handler.received
    assert received.rcpt_tos == ["bob@remote.test"]
    attempts = (await queue_store.get_queue_entry(h.conn, spooled.message.id)).attempts
    assert [(a.outcome, a.reply_code) for a in attempts] == [("deferred", 451), ("delivered", 250)]


async def test_backoff_schedule_sets_the_next_attempts(make_harness: Any, sink: Sink) -> None:
    sink.handler.rcpt_replies["bob@remote.test"] = ["451 4.3.0 busy"]
    h = await make_harness(settings_for(sink, POSTROOM_RETRY_BACKOFF="1m,10m"))
    spooled = await h.spool(message(), "a@example.test", ["bob@remote.test"])
    [delivery] = spooled.deliveries
    waits = []
    for _ in range(3):
        before = h.clock()
        await h.run([delivery.id])
        d = await h.delivery(delivery.id)
        waits.append(d.next_attempt_at - before)
        h.clock.now = d.next_attempt_at
    assert waits == [timedelta(minutes=1), timedelta(minutes=10), timedelta(minutes=10)]


async def test_connection_refused_defers(make_harness: Any) -> None:
    from tests.integration.delivery.harness import Sink, SinkHandler, free_port

    closed = Sink(SinkHandler(), free_port(), "remote.test")
    h = await make_harness(settings_for(closed))
    spooled = await h.spool(message(), "a@example.test", ["bob@remote.test"])
    await h.deliver(spooled)
    d = await h.delivery(spooled.deliveries[0].id)
    assert d.state == "deferred"
    assert d.last_error is not None
    assert d.last_error.startswith("4.4.1 cannot connect")


def parse_dsn(raw: bytes) -> EmailMessage:
    dsn = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(dsn, EmailMessage)
    return dsn


async def test_550_bounces_with_an_rfc_3464_dsn_in_the_senders_inbox(
    tenant: Tenant, make_harness: Any, sink: Sink
) -> None:
    await tenant.account("alice")
    sink.handler.rcpt_replies["bob@remote.test"] = ["550 5.1.1 <bob@remote.test>: user unknown"]
    h = await make_harness(settings_for(sink))
    spooled = await h.spool(
        message(tenant.address("alice")), tenant.address("alice"), ["bob@remote.test"]
    )
    await h.deliver(spooled)
    [raw] = await h.inbox(tenant.address("alice"))
    assert raw.startswith(b"Return-Path: <>\r\n")
    dsn = parse_dsn(raw)
    assert dsn["From"] == "Mail Delivery System <MAILER-DAEMON@mx.postroom.test>"
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    text, status, headers = dsn.get_payload()  # type: ignore[misc]
    assert text.get_content_type() == "text/plain"
    assert "could not" in text.get_content()
    assert status.get_content_type() == "message/delivery-status"
    per_message, per_recipient = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mx.postroom.test"
    assert per_message["Arrival-Date"]
    assert per_recipient["Final-Recipient"] == "rfc822; bob@remote.test"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"
    assert per_recipient["Diagnostic-Code"] == "smtp; 550 5.1.1 <bob@remote.test>: user unknown"
    assert per_recipient["Remote-MTA"] == "dns; 127.0.0.1"
    assert per_recipient["Last-Attempt-Date"]
    assert headers.get_content_type() == "text/rfc822-headers"
    assert "Subject: greetings" in headers.get_payload()
    # The queue remembers which DSN answered the bounce, and the DSN's own envelope.
    [bounced] = (await queue_store.get_queue_entry(h.conn, spooled.message.id)).deliveries
    assert bounced.dsn_queue_message_id is not None
    dsn_entry = await queue_store.get_queue_entry(h.conn, bounced.dsn_queue_message_id)
    assert (dsn_entry.message.reverse_path, dsn_entry.message.bounce_of) == ("", spooled.message.id)


async def refusing_both(tenant: Tenant, make_harness: Any, sink: Sink) -> Any:
    """A harness whose sink refuses x@ and y@remote.test with 550; alice is a local sender."""
    await tenant.account("alice")
    for r in ("x@remote.test", "y@remote.test"):
        sink.handler.rcpt_replies[r] = ["550 5.1.1 unknown"]
    return await make_harness(settings_for(sink))


async def test_recipients_that_fail_together_get_one_dsn(
    tenant: Tenant, make_harness: Any, sink: Sink
) -> None:
    h = await refusing_both(tenant, make_harness, sink)
    spooled = await h.spool(message(), tenant.address("alice"), ["x@remote.test", "y@remote.test"])
    await h.deliver(spooled)
    [raw] = await h.inbox(tenant.address("alice"))
    _, status, _ = parse_dsn(raw).get_payload()  # type: ignore[misc]
    finals = [block["Final-Recipient"] for block in status.get_payload()[1:]]
    assert finals == ["rfc822; x@remote.test", "rfc822; y@remote.test"]


async def test_notify_success_to_another_server_gets_a_relayed_dsn(
    tenant: Tenant, make_harness: Any, sink: Sink
) -> None:
    """RFC 3461 §4.1: the next hop is not asked for DSNs, so the report says "relayed"."""
    await tenant.account("alice")
    h = await make_harness(settings_for(sink))
    spooled = await h.spool(
        message(), tenant.address("alice"), [RecipientSpec("x@remote.test", notify="SUCCESS")]
    )
    await h.deliver(spooled)
    [raw] = await h.inbox(tenant.address("alice"))
    dsn = parse_dsn(raw)
    assert dsn["Subject"] == "Successful Mail Delivery Report"
    _, status, headers = dsn.get_payload()  # type: ignore[misc]
    per_recipient = status.get_payload()[1]
    assert (per_recipient["Action"], per_recipient["Status"]) == ("relayed", "2.0.0")
    assert headers.get_content_type() == "text/rfc822-headers"


async def test_notify_never_and_notify_delay_mean_no_failure_dsn(
    tenant: Tenant, make_harness: Any, sink: Sink
) -> None:
    h = await refusing_both(tenant, make_harness, sink)
    spooled = await h.spool(
        message(),
        tenant.address("alice"),
        [
            RecipientSpec("x@remote.test", notify="NEVER"),
            RecipientSpec("y@remote.test", notify="DELAY"),
        ],
    )
    await h.deliver(spooled)
    assert await h.inbox(tenant.address("alice")) == []
    entry = await queue_store.get_queue_entry(h.conn, spooled.message.id)
    assert [d.state for d in entry.deliveries] == ["bounced", "bounced"]


async def test_ret_full_returns_the_whole_message_in_the_dsn(
    tenant: Tenant, make_harness: Any, sink: Sink
) -> None:
    await tenant.account("alice")
    sink.handler.rcpt_replies["x@remote.test"] = ["550 5.1.1 unknown"]
    h = await make_harness(settings_for(sink))
    content = message(tenant.address("alice"))
    spooled = await h.spool(
        content,
        tenant.address("alice"),
        [RecipientSpec("x@remote.test", original="rfc822;old@remote.test")],
        dsn_ret="FULL",
        env_id="ENV-7",
    )
    await h.deliver(spooled)
    [raw] = await h.inbox(tenant.address("alice"))
    assert content in raw
    _, status, returned = parse_dsn(raw).get_payload()  # type: ignore[misc]
    assert returned.get_content_type() == "message/rfc822"
    per_message, per_recipient = status.get_payload()
    assert per_message["Original-Envelope-Id"] == "ENV-7"
    assert per_recipient["Original-Recipient"] == "rfc822;old@remote.test"


@pytest.fixture
def postfix_sink(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """Postfix's smtp-sink, which offers DSN and writes each message with its MAIL and RCPT
    arguments (X-Mail-Args, X-Rcpt-Args) to a file."""
    if shutil.which("smtp-sink") is None:
        pytest.skip("smtp-sink (Debian package postfix) is not installed")
    dump = tmp_path / "dump"
    dump.mkdir()
    dump.chmod(0o777)
    port = free_port()
    user = pwd.getpwuid(os.getuid()).pw_name
    process = subprocess.Popen(
        ["smtp-sink", "-u", user, "-d", f"{dump}/%M%S.", f"127.0.0.1:{port}", "10"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "smtp-sink did not start"
                time.sleep(0.05)
        yield port, dump
    finally:
        process.terminate()
        process.wait(10)


async def test_dsn_requests_are_passed_to_a_next_hop_that_offers_dsn(
    tenant: Tenant, make_harness: Any, postfix_sink: tuple[int, Path]
) -> None:
    """RFC 3461 §6.2: RET, ENVID, NOTIFY and ORCPT go on (xtext encoded); the next hop reports
    success from then on, so no "relayed" DSN comes from here."""
    await tenant.account("alice")
    port, dump = postfix_sink
    h = await make_harness(
        load_settings(
            {"POSTROOM_HOSTNAME": "mx.postroom.test",
             "POSTROOM_TRANSPORT_MAP": f"far.test=[127.0.0.1]:{port}"}
        )
    )  # fmt: skip
    spooled = await h.spool(
        message(),
        tenant.address("alice"),
        [RecipientSpec("x@far.test", original="rfc822;first+last@old.test", notify="SUCCESS")],
        dsn_ret="HDRS",
        env_id="env 1",
    )
    await h.deliver(spooled)
    [d] = (await queue_store.get_queue_entry(h.conn, spooled.message.id)).deliveries
    assert d.state == "delivered"
    [written] = list(dump.iterdir())
    head = written.read_text().split("\n")
    # smtp-sink offers no SIZE, so only the DSN parameters follow the path.
    assert f"X-Mail-Args: <{tenant.address('alice')}> RET=HDRS ENVID=env+201" in head
    assert "X-Rcpt-Args: <x@far.test> NOTIFY=SUCCESS ORCPT=rfc822;first+2Blast@old.test" in head
    assert await h.inbox(tenant.address("alice")) == []


def test_xtext_encodes_plus_equals_space_and_controls() -> None:
    assert remote.xtext("a+b=c d\r\né") == "a+2Bb+3Dc+20d+0D+0A+C3+A9"


async def test_null_sender_is_never_bounced(make_harness: Any, sink: Sink) -> None:
    sink.handler.rcpt_replies["bob@remote.test"] = ["550 5.1.1 unknown"]
    h = await make_harness(settings_for(sink))
    spooled = await h.spool(message(), "", ["bob@remote.test"])
    await h.deliver(spooled)
    [d] = (await queue_store.get_queue_entry(h.conn, spooled.message.id)).deliveries
    assert (d.state, d.dsn_queue_message_id) == ("bounced", None)
    assert h.dispatched.ids == []
    cur = await h.conn.execute(
        "SELECT count(*) AS n FROM queue_messages WHERE bounce_of = %s", (spooled.message.id,)
    )
    assert (await cur.fetchone())["n"] == 0  # type: ignore[index]


async def test_still_undelivered_after_the_queue_lifetime_bounces(
    tenant: Tenant, make_harness: Any, sink: Sink
) -> None:
    await tenant.account("alice")
    sink.handler.rcpt_replies["bob@remote.test"] = ["451 4.4.2 not now"]
    h = await make_harness(
        settings_for(sink, POSTROOM_MAX_QUEUE_LIFETIME="2h", POSTROOM_RETRY_INTERVAL="45m")
    )
    spooled = await h.spool(message(), tenant.address("alice"), ["bob@remote.test"])
    [delivery] = spooled.deliveries
    received = h.clock()
    for _ in range(3):
        await h.run([delivery.id])
        d = await h.delivery(delivery.id)
        assert d.state == "deferred"
        h.clock.now = d.next_attempt_at
    # The last retry is pulled in to the end of the lifetime, and its failure bounces.
    assert h.clock() == received + timedelta(hours=2)
    await h.run([delivery.id])
    assert (await h.delivery(delivery.id)).state == "bounced"
    [raw] = await h.inbox(tenant.address("alice"))
    _, status, _ = parse_dsn(raw).get_payload()  # type: ignore[misc]
    block = status.get_payload()[1]
    assert (block["Action"], block["Status"]) == ("failed", "4.4.7")
    assert "last error: 451 4.4.2 not now" in block["Diagnostic-Code"]


async def test_delay_warning_after_the_delay_and_only_once(
    tenant: Tenant, make_harness: Any, sink: Sink
) -> None:
    from postroom.delivery.sweep import dispatch_due

    await tenant.account("alice")
    sink.handler.rcpt_replies["bob@remote.test"] = ["451 4.4.2 not now"]
    h = await make_harness(settings_for(sink, POSTROOM_DELAY_WARNING="1h"))
    spooled = await h.spool(message(), tenant.address("alice"), ["bob@remote.test"])
    await h.deliver(spooled)
    await dispatch_due(h.courier)
    await h.run(h.dispatched.take())
    assert await h.inbox(tenant.address("alice")) == []
    h.clock.advance(timedelta(minutes=61))
    await dispatch_due(h.courier)
    await h.run([i for i in h.dispatched.take() if i != spooled.deliveries[0].id])
    [raw] = await h.inbox(tenant.address("alice"))
    _, status, _ = parse_dsn(raw).get_payload()  # type: ignore[misc]
    block = status.get_payload()[1]
    assert (block["Action"], block["Status"]) == ("delayed", "4.4.2")
    assert block["Will-Retry-Until"]
    await dispatch_due(h.courier)
    await h.run([i for i in h.dispatched.take() if i != spooled.deliveries[0].id])
    assert len(await h.inbox(tenant.address("alice"))) == 1


async def test_8bit_body_to_a_server_without_8bitmime_bounces_with_5_6_3(
    make_harness: Any,
) -> None:
    for sink in start_sink("remote.test", advertise_8bitmime=False):
        h = await make_harness(settings_for(sink))
        body = "Grüße aus Köln".encode()
        raw = message().replace(b"Hello.", body)
        spooled = await h.spool(raw, "", ["bob@remote.test"])
        await h.deliver(spooled)
        d = await h.delivery(spooled.deliveries[0].id)
        assert d.state == "bounced"
        assert d.last_error is not None
        assert d.last_error.startswith("5.6.3")
        assert sink.handler.received == []


async def test_8bit_body_is_sent_with_body_8bitmime(make_harness: Any, sink: Sink) -> None:
    h = await make_harness(settings_for(sink))
    raw = message().replace(b"Hello.", "Grüße".encode())
    await h.deliver(await h.spool(raw, "", ["bob@remote.test"]))
    [received] = sink.handler.received
    assert "BODY=8BITMIME" in received.mail_options
    assert "Grüße".encode() in received.content


async def test_starttls_is_used_when_offered_and_recorded(
    make_harness: Any, tls_context: Any
) -> None:
    for sink in start_sink("remote.test", tls=tls_context):
        h = await make_harness(settings_for(sink))
        spooled = await h.spool(message(), "a@example.test", ["bob@remote.test"])
        await h.deliver(spooled)
        [received] = sink.handler.received
        assert received.tls is True
        [attempt] = (await queue_store.get_queue_entry(h.conn, spooled.message.id)).attempts
        assert attempt.tls is not None
        assert attempt.tls.startswith("TLSv1")


async def test_a_busy_destination_leaves_the_delivery_due_without_an_attempt(
    make_harness: Any, sink: Sink, redis_url: str
) -> None:
    from postroom.delivery.limits import DestinationSlots, redis_client

    client = redis_client(redis_url)
    slots = DestinationSlots(client, limit=1, hold_seconds=60, wait=0.2)
    h = await make_harness(settings_for(sink), slots=slots)
    spooled = await h.spool(message(), "a@example.test", ["bob@remote.test"])
    async with slots.hold("remote.test") as got:
        assert got
        await h.deliver(spooled)
    d = await h.delivery(spooled.deliveries[0].id)
    assert (d.state, d.attempts, d.lease_owner) == ("queued", 0, None)
    await h.deliver(spooled)
    assert (await h.delivery(spooled.deliveries[0].id)).state == "delivered"
    await client.aclose()


@pytest.mark.parametrize(
    ("reply", "state"),
    [("421 4.3.2 shutting down", "deferred"), ("554 5.7.1 rejected", "bounced")],
    ids=["4xx-data-defers", "5xx-data-bounces"],
)
async def test_reply_to_data_decides_for_every_accepted_recipient(
    make_harness: Any, sink: Sink, reply: str, state: str
) -> None:
    sink.handler.data_replies.append(reply)
    h = await make_harness(settings_for(sink))
    spooled = await h.spool(message(), "", ["x@remote.test", "y@remote.test"])
    await h.deliver(spooled)
    entry = await queue_store.get_queue_entry(h.conn, spooled.message.id)
    assert [d.state for d in entry.deliveries] == [state, state]
    assert {d.last_error for d in entry.deliveries} == {reply}
