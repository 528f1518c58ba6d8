"""Failed-login throttling per client IP and per account: growing delays, then a lock-out.

Each process keeps its own records; with a Redis URL they are also counted in Redis, so that
several replicas of a service behind a load balancer (and the different services: an account
guessed over IMAP is locked out of SMTP AUTH and the web too) share one count.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
import structlog

from postroom.config import Settings
from postroom.errors import ConfigError
from postroom.runtime import redis_url

log = structlog.get_logger("postroom.throttle")


@dataclass
class _Record:
    failures: int
    last: float


class AuthThrottle:
    """Bookkeeping of failed logins, shared by every listener of one process.

    After ``free_failures`` failures from an IP or for an account, each further attempt waits
    ``base_delay * 2**(n - free_failures)`` seconds (at most ``max_delay``) before its answer;
    after ``lockout_failures`` the IP or account is refused outright until ``window`` seconds
    pass without a failure. Memory is bounded: the oldest records go first.
    """

    def __init__(
        self,
        *,
        free_failures: int = 3,
        base_delay: float = 0.5,
        max_delay: float = 15.0,
        lockout_failures: int = 10,
        window: float = 900.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedCounts | None = None,
    ) -> None:
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.lockout_failures = lockout_failures
        self.window = window
        self.max_entries = max_entries
        self.clock = clock
        self.shared = shared
        self._records: OrderedDict[str, _Record] = OrderedDict()

    async def refresh(self, ip: str | None, account: str | None = None) -> None:
        """Take in what other processes counted for this IP and account (call before
        :meth:`locked`); without shared counts, or when Redis does not answer, a no-op."""
        if self.shared is None:
            return
        keys = self._keys(ip, account)
        counts = await self.shared.get(keys)
        now = self.clock()
        for key, failures in zip(keys, counts, strict=True):
            if not failures:
                continue
            record = self._get(key)
            if record is None:
                self._records[key] = _Record(failures, now)
            elif failures > record.failures:
                record.failures = failures
        self._trim()

    def _get(self, key: str) -> _Record | None:
        record = self._records.get(key)
        if record is not None and self.clock() - record.last > self.window:
            del self._records[key]
            return None
        return record

    def _keys(self, ip: str | None, account: str | None) -> list[str]:
        keys = []
        if ip:
            keys.append("ip:" + ip)
        if account:
            keys.append("acct:" + account.lower())
        return keys

    def _failures(self, ip: str | None, account: str | None) -> int:
        counts = [r.failures for k in self._keys(ip, account) if (r := self._get(k))]
        return max(counts, default=0)

    def locked(self, ip: str | None, account: str | None = None) -> bool:
        """True when this IP or account is locked out: refuse without checking the password."""
        return self._failures(ip, account) >= self.lockout_failures

    def delay(self, ip: str | None, account: str | None = None) -> float:
        """Seconds to wait before answering this attempt."""
        excess = self._failures(ip, account) - self.free_failures
        if excess < 0:
            return 0.0
        return float(min(self.max_delay, self.base_delay * 2**excess))

    def failure(self, ip: str | None, account: str | None = None) -> None:
        now = self.clock()
        for key in self._keys(ip, account):
            record = self._get(key)
            if record is None:
                record = _Record(0, now)
                self._records[key] = record
            record.failures += 1
            record.last = now
            self._records.move_to_end(key)
        self._trim()
        if self.shared is not None:
            self.shared.add(self._keys(ip, account))

    def _trim(self) -> None:
        while len(self._records) > self.max_entries:
            self._records.popitem(last=False)

    def success(self, ip: str | None, account: str | None = None) -> None:
        """A right password clears the account's record (not the IP's: one good login from an
        address that guesses many accounts must not reset its count)."""
        keys = self._keys(None, account)
        for key in keys:
            self._records.pop(key, None)
        if self.shared is not None and keys:
            self.shared.clear(keys)


class SharedCounts(Protocol):
    async def get(self, keys: Sequence[str]) -> list[int]: ...
    def add(self, keys: Sequence[str]) -> None: ...
    def clear(self, keys: Sequence[str]) -> None: ...


class RedisCounts:
    """Failure counts in Redis: one key per IP or account (hashed, so a stranger's string
    never becomes a key), expiring ``window`` seconds after the last failure. Writes are sent
    in the background; a Redis that is down or slow leaves each process with its own counts."""

    PREFIX = "postroom:authfail:"
    MAX_PENDING = 1000

    def __init__(self, url: str, window: float, timeout: float = 0.5) -> None:
        self.window = max(1, int(window))
        self.timeout = timeout
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url.replace("redis+socket://", "unix://"),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._last: asyncio.Task[None] | None = None
        self._warned = 0.0

    def _key(self, key: str) -> str:
        return self.PREFIX + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:32]

    def _unavailable(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned > 60:  # one warning a minute, not one per login
            self._warned = now
            log.warning("throttle.shared.unavailable", error=str(exc) or type(exc).__name__)

    async def get(self, keys: Sequence[str]) -> list[int]:
        if not keys:
            return []
        try:
            async with asyncio.timeout(self.timeout):
                values = await self._client.mget([self._key(k) for k in keys])
        except Exception as exc:  # Redis away: local counts only
            self._unavailable(exc)
            return [0] * len(keys)
        return [int(v) if v is not None else 0 for v in values]

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run the write after the ones before it (a clear must not overtake an increment);
        past ``MAX_PENDING`` writes in flight (Redis slow under a flood) new ones are dropped
        and the local counts carry on alone."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: nothing to share with
            work.close()
            return
        if len(self._tasks) >= self.MAX_PENDING:
            work.close()
            return
        previous = self._last

        async def in_order() -> None:
            if previous is not None and not previous.done():
                await asyncio.wait([previous])
            await work

        task = loop.create_task(in_order())
        self._last = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _add(self, keys: Sequence[str]) -> None:
        try:
            async with asyncio.timeout(self.timeout * 4):
                pipe = self._client.pipeline(transaction=False)
                for key in keys:
                    pipe.incr(self._key(key))
                    pipe.expire(self._key(key), self.window)
                await pipe.execute()
        except Exception as exc:
            self._unavailable(exc)

    async def _clear(self, keys: Sequence[str]) -> None:
        try:
            async with asyncio.timeout(self.timeout * 4):
                await self._client.delete(*[self._key(k) for k in keys])
        except Exception as exc:
            self._unavailable(exc)

    def add(self, keys: Sequence[str]) -> None:
        self._background(self._add(list(keys)))

    def clear(self, keys: Sequence[str]) -> None:
        self._background(self._clear(list(keys)))

    async def settle(self) -> None:
        """Wait for the writes under way (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def auth_throttle(settings: Settings) -> AuthThrottle:
    """The throttle a service uses: counts shared through Redis when it has a Redis URL."""
    throttle = AuthThrottle()
    try:
        url = redis_url(settings)
    except ConfigError:
        return throttle
    throttle.shared = RedisCounts(url, throttle.window)
    return throttle
