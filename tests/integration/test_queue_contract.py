"""The queue contract: tasks by name with ids only, and no hang when Redis is away."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import redis

from postroom.config import load_settings
from postroom.queue import DELIVERY_QUEUE, TASK_DELIVER, AsyncPublisher, dispatch


def test_dispatch_sends_the_ids_to_the_delivery_queue(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url.replace("redis+socket://", "unix://"))
    client.delete(DELIVERY_QUEUE)
    assert dispatch([3, 5], load_settings({"POSTROOM_REDIS_URL": redis_url})) is True
    [raw] = client.lrange(DELIVERY_QUEUE, 0, -1)
    envelope = json.loads(raw)
    assert envelope["headers"]["task"] == TASK_DELIVER
    body = envelope["body"]
    assert envelope["properties"]["body_encoding"] == "base64"
    args, kwargs, _ = json.loads(base64.b64decode(body))
    assert (args, kwargs) == ([[3, 5]], {})
    client.delete(DELIVERY_QUEUE)


def test_dispatch_with_redis_down_returns_false_quickly() -> None:
    settings = load_settings({"POSTROOM_REDIS_URL": "redis://127.0.0.1:1/0"})
    start = time.monotonic()
    assert dispatch([1], settings) is False
    assert time.monotonic() - start < 10


def _without_ids(raw: bytes) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(raw)
    for key in ("id", "root_id"):
        message["headers"][key] = None
    for key in ("correlation_id", "delivery_tag"):
        message["properties"][key] = None
    return message


def test_async_publisher_pushes_what_celery_itself_pushes(redis_url: str) -> None:
    """The loop-side publisher builds the task message itself; it must be, id for id aside,
    the message kombu's Redis transport writes for ``send_task``."""
    client = redis.Redis.from_url(redis_url.replace("redis+socket://", "unix://"))
    client.delete(DELIVERY_QUEUE)
    assert dispatch([3, 5], load_settings({"POSTROOM_REDIS_URL": redis_url})) is True
    publisher = AsyncPublisher(redis_url)
    assert asyncio.run(publisher.dispatch([3, 5])) is True
    theirs, ours = client.lrange(DELIVERY_QUEUE, 0, -1)[::-1]
    assert _without_ids(ours) == _without_ids(theirs)
    assert json.loads(ours)["headers"]["id"] != json.loads(theirs)["headers"]["id"]
    client.delete(DELIVERY_QUEUE)


def test_async_publisher_splits_large_batches_into_tasks_of_at_most_100_ids(
    redis_url: str,
) -> None:
    client = redis.Redis.from_url(redis_url.replace("redis+socket://", "unix://"))
    client.delete(DELIVERY_QUEUE)
    assert asyncio.run(AsyncPublisher(redis_url).dispatch(list(range(1, 251)))) is True
    sizes = [
        len(json.loads(base64.b64decode(json.loads(raw)["body"]))[0][0])
        for raw in client.lrange(DELIVERY_QUEUE, 0, -1)[::-1]
    ]
    assert sizes == [100, 100, 50]
    client.delete(DELIVERY_QUEUE)


def test_async_publisher_with_redis_down_returns_false_quickly() -> None:
    start = time.monotonic()
    assert asyncio.run(AsyncPublisher("redis://127.0.0.1:1/0").dispatch([1])) is False
    assert time.monotonic() - start < 10
