"""The asyncio side of a worker process: one event loop thread, one pool, one Courier.

Celery calls tasks synchronously, from its pool threads; each task hands its coroutine to
this process's loop and waits. The loop, the connection pool and the Redis client are created
on first use in the process that uses them (never inherited across a fork).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from postroom.config import Settings
from postroom.delivery.courier import Courier, create_pool
from postroom.delivery.limits import DestinationSlots, redis_client
from postroom.queue import DELIVERY_QUEUE, dispatch
from postroom.runtime import database_url, redis_url

T = TypeVar("T")


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._pid = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._courier: Courier | None = None

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is not None and self._pid == os.getpid():
                return self._loop
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="delivery-loop", daemon=True).start()
            self._loop, self._pid, self._courier = loop, os.getpid(), None
            return loop

    def run(self, make: Any, timeout: float | None = None) -> Any:
        """Run ``make(courier)`` (a coroutine) on the loop and wait for its result."""
        loop = self._start()
        future = asyncio.run_coroutine_threadsafe(self._call(make), loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            # The task gives up: so does its coroutine (its leases then run out).
            future.cancel()
            raise

    async def _call(self, make: Any) -> Any:
        courier = await self.courier()
        coro: Coroutine[Any, Any, Any] = make(courier)
        return await coro

    async def courier(self) -> Courier:
        if self._courier is None:
            settings = self.settings
            pool = create_pool(database_url(settings), max_size=settings.delivery_concurrency + 2)
            await pool.open()
            redis = redis_client(redis_url(settings))
            self._courier = Courier(
                settings,
                pool,
                dispatch=self._dispatch,
                slots=DestinationSlots(
                    redis,
                    limit=settings.destination_concurrency,
                    hold_seconds=(
                        settings.delivery_deadline + settings.delivery_lease
                    ).total_seconds(),
                ),
            )
            self._redis = redis
        return self._courier

    async def _dispatch(self, ids: Sequence[int]) -> None:
        await asyncio.to_thread(dispatch, list(ids), self.settings)

    async def backlog(self) -> int:
        """Tasks waiting in the broker's delivery queue."""
        try:
            return int(await self._redis.llen(DELIVERY_QUEUE))
        except Exception:
            return 0
