"""Sieve: runs per second of a 20-rule script in process, and local deliveries per second by one
worker when every recipient has that script active against when none has a script."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime

import redis

from postroom import store
from postroom.db import connect
from postroom.queue import dispatch, publisher
from postroom.sieve import Context, Envelope, MessageView, compile_script, run
from postroom.sieve.rules import FilterRule, FilterSet, RuleAction, RuleCondition, generate
from postroom.store import sieve as sieve_store

try:
    from bench.bench_delivery import Workers, message, spool, wait_delivered
    from bench.common import fresh_database, table
except ModuleNotFoundError:  # run as a script from bench/
    from bench_delivery import Workers, message, spool, wait_delivered  # type: ignore[no-redef]
    from common import fresh_database, table  # type: ignore[no-redef]

MESSAGES = 500
ACCOUNTS = 10
BATCH = 20
RUNS = 5000


def twenty_rules() -> str:
    """What a rule editor writes: 20 rules on From, To, Subject, a list header and size; the
    bench messages match none but the last, which files them into a folder."""
    rules = []
    for n in range(19):
        field = ("from", "to", "subject", "header", "size_over")[n % 5]
        condition = RuleCondition(
            field=field,
            op="contains",
            value="50000" if field == "size_over" else f"nomatch-{n}",
            header="List-Id" if field == "header" else "",
        )
        actions = [RuleAction(type="fileinto", value=f"Folder{n}"), RuleAction(type="stop")]
        rules.append(FilterRule(name=f"rule {n}", conditions=[condition], actions=actions))
    rules.append(
        FilterRule(
            name="bench",
            conditions=[RuleCondition(field="subject", value="bench")],
            actions=[RuleAction(type="mark_read"), RuleAction(type="fileinto", value="Bench")],
        )
    )
    return generate(FilterSet(rules=rules))


def interpreter_rate(source: str) -> float:
    script = compile_script(source)
    view_raw = message(1)
    envelope = Envelope("sender@example.test", "user0@bench.test")
    start = time.perf_counter()
    for _ in range(RUNS):
        run(script, Context(MessageView(view_raw), envelope))
    return RUNS / (time.perf_counter() - start)


async def delivery_rate(url: str, redis_url: str, *, with_script: bool) -> float:
    conn = await connect(url, autocommit=True)
    domain = f"{'s' if with_script else 'n'}{time.time_ns()}.test"
    await store.create_domain(conn, domain)
    addresses = []
    source = twenty_rules()
    for i in range(ACCOUNTS):
        account = await store.create_account(conn, f"user{i}@{domain}", "pw")
        addresses.append(account.address)
        if with_script:
            await sieve_store.put_script(
                conn, account.id, "rules", source, max_size=1 << 20, max_scripts=16,
                activate=True, now=datetime.now(UTC),
            )  # fmt: skip
    env = {
        **os.environ,
        "POSTROOM_DATABASE_URL": url,
        "POSTROOM_REDIS_URL": redis_url,
        "POSTROOM_LOG_LEVEL": "WARNING",
        "POSTROOM_HOSTNAME": "bench.test",
    }
    workers = Workers(1, env)
    try:
        warm_q, warm_ids = await spool(conn, 0, addresses[0])
        dispatch(warm_ids)
        await wait_delivered(conn, [warm_q], within=60)
        spooled = [await spool(conn, n, addresses[n % ACCOUNTS]) for n in range(MESSAGES)]
        ids = [i for _, d in spooled for i in d]
        start = time.perf_counter()
        for s in range(0, len(ids), BATCH):
            dispatch(ids[s : s + BATCH])
        await wait_delivered(conn, [q for q, _ in spooled])
        return MESSAGES / (time.perf_counter() - start)
    finally:
        workers.stop()
        await conn.close()


def main() -> None:
    source = twenty_rules()
    runs = interpreter_rate(source)
    redis_url = os.environ.get("POSTROOM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
    os.environ["POSTROOM_REDIS_URL"] = redis_url
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    try:
        with fresh_database() as url:
            plain = asyncio.run(delivery_rate(url, redis_url, with_script=False))
            filtered = asyncio.run(delivery_rate(url, redis_url, with_script=True))
    finally:
        client.flushdb()
        publisher.cache_clear()
    print(
        table(
            f"Sieve: a 20-rule script ({len(source)} octets), {len(message(0)) // 1024} KiB mail",
            ["measure", "no script", "20 rules"],
            [
                ["interpreter runs/s (one process)", "-", f"{runs:.0f}"],
                ["local deliveries/s (one worker)", f"{plain:.0f}", f"{filtered:.0f}"],
            ],
        )
    )


if __name__ == "__main__":
    main()
