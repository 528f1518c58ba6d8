"""Failed logins counted in Redis: replicas of a service, and different services, share one
count; a Redis that is away leaves each process with its own."""

from __future__ import annotations

import secrets
import time

from postroom.config import load_settings
from postroom.throttle import AuthThrottle, RedisCounts, auth_throttle


def fresh_ip() -> str:
    # Documentation range, a new address per test: counts live for the whole window.
    return f"198.51.100.{secrets.randbelow(250) + 1}-{secrets.token_hex(4)}"


async def test_failures_in_one_process_lock_out_in_another(redis_url: str) -> None:
    first = AuthThrottle(shared=RedisCounts(redis_url, window=60))
    second = AuthThrottle(shared=RedisCounts(redis_url, window=60))
    ip, account = fresh_ip(), f"{secrets.token_hex(6)}@example.test"
    for _ in range(first.lockout_failures):
        first.failure(ip, account)
    assert isinstance(first.shared, RedisCounts)
    await first.shared.settle()
    await second.refresh("203.0.113.9", account)
    assert second.locked("203.0.113.9", account)
    await second.refresh(ip, None)
    assert second.locked(ip)


async def test_a_right_password_clears_the_shared_account_count(redis_url: str) -> None:
    shared = RedisCounts(redis_url, window=60)
    t = AuthThrottle(shared=shared)
    ip, account = fresh_ip(), f"{secrets.token_hex(6)}@example.test"
    for _ in range(5):
        t.failure(ip, account)
    t.success(ip, account)
    await shared.settle()
    assert await shared.get([f"acct:{account}", f"ip:{ip}"]) == [0, 5]


async def test_shared_counts_expire_after_the_window(redis_url: str) -> None:
    shared = RedisCounts(redis_url, window=1)
    ip = fresh_ip()
    AuthThrottle(shared=shared).failure(ip)
    await shared.settle()
    assert await shared.get([f"ip:{ip}"]) == [1]
    time.sleep(2.1)  # noqa: ASYNC251 - Redis's own clock expires the key
    assert await shared.get([f"ip:{ip}"]) == [0]


async def test_redis_down_leaves_the_local_counts_working() -> None:
    shared = RedisCounts("redis://127.0.0.1:1/0", window=60)
    t = AuthThrottle(shared=shared)
    start = time.monotonic()
    for _ in range(t.lockout_failures):
        t.failure("192.0.2.7")
    await shared.settle()
    await t.refresh("192.0.2.7")
    assert t.locked("192.0.2.7")
    assert time.monotonic() - start < 5


def test_services_share_counts_when_they_have_a_redis_url(redis_url: str) -> None:
    assert isinstance(
        auth_throttle(load_settings({"POSTROOM_REDIS_URL": redis_url})).shared, RedisCounts
    )


def test_without_redis_the_throttle_is_local(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings({"POSTROOM_DATA_DIR": str(tmp_path)})
    assert auth_throttle(settings).shared is None
