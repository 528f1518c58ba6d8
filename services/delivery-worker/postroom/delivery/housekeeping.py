"""The housekeeping task (beat, hourly by default): one bounded garbage collection run."""

from __future__ import annotations

import structlog

from postroom.delivery.courier import Courier
from postroom.delivery.metrics import REMOVED
from postroom.store import housekeeping

log = structlog.get_logger("postroom.delivery.housekeeping")


async def housekeep(courier: Courier) -> housekeeping.Removed:
    settings = courier.settings
    async with courier.pool.connection() as conn:
        removed = await housekeeping.collect(
            conn,
            now=courier.clock(),
            queue_retention=settings.queue_retention,
            expunged_retention=settings.expunged_retention,
        )
    for kind, count in removed.as_dict().items():
        REMOVED.labels(kind).inc(count)
    log.info("housekeeping.done", **removed.as_dict())
    return removed
