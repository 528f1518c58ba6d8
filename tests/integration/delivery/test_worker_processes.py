"""Real worker processes on one queue: each recipient gets exactly one copy, whatever dies.

Two `python -m postroom.delivery worker` processes and one `beat` run against the test
database and Redis for the whole module (process starts are the expensive part).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from postroom.db import Conn
from postroom.queue import dispatch
from postroom.store import queue as queue_store
from postroom.store.types import Arrival, QueueId
from tests.integration.delivery.harness import message
from tests.support import Tenant

MESSAGES = 100
BATCH = 20  # ids per task, so that a kill lands in the middle of one
DEADLINE = 60.0


class Cluster:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.workers: list[subprocess.Popen[bytes]] = []
        self.beat: subprocess.Popen[bytes] | None = None

    def start(self, command: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "postroom.delivery", command],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start_worker(self) -> subprocess.Popen[bytes]:
        worker = self.start("worker")
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        processes = [*self.workers, *([self.beat] if self.beat else [])]
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in processes:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


@pytest.fixture(scope="module")
def cluster(database_url: str, redis_url: str) -> Iterator[Cluster]:
    env = {
        **os.environ,
        "POSTROOM_DATABASE_URL": database_url,
        "POSTROOM_REDIS_URL": redis_url,
        "POSTROOM_HOSTNAME": "mx.postroom.test",
        # Short, so that what a killed worker held comes back within the test.
        "POSTROOM_DELIVERY_LEASE": "3",
        "POSTROOM_SWEEP_INTERVAL": "1",
        "POSTROOM_DELIVERY_CONCURRENCY": "4",
        "POSTROOM_LOG_LEVEL": "WARNING",
    }
    c = Cluster(env)
    c.start_worker()
    c.start_worker()
    c.beat = c.start("beat")
    try:
        yield c
    finally:
        c.stop()


async def spool_many(conn: Conn, tenant: Tenant, count: int, *, announce: bool) -> list[QueueId]:
    accounts = [await tenant.account(f"user{i}") for i in range(5)]
    queue_ids: list[QueueId] = []
    ids: list[int] = []
    for n in range(count):
        to = accounts[n % len(accounts)].address
        spooled = await queue_store.spool(
            conn,
            message(to=to, body=f"message {n}"),
            reverse_path="sender@example.test",
            recipients=[to],
            arrival=Arrival(source="smtp"),
            now=queue_store_now(),
        )
        queue_ids.append(spooled.message.id)
        ids += [d.id for d in spooled.deliveries]
    if announce:
        for start in range(0, len(ids), BATCH):
            assert dispatch(ids[start : start + BATCH])
    return queue_ids


def queue_store_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


async def delivered_count(conn: Conn, queue_ids: list[QueueId]) -> int:
    cur = await conn.execute(
        """SELECT count(*) AS n FROM deliveries
           WHERE queue_message_id = ANY(%s) AND state = 'delivered'""",
        (queue_ids,),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["n"])


async def wait_delivered(conn: Conn, queue_ids: list[QueueId], at_least: int) -> int:
    deadline = time.monotonic() + DEADLINE
    while (n := await delivered_count(conn, queue_ids)) < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {n} of {at_least} delivered within {DEADLINE} s")
        await asyncio.sleep(0.1)
    return n


async def assert_exactly_once(conn: Conn, tenant: Tenant, queue_ids: list[QueueId]) -> None:
    """Every message is in its recipient's INBOX once, and nothing else is."""
    cur = await conn.execute(
        """SELECT d.queue_message_id, count(m.id) AS copies
           FROM deliveries d
           LEFT JOIN messages m ON m.delivery_key LIKE d.id || ':%%'
           WHERE d.queue_message_id = ANY(%s)
           GROUP BY d.queue_message_id""",
        (queue_ids,),
    )
    copies = {r["queue_message_id"]: r["copies"] for r in await cur.fetchall()}
    assert copies == dict.fromkeys(queue_ids, 1)
    cur = await conn.execute(
        """SELECT count(*) AS n FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
           JOIN accounts a ON a.id = b.account_id WHERE a.domain_id = %s""",
        (tenant.domain.id,),
    )
    row = await cur.fetchone()
    assert row is not None
    assert row["n"] == len(queue_ids)


async def test_two_workers_deliver_every_message_exactly_once(
    cluster: Cluster, conn: Conn, tenant: Tenant
) -> None:
    queue_ids = await spool_many(conn, tenant, MESSAGES, announce=True)
    await wait_delivered(conn, queue_ids, MESSAGES)
    await assert_exactly_once(conn, tenant, queue_ids)


async def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(
    cluster: Cluster, conn: Conn, tenant: Tenant
) -> None:
    queue_ids = await spool_many(conn, tenant, MESSAGES, announce=True)
    await wait_delivered(conn, queue_ids, 10)
    cur = await conn.execute(
        """SELECT lease_owner FROM deliveries WHERE queue_message_id = ANY(%s)
           AND state IN ('queued', 'deferred') AND lease_owner IS NOT NULL LIMIT 1""",
        (queue_ids,),
    )
    row = await cur.fetchone()
    assert row is not None, "no worker was in the middle of a batch"
    pid = int(row["lease_owner"].rpartition(":")[2])
    [victim] = [w for w in cluster.workers if w.pid == pid]
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    cluster.workers.remove(victim)
    cluster.start_worker()
    await wait_delivered(conn, queue_ids, MESSAGES)
    await assert_exactly_once(conn, tenant, queue_ids)


async def test_after_redis_is_flushed_the_sweep_delivers_everything(
    cluster: Cluster, conn: Conn, tenant: Tenant, redis_url: str
) -> None:
    queue_ids = await spool_many(conn, tenant, MESSAGES, announce=True)
    client = redis.Redis.from_url(redis_url.replace("redis+socket://", "unix://"))
    client.flushdb()
    client.close()
    await wait_delivered(conn, queue_ids, MESSAGES)
    await assert_exactly_once(conn, tenant, queue_ids)


async def test_mail_never_announced_is_found_by_the_sweep(
    cluster: Cluster, conn: Conn, tenant: Tenant
) -> None:
    queue_ids = await spool_many(conn, tenant, 20, announce=False)
    await wait_delivered(conn, queue_ids, 20)
    await assert_exactly_once(conn, tenant, queue_ids)
