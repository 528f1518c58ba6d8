"""Failed logins counted in Redis: replicas of a service, and different services, share one
count and one memory of known clients; a Redis that is away leaves each process its own."""

from __future__ import annotations

import secrets
import time

from postroom.config import load_settings
from postroom.throttle import AuthThrottle, RedisCounts, auth_throttle


def fresh_ip() -> str:
    # Documentation range, a new address per test: counts live for the whole window.
    return f"198.51.100.{secrets.randbelow(250) + 1}"


def fresh_account() -> str:
    return f"{secrets.token_hex(6)}@example.test"


async def test_failures_in_one_process_block_the_client_in_another(redis_url: str) -> None:
    first = AuthThrottle(shared=RedisCounts(redis_url, window=60))
    second = AuthThrottle(shared=RedisCounts(redis_url, window=60))
    ip = f"2001:db8:{secrets.randbelow(65000):x}::1"
    for _ in range(first.block_after):
        first.failure(ip, fresh_account())
    assert isinstance(first.shared, RedisCounts)
    await first.shared.settle()
    assert (await second.check(ip, fresh_account())).blocked


async def test_account_failures_elsewhere_slow_unknown_clients_here(redis_url: str) -> None:
    first = AuthThrottle(shared=RedisCounts(redis_url, window=60))
    second = AuthThrottle(shared=RedisCounts(redis_url, window=60))
    account = fresh_account()
    for n in range(first.account_free_failures + 2):
        first.failure(f"192.0.2.{n + 1}", account)
    assert isinstance(first.shared, RedisCounts)
    await first.shared.settle()
    assert (await second.check(fresh_ip(), account)).delay > 0


async def test_a_client_known_in_one_process_is_known_in_another(redis_url: str) -> None:
    first = AuthThrottle(shared=RedisCounts(redis_url, window=60))
    second = AuthThrottle(shared=RedisCounts(redis_url, window=60))
    ip, account = fresh_ip(), fresh_account()
    first.success(ip, account)
    assert isinstance(first.shared, RedisCounts)
    await first.shared.settle()
    assert (await second.check(ip, account)).known


async def test_shared_counts_expire_after_the_window(redis_url: str) -> None:
    shared = RedisCounts(redis_url, window=1)
    ip = fresh_ip()
    AuthThrottle(shared=shared).failure(ip, None)
    await shared.settle()
    assert await shared.get([f"ip:{ip}"]) == [1]
    time.sleep(2.1)  # noqa: ASYNC251 - Redis's own clock expires the key
    assert await shared.get([f"ip:{ip}"]) == [0]


async def test_redis_down_leaves_the_local_counts_working() -> None:
    shared = RedisCounts("redis://127.0.0.1:1/0", window=60)
    t = AuthThrottle(shared=shared)
    start = time.monotonic()
    for _ in range(t.block_after):
        t.failure("192.0.2.7", None)
    await shared.settle()
    assert (await t.check("192.0.2.7", None)).blocked
    assert time.monotonic() - start < 5


def test_services_share_counts_when_they_have_a_redis_url(redis_url: str) -> None:
    assert isinstance(
        auth_throttle(load_settings({"POSTROOM_REDIS_URL": redis_url})).shared, RedisCounts
    )


def test_without_redis_the_throttle_is_local(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings({"POSTROOM_DATA_DIR": str(tmp_path)})
    assert auth_throttle(settings).shared is None
