"""The queue contract: task names, their JSON arguments, and dispatch through Celery on Redis.

Only references cross Redis (delivery ids), never message content; Postgres stays the source
of truth, so a lost or duplicated task delays mail at worst. smtp-in and the API dispatch
through here by task *name*, without importing the delivery worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import structlog
from celery import Celery

from postroom.config import Settings, get_settings
from postroom.runtime import redis_url

# Task names and their arguments (JSON):
TASK_DELIVER = "postroom.deliver"  # (delivery_ids: list[int]) deliver these if still due
TASK_DISPATCH_DUE = "postroom.dispatch_due"  # () the periodic sweep: dispatch all due work
DELIVERY_QUEUE = "postroom.delivery"
MAX_IDS_PER_TASK = 100

log = structlog.get_logger("postroom.queue")


def celery_config(broker_url: str) -> dict[str, Any]:
    """Settings shared by every process that talks to the broker."""
    return {
        "broker_url": broker_url,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": DELIVERY_QUEUE,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        # A publisher must not hang when Redis is down: the sweep will find the work.
        "broker_transport_options": {
            "socket_timeout": 2,
            "socket_connect_timeout": 2,
            "max_retries": 1,
        },
        "task_publish_retry": False,
        "timezone": "UTC",
        "enable_utc": True,
    }


@lru_cache(maxsize=4)
def publisher(broker_url: str) -> Celery:
    """A Celery app that only sends tasks (no task code is imported)."""
    app = Celery("postroom-publisher")
    app.conf.update(celery_config(broker_url))
    return app


def dispatch(delivery_ids: Sequence[int], settings: Settings | None = None) -> bool:
    """Ask a worker to deliver these now. False (and a warning) when the broker is away."""
    if not delivery_ids:
        return True
    app = publisher(redis_url(settings or get_settings()))
    ids = [int(i) for i in delivery_ids]
    try:
        for start in range(0, len(ids), MAX_IDS_PER_TASK):
            app.send_task(TASK_DELIVER, args=[ids[start : start + MAX_IDS_PER_TASK]], retry=False)
    except Exception as exc:  # the broker is down or unreachable; nothing is lost
        log.warning("queue.dispatch.failed", deliveries=len(ids), error=str(exc))
        return False
    return True
