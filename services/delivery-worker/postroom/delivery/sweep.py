"""The periodic sweep (Celery beat): dispatch everything due, and send the DSNs owed.

Postgres knows what is due; the sweep only re-announces it, so a flushed Redis, a worker
killed mid-delivery (its lease runs out) or a cluster restart delays mail but loses none.
Two sweeps at once are harmless: a delivery is claimed by one worker only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from postroom.delivery import bounce
from postroom.delivery.courier import Courier
from postroom.queue import MAX_IDS_PER_TASK
from postroom.store import queue as queue_store

log = structlog.get_logger("postroom.delivery.sweep")

# Deliveries dispatched per sweep; the rest wait for the next one.
MAX_PER_SWEEP = 10 * MAX_IDS_PER_TASK


async def dispatch_due(
    courier: Courier, backlog: Callable[[], Awaitable[int]] | None = None
) -> int:
    """One sweep; returns how many deliveries it dispatched.

    ``backlog`` tells how many tasks wait in the broker: while workers still have that much
    to do, due deliveries are most likely already on their way, and dispatching them again
    would only pile up duplicates (which workers would skip, but only after reading them).
    """
    settings = courier.settings
    now = courier.clock()
    new = []
    async with courier.pool.connection() as conn:
        owing = await queue_store.dsn_due_messages(conn)
        new += await bounce.send_failure_dsns(conn, owing, settings=settings, now=now)
        new += await bounce.send_delay_warnings(conn, settings=settings, now=now)
        waiting = await backlog() if backlog is not None else 0
        due = []
        if waiting < MAX_IDS_PER_TASK:
            # A grace of one interval lets fresh mail reach its worker through the task the
            # spooler sent, instead of being announced twice.
            due = await queue_store.due_ids(
                conn, now=now - settings.sweep_interval, limit=MAX_PER_SWEEP
            )
    ids = sorted(set(new) | set(due))
    if ids:
        await courier.dispatch(ids)
        log.info("delivery.sweep.dispatched", deliveries=len(ids), dsns=len(new))
    return len(ids)
