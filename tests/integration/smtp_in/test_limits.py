"""Limits against strangers, and what happens when Postgres or Redis is away."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable

import psycopg
import pytest
import redis

from postroom.config import Settings
from postroom.db import Conn, create_pool
from postroom.queue import DELIVERY_QUEUE, TASK_DELIVER
from postroom.smtp_in import session
from postroom.store.queue import get_queue_entry
from postroom.store.types import QueueId
from tests.integration.smtp_in.test_inbound import queued
from tests.integration.smtp_in.transcript import ServerThread, Transcript
from tests.support import Tenant


def send_one(t: Transcript, rcpt: str) -> str:
    t.send("EHLO client.example").expect("250 ")
    t.send("MAIL FROM:<a@b.example>").expect("250")
    t.send(f"RCPT TO:<{rcpt}>").expect("250")
    t.send("DATA").expect("354")
    t.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
    return t.reply()[0]


def test_connections_past_the_per_ip_limit_get_421(start_smtp: Callable[..., ServerThread]) -> None:
    server = start_smtp(max_connections_per_ip="2")
    first = Transcript(server.inbound).greeting()
    second = Transcript(server.inbound).greeting()
    third = Transcript(server.inbound)
    third.expect_exactly("421 4.7.0 Too many connections from your address")
    assert third.closed()
    first.send("QUIT").expect("221")
    assert first.closed()
    fourth = Transcript(server.inbound).greeting()
    for t in (second, third, fourth):
        t.close()


def test_connections_past_the_total_limit_get_421(start_smtp: Callable[..., ServerThread]) -> None:
    server = start_smtp(max_connections="1")
    first = Transcript(server.submission).greeting()
    second = Transcript(server.inbound)
    second.expect_exactly("421 4.7.0 Too many connections, try again later")
    assert second.closed()
    first.close()
    second.close()


def test_a_silent_client_is_timed_out_with_421(start_smtp: Callable[..., ServerThread]) -> None:
    server = start_smtp(smtp_timeout="0.3")
    t = Transcript(server.inbound).greeting()
    t.expect_exactly("421 4.4.2 Timeout, closing connection")
    assert t.closed()
    t.close()


def test_database_down_at_rcpt_gives_451(
    start_smtp: Callable[..., ServerThread], make_settings: Callable[..., Settings]
) -> None:
    pool = create_pool("postgresql://postgres@127.0.0.1:1/none", min_size=1, max_size=1)
    server = start_smtp(kwargs={"pool": pool, "db_timeout": 0.5})
    # The pool lives on the server's loop.
    asyncio.run_coroutine_threadsafe(pool.open(wait=False), server.loop).result(5)
    t = Transcript(server.inbound).greeting()
    t.send("EHLO client.example").expect("250 ")
    t.send("MAIL FROM:<a@b.example>").expect("250")
    t.send("RCPT TO:<alice@anything.example>").expect_exactly(
        "451 4.3.0 Temporary failure, try again later"
    )
    t.close()
    asyncio.run_coroutine_threadsafe(pool.close(), server.loop).result(5)


async def test_database_failure_at_data_gives_451_never_250(
    smtp: ServerThread, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    await tenant.account("alice")

    async def broken_spool(*args: object, **kwargs: object) -> None:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(session, "spool", broken_spool)
    t = Transcript(smtp.inbound).greeting()
    assert send_one(t, tenant.address("alice")) == "451 4.3.0 Temporary failure, try again later"
    t.send("NOOP").expect_exactly("250 2.0.0 OK")
    t.close()


async def test_redis_down_still_accepts_and_spools(
    start_smtp: Callable[..., ServerThread], tenant: Tenant, conn: Conn
) -> None:
    await tenant.account("alice")
    server = start_smtp(redis_url="redis://127.0.0.1:1/0")
    t = Transcript(server.inbound).greeting()
    reply = send_one(t, tenant.address("alice"))
    _raw, recipients, _ = await queued(conn, reply)
    assert recipients == [tenant.address("alice")]
    t.close()


async def test_accepted_deliveries_are_dispatched_as_celery_tasks(
    start_smtp: Callable[..., ServerThread],
    make_settings: Callable[..., Settings],
    tenant: Tenant,
    conn: Conn,
) -> None:
    await tenant.account("alice")
    settings = make_settings()
    assert settings.redis_url is not None
    broker = redis.Redis.from_url(settings.redis_url.replace("redis+socket://", "unix://"))
    broker.delete(DELIVERY_QUEUE)
    server = start_smtp()
    t = Transcript(server.inbound).greeting()
    reply = send_one(t, tenant.address("alice"))
    entry = await get_queue_entry(conn, QueueId(int(reply.rsplit(" ", 1)[1])))
    # The server runs in its own thread: waiting here blocks nothing of it.
    popped = broker.brpop([DELIVERY_QUEUE], timeout=10)
    assert popped is not None, "nothing was dispatched"
    _queue, message = popped
    assert broker.llen(DELIVERY_QUEUE) == 0
    # What a Celery worker reads: kombu's envelope around a protocol-2 task message.
    envelope = json.loads(message)
    assert envelope["headers"]["task"] == TASK_DELIVER
    args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
    assert args == [[d.id for d in entry.deliveries]]
    assert kwargs == {}
    broker.delete(DELIVERY_QUEUE)
    broker.close()
    t.close()


def test_shutdown_tells_an_idle_client_421(
    start_smtp: Callable[..., ServerThread],
) -> None:
    server = start_smtp()
    idle = Transcript(server.inbound).greeting()
    idle.send("EHLO client.example").expect("250 ")
    assert server.server is not None
    stopping = asyncio.run_coroutine_threadsafe(server.server.stop(grace=5), server.loop)
    idle.expect_exactly("421 4.3.2 Service shutting down, closing connection")
    assert idle.closed()
    stopping.result(30)
    idle.close()
