"""Failed-login throttling that stops guessing and never locks the owner out.

Two counts, each shared through Redis by every replica and service (an account guessed over
IMAP is slowed over SMTP AUTH and the web too), each kept locally as well so that a Redis
that is away leaves every process with its own:

- **per client** (an IPv4 address, or the /64 of an IPv6 one): after ``free_failures``
  failures each attempt from there waits ``base_delay``, doubling up to ``max_delay``; after
  ``block_after`` the client is refused outright until ``window`` passes without a failure.
- **per account**: failures from anywhere slow (never block) further attempts the same way,
  but only attempts from clients that have not logged in to that account in the last
  ``known_for`` (30 days). The owner, from an address they used before, logs in at once
  during any attack from elsewhere; a guessing run spread over many addresses is still slowed.

Keys are hashed (a stranger's string never becomes a Redis key). Accounts are named by their
canonical identity (`postroom.login.canonical_identity`), so that ``Alice@x.``,
``<alice@x>`` and ``alice@x`` are one account here as they are at login.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import structlog

from postroom.config import Settings
from postroom.errors import ConfigError
from postroom.listener import client_key
from postroom.runtime import redis_url

log = structlog.get_logger("postroom.throttle")

KNOWN_FOR = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a login attempt before its password is looked at."""

    blocked: bool  # refuse without checking (the client is blocked for now)
    delay: float  # else wait this long before answering
    known: bool  # the client logged in to this account lately


class _Local:
    """Counts and marks in this process's memory, oldest dropped first past ``max_entries``."""

    def __init__(self, max_entries: int, clock: Callable[[], float]) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._values: OrderedDict[str, tuple[int, float]] = OrderedDict()  # value, expires

    def get(self, key: str) -> int:
        entry = self._values.get(key)
        if entry is None:
            return 0
        if entry[1] <= self.clock():
            del self._values[key]
            return 0
        return entry[0]

    def put(self, key: str, value: int, ttl: float) -> None:
        self._values[key] = (value, self.clock() + ttl)
        self._values.move_to_end(key)
        while len(self._values) > self.max_entries:
            self._values.popitem(last=False)

    def incr(self, key: str, ttl: float) -> int:
        value = self.get(key) + 1
        self.put(key, value, ttl)
        return value

    def raise_to(self, key: str, value: int, ttl: float) -> None:
        """Take in a count seen elsewhere (never lowers ours)."""
        if value > self.get(key):
            self.put(key, value, ttl)


class AuthThrottle:
    """The throttle of one process, shared by every protocol it serves."""

    def __init__(
        self,
        *,
        free_failures: int = 3,
        base_delay: float = 0.5,
        max_delay: float = 15.0,
        block_after: int = 10,
        account_free_failures: int = 5,
        window: float = 900.0,
        known_for: float = KNOWN_FOR,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        shared: RedisCounts | None = None,
    ) -> None:
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.block_after = block_after
        self.account_free_failures = account_free_failures
        self.window = window
        self.known_for = known_for
        self.shared = shared
        self._local = _Local(max_entries, clock)

    @staticmethod
    def _keys(ip: str | None, account: str | None) -> tuple[str, str, str]:
        client = client_key(ip) if ip else "?"
        name = account or "?"
        return f"ip:{client}", f"acct:{name}", f"known:{name}:{client}"

    def _slowing(self, failures: int, free: int) -> float:
        excess = failures - free
        if excess < 0:
            return 0.0
        return float(min(self.max_delay, self.base_delay * 2**excess))

    async def check(self, ip: str | None, account: str | None) -> Decision:
        """Before the password is looked at: block, wait, or go ahead."""
        ip_key, acct_key, known_key = self._keys(ip, account)
        if self.shared is not None:
            counts = await self.shared.get([ip_key, acct_key, known_key])
            self._local.raise_to(ip_key, counts[0], self.window)
            self._local.raise_to(acct_key, counts[1], self.window)
            if counts[2]:
                self._local.put(known_key, 1, self.known_for)
        client_failures = self._local.get(ip_key)
        known = bool(self._local.get(known_key))
        if client_failures >= self.block_after:
            return Decision(blocked=True, delay=0.0, known=known)
        delay = self._slowing(client_failures, self.free_failures)
        if not known:
            account_failures = self._local.get(acct_key)
            delay = max(delay, self._slowing(account_failures, self.account_free_failures))
        return Decision(blocked=False, delay=delay, known=known)

    def failure(self, ip: str | None, account: str | None) -> None:
        ip_key, acct_key, _known = self._keys(ip, account)
        self._local.incr(ip_key, self.window)
        self._local.incr(acct_key, self.window)
        if self.shared is not None:
            self.shared.add([ip_key, acct_key])

    def success(self, ip: str | None, account: str | None) -> None:
        """Remember that this client logs in to this account (the counts stay: one good
        login from an address that guesses many accounts must not reset anything)."""
        _ip, _acct, known_key = self._keys(ip, account)
        self._local.put(known_key, 1, self.known_for)
        if self.shared is not None:
            self.shared.mark(known_key, self.known_for)


class RedisCounts:
    """The counts and marks in Redis, expiring ``window`` after the last failure (marks after
    ``known_for``). Writes go in the background, in order; a Redis that is down or slow
    leaves each process with its own counts."""

    PREFIX = "postroom:auth:"
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
        """Run the write after the ones before it; past ``MAX_PENDING`` writes in flight
        (Redis slow under a flood) new ones are dropped and the local counts carry on."""
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

    async def _mark(self, key: str, ttl: float) -> None:
        try:
            async with asyncio.timeout(self.timeout * 4):
                await self._client.set(self._key(key), 1, ex=max(1, int(ttl)))
        except Exception as exc:
            self._unavailable(exc)

    def add(self, keys: Sequence[str]) -> None:
        self._background(self._add(list(keys)))

    def mark(self, key: str, ttl: float) -> None:
        self._background(self._mark(key, ttl))

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
