"""The queue contract: tasks by name with ids only, and no hang when Redis is away."""

from __future__ import annotations

import base64
import json
import time

import redis

from postroom.config import load_settings
from postroom.queue import DELIVERY_QUEUE, TASK_DELIVER, dispatch


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
