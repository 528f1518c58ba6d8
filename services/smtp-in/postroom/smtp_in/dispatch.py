"""Delivery ids handed to the queue from the event loop, batched (one LPUSH for many)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import structlog

from postroom.config import Settings
from postroom.queue import AsyncPublisher
from postroom.runtime import redis_url

log = structlog.get_logger("postroom.smtp_in")

# How long the dispatcher lets ids gather before a publish: a few milliseconds of delivery
# latency for one LPUSH per handful of messages instead of one each.
DISPATCH_LINGER = 0.005


class Dispatcher:
    """Hands delivery ids to the queue from the event loop, batching whatever piles up while a
    publish is under way (one LPUSH, no thread). Losing a batch (Redis down, process killed)
    only delays mail: the delivery worker's sweep finds every queued delivery in Postgres."""

    def __init__(
        self,
        settings: Settings,
        send: Callable[[Sequence[int]], Awaitable[bool]] | None = None,
    ) -> None:
        self._settings = settings
        self._publisher: AsyncPublisher | None = None
        self._send = send
        self._pending: list[int] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def submit(self, ids: list[int]) -> None:
        self._pending.extend(ids)
        self._wakeup.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _publish(self, ids: Sequence[int]) -> bool:
        if self._send is not None:
            return await self._send(ids)
        if self._publisher is None:
            self._publisher = AsyncPublisher(redis_url(self._settings))
        return await self._publisher.dispatch(ids)

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            if not self._closing:
                await asyncio.sleep(DISPATCH_LINGER)
            self._wakeup.clear()
            batch, self._pending = self._pending, []
            if batch:
                try:
                    await self._publish(batch)
                except Exception:  # never let a broker problem end the dispatcher
                    log.exception("smtp.dispatch.failed", deliveries=len(batch))
            if self._closing and not self._pending:
                return

    async def close(self, grace: float = 5.0) -> None:
        if self._task is not None:
            self._closing = True
            self._wakeup.set()
            try:
                await asyncio.wait_for(self._task, grace)
            except TimeoutError:
                self._task.cancel()
        if self._publisher is not None:
            await self._publisher.close()
