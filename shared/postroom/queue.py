"""The queue contract: task names, their JSON arguments, and dispatch through Celery on Redis.

Only references cross Redis (delivery ids), never message content; Postgres stays the source
of truth, so a lost or duplicated task delays mail at worst. smtp-in and the API dispatch
through here by task *name*, without importing the delivery worker.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from functools import lru_cache
from typing import Any
from uuid import uuid4

import redis.asyncio as aioredis
import structlog
from celery import Celery
from kombu.serialization import dumps as serialize
from kombu.utils.json import dumps as json_dumps

from postroom.config import Settings, get_settings
from postroom.runtime import redis_url

# Task names and their arguments (JSON):
TASK_DELIVER = "postroom.deliver"  # (delivery_ids: list[int]) deliver these if still due
TASK_DISPATCH_DUE = "postroom.dispatch_due"  # () the periodic sweep: dispatch all due work
TASK_HOUSEKEEP = "postroom.housekeep"  # () remove what nothing needs any more (postroom gc)
TASK_RENEW_CERTIFICATE = "postroom.renew_certificate"  # () ACME: order one if due (acme renew)
TASK_SEND_TLS_REPORTS = "postroom.send_tls_reports"  # () TLS-RPT: mail the days before today
# (mailbox_id: int, uids: list[int], spam: bool) teach the spam filter these messages: spam
# when a user filed them into Junk, ham when taken out of it (postroom.learning).
TASK_LEARN = "postroom.learn"
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


def task_message(app: Celery, name: str, args: list[Any]) -> bytes:
    """The bytes Celery's Redis transport pushes on the queue's list for ``send_task(name,
    args)``: Celery builds the task (message protocol 2) and serializes its body; the envelope
    is kombu's virtual-transport one (base64 body, delivery info for the default exchange),
    checked against kombu's own in the tests."""
    task_id = str(uuid4())
    task = app.amqp.as_task_v2(
        task_id, name, args=args, kwargs={}, reply_to=app.thread_oid, ignore_result=None
    )
    content_type, content_encoding, body = serialize(task.body, serializer="json")  # type: ignore[no-untyped-call]
    envelope = {
        "body": base64.b64encode(body if isinstance(body, bytes) else body.encode()).decode(),
        "content-encoding": content_encoding,
        "content-type": content_type,
        "headers": task.headers,
        "properties": {
            **task.properties,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": DELIVERY_QUEUE},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid4()),
        },
    }
    return str(json_dumps(envelope)).encode()  # type: ignore[no-untyped-call]


class AsyncPublisher:
    """Publishes delivery tasks from an asyncio loop without a thread: the task message is
    built as Celery would and pushed onto the queue's Redis list in one LPUSH. For servers
    that accept mail at a high rate (smtp-in), where a blocking publish per message would
    compete with the event loop."""

    def __init__(self, broker_url: str) -> None:
        self._app = publisher(broker_url)
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            broker_url.replace("redis+socket://", "unix://"),
            socket_timeout=2,
            socket_connect_timeout=2,
        )

    async def dispatch(self, delivery_ids: Sequence[int]) -> bool:
        """As :func:`dispatch`: False (and a warning) when the broker is away."""
        ids = [int(i) for i in delivery_ids]
        if not ids:
            return True
        messages = [
            task_message(self._app, TASK_DELIVER, [ids[start : start + MAX_IDS_PER_TASK]])
            for start in range(0, len(ids), MAX_IDS_PER_TASK)
        ]
        try:
            await self._client.lpush(DELIVERY_QUEUE, *messages)
        except Exception as exc:  # the broker is down or unreachable; nothing is lost
            log.warning("queue.dispatch.failed", deliveries=len(ids), error=str(exc))
            return False
        return True

    async def send(self, name: str, args: list[Any]) -> bool:
        """One task of the contract by name; False (and a warning) when the broker is away."""
        try:
            await self._client.lpush(DELIVERY_QUEUE, task_message(self._app, name, args))
        except Exception as exc:  # the broker is down or unreachable
            log.warning("queue.send.failed", task=name, error=str(exc))
            return False
        return True

    async def close(self) -> None:
        await self._client.aclose()
