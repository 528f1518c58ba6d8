"""The periodic sweep (Celery beat): dispatch everything due, and send the DSNs owed.

Postgres knows what is due; the sweep only re-announces it, so a flushed Redis, a worker
killed mid-delivery (its lease runs out) or a cluster restart delays mail but loses none.
Two sweeps at once are harmless: a delivery is claimed by one worker only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from postroom.delivery import bounce
from postroom.delivery.courier import Courier
from postroom.delivery.metrics import FAILURES
from postroom.queue import MAX_IDS_PER_TASK
from postroom.store import queue as queue_store
from postroom.store.types import DeliveryId

log = structlog.get_logger("postroom.delivery.sweep")

# Deliveries dispatched per sweep; the rest wait for the next one.
MAX_PER_SWEEP = 10 * MAX_IDS_PER_TASK


async def dispatch_due(
    courier: Courier, backlog: Callable[[], Awaitable[int]] | None = None
) -> int:
    """One sweep; returns how many deliveries it dispatched.

    Each stage runs on its own connection and fails alone (logged, counted), so whatever
    one queue entry or one stage does, the sweep always reaches ``due_ids`` and dispatches
    what is due: a poison message must never stop the retries of all other mail.

    ``backlog`` tells how many tasks wait in the broker: while workers still have that much
    to do, due deliveries are most likely already on their way, and dispatching them again
    would only pile up duplicates (which workers would skip, but only after reading them).
    """
    settings = courier.settings
    now = courier.clock()
    new: list[DeliveryId] = []
    due: list[DeliveryId] = []

    async def failure_dsns() -> None:
        async with courier.pool.connection() as conn:
            owing = await queue_store.dsn_due_messages(conn)
            new.extend(await bounce.send_failure_dsns(conn, owing, settings=settings, now=now))

    async def delay_warnings() -> None:
        async with courier.pool.connection() as conn:
            new.extend(await bounce.send_delay_warnings(conn, settings=settings, now=now))

    async def due_deliveries() -> None:
        waiting = 0
        if backlog is not None:
            with _stage("backlog"):
                waiting = await backlog()
        if waiting < MAX_IDS_PER_TASK:
            async with courier.pool.connection() as conn:
                # A grace of one interval lets fresh mail reach its worker through the task
                # the spooler sent, instead of being announced twice.
                due.extend(
                    await queue_store.due_ids(
                        conn, now=now - settings.sweep_interval, limit=MAX_PER_SWEEP
                    )
                )

    for name, stage in (
        ("failure_dsns", failure_dsns),
        ("delay_warnings", delay_warnings),
        ("due", due_deliveries),
    ):
        with _stage(name):
            await stage()
    ids = sorted(set(new) | set(due))
    if ids:
        await courier.dispatch(ids)
        log.info("delivery.sweep.dispatched", deliveries=len(ids), dsns=len(new))
    return len(ids)


class _stage(contextlib.AbstractContextManager[None]):
    """Catch, log and count what one sweep stage raises, so the next stage still runs."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        log.error(
            "delivery.sweep.stage_failed",
            stage=self.name,
            error=f"{type(exc).__name__}: {exc}",
            exc_info=exc,
        )
        FAILURES.labels(f"sweep.{self.name}").inc()
        return True
