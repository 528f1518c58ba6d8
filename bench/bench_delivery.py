"""Delivery worker: local deliveries per second with 1 and 2 worker processes, and the
latency from spool commit (what smtp-in does before its 250) to the message in INBOX at a
steady 50 messages per second."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime

import redis

from postroom import store
from postroom.db import Conn, connect
from postroom.queue import dispatch, publisher
from postroom.store import queue as queue_store
from postroom.store.types import Arrival, QueueId

try:
    from bench.common import fresh_database, table
except ModuleNotFoundError:  # run as a script from bench/
    from common import fresh_database, table  # type: ignore[no-redef]

MESSAGES = 1000
RATE = 50
LATENCY_SECONDS = 10
ACCOUNTS = 10
BATCH = 20


def message(n: int) -> bytes:
    return (
        f"From: <sender@example.test>\r\nTo: <user@bench.test>\r\nSubject: bench {n}\r\n"
        f"Message-ID: <{n}.{time.time_ns()}@example.test>\r\n\r\n"
    ).encode() + b"The quick brown fox jumps over the lazy dog.\r\n" * 40


class Workers:
    def __init__(self, count: int, env: dict[str, str]) -> None:
        self.processes = [
            subprocess.Popen(
                [sys.executable, "-m", "postroom.delivery", "worker"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(count)
        ]

    def stop(self) -> None:
        for p in self.processes:
            p.terminate()
        for p in self.processes:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


async def spool(conn: Conn, n: int, to: str) -> tuple[QueueId, list[int]]:
    spooled = await queue_store.spool(
        conn,
        message(n),
        reverse_path="sender@example.test",
        recipients=[to],
        arrival=Arrival(source="smtp"),
        now=datetime.now(UTC),
    )
    return spooled.message.id, [d.id for d in spooled.deliveries]


async def wait_delivered(conn: Conn, queue_ids: list[QueueId], within: float = 300) -> None:
    deadline = time.monotonic() + within
    while True:
        cur = await conn.execute(
            """SELECT count(*) AS n FROM deliveries
               WHERE queue_message_id = ANY(%s) AND state = 'delivered'""",
            (queue_ids,),
        )
        row = await cur.fetchone()
        if row and row["n"] >= len(queue_ids):
            return
        if time.monotonic() > deadline:
            raise RuntimeError("deliveries did not finish")
        await asyncio.sleep(0.02)


async def throughput(conn: Conn, addresses: list[str], offset: int) -> float:
    spooled = [
        await spool(conn, offset + n, addresses[n % len(addresses)]) for n in range(MESSAGES)
    ]
    ids = [i for _, d in spooled for i in d]
    start = time.perf_counter()
    for s in range(0, len(ids), BATCH):
        dispatch(ids[s : s + BATCH])
    await wait_delivered(conn, [q for q, _ in spooled])
    return MESSAGES / (time.perf_counter() - start)


async def latency(conn: Conn, addresses: list[str], offset: int) -> tuple[float, float]:
    queue_ids = []
    start = time.perf_counter()
    for n in range(RATE * LATENCY_SECONDS):
        delay = start + n / RATE - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue_id, ids = await spool(conn, offset + n, addresses[n % len(addresses)])
        dispatch(ids)
        queue_ids.append(queue_id)
    await wait_delivered(conn, queue_ids)
    # internal_date is taken just before the append's commit, received_at at spool time.
    cur = await conn.execute(
        """SELECT extract(epoch FROM m.internal_date - q.received_at) * 1000 AS ms
           FROM queue_messages q JOIN deliveries d ON d.queue_message_id = q.id
           JOIN messages m ON m.delivery_key = d.id || ':' || (
               SELECT a.id FROM accounts a WHERE a.address = d.recipient)
           WHERE q.id = ANY(%s)""",
        (queue_ids,),
    )
    values = sorted(float(r["ms"]) for r in await cur.fetchall())
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return statistics.median(values), p99


async def run(url: str, redis_url: str) -> list[list[object]]:
    conn = await connect(url, autocommit=True)
    await store.create_domain(conn, "bench.test")
    addresses = []
    for i in range(ACCOUNTS):
        account = await store.create_account(conn, f"user{i}@bench.test", "pw")
        addresses.append(account.address)
    env = {
        **os.environ,
        "POSTROOM_DATABASE_URL": url,
        "POSTROOM_REDIS_URL": redis_url,
        "POSTROOM_LOG_LEVEL": "WARNING",
        "POSTROOM_HOSTNAME": "bench.test",
    }
    os.environ["POSTROOM_REDIS_URL"] = redis_url
    rows: list[list[object]] = []
    offset = 0
    for count in (1, 2):
        workers = Workers(count, env)
        try:
            warm_q, warm_ids = await spool(conn, offset, addresses[0])
            offset += 1
            dispatch(warm_ids)
            await wait_delivered(conn, [warm_q], within=60)
            rate = await throughput(conn, addresses, offset)
            offset += MESSAGES
            p50, p99 = await latency(conn, addresses, offset)
            offset += RATE * LATENCY_SECONDS
        finally:
            workers.stop()
        rows.append([count, MESSAGES, f"{rate:.0f}", f"{p50:.1f}", f"{p99:.1f}"])
    await conn.close()
    return rows


def main() -> None:
    redis_url = os.environ.get("POSTROOM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    try:
        with fresh_database() as url:
            rows = asyncio.run(run(url, redis_url))
    finally:
        client.flushdb()
        publisher.cache_clear()
    print(
        table(
            f"local delivery, {len(message(0)) // 1024} KiB messages, latency at {RATE} msg/s",
            ["workers", "messages", "deliveries/s", "latency p50 ms", "latency p99 ms"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
