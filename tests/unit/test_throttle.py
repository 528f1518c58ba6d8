"""Failed-login throttling: free tries, growing delays, lock-out, expiry, bounded memory."""

from __future__ import annotations

from collections.abc import Sequence

from postroom.auth import plaintext_auth_allowed
from postroom.throttle import AuthThrottle, SharedCounts


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_first_failures_cost_nothing() -> None:
    t = AuthThrottle(free_failures=3, clock=Clock())
    for _ in range(2):
        t.failure("192.0.2.1", "a@x.test")
    assert t.delay("192.0.2.1", "a@x.test") == 0.0


def test_delay_doubles_after_the_free_failures_up_to_the_cap() -> None:
    t = AuthThrottle(free_failures=1, base_delay=1.0, max_delay=4.0, lockout_failures=99)
    delays = []
    for _ in range(5):
        t.failure("192.0.2.1")
        delays.append(t.delay("192.0.2.1"))
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_account_is_locked_whatever_the_ip() -> None:
    t = AuthThrottle(lockout_failures=3, clock=Clock())
    for i in range(3):
        t.failure(f"192.0.2.{i}", "victim@x.test")
    assert t.locked("198.51.100.9", "Victim@X.test")
    assert not t.locked("198.51.100.9", "other@x.test")


def test_ip_is_locked_whatever_the_account() -> None:
    t = AuthThrottle(lockout_failures=3, clock=Clock())
    for i in range(3):
        t.failure("192.0.2.1", f"user{i}@x.test")
    assert t.locked("192.0.2.1", "fresh@x.test")


def test_lockout_ends_after_a_quiet_window() -> None:
    clock = Clock()
    t = AuthThrottle(lockout_failures=2, window=60, clock=clock)
    t.failure("192.0.2.1")
    t.failure("192.0.2.1")
    assert t.locked("192.0.2.1")
    clock.now += 61
    assert not t.locked("192.0.2.1")


def test_success_clears_the_account_but_not_the_ip() -> None:
    t = AuthThrottle(lockout_failures=2, clock=Clock())
    t.failure("192.0.2.1", "a@x.test")
    t.failure("192.0.2.1", "a@x.test")
    t.success("192.0.2.1", "a@x.test")
    assert not t.locked(None, "a@x.test")
    assert t.locked("192.0.2.1")


def test_memory_is_bounded() -> None:
    t = AuthThrottle(max_entries=100, clock=Clock())
    for i in range(1000):
        t.failure(f"10.0.{i // 256}.{i % 256}")
    assert len(t._records) == 100


def test_plaintext_passwords_need_tls_except_from_loopback() -> None:
    assert plaintext_auth_allowed(tls=True, peer_ip="192.0.2.1", allow_plaintext=False)
    assert plaintext_auth_allowed(tls=False, peer_ip="127.0.0.1", allow_plaintext=False)
    assert plaintext_auth_allowed(tls=False, peer_ip="::1", allow_plaintext=False)
    assert not plaintext_auth_allowed(tls=False, peer_ip="192.0.2.1", allow_plaintext=False)
    assert plaintext_auth_allowed(tls=False, peer_ip="192.0.2.1", allow_plaintext=True)


def throttle(shared: SharedCounts) -> AuthThrottle:
    return AuthThrottle(
        free_failures=3, base_delay=0.5, lockout_failures=10, clock=Clock(), shared=shared
    )


class FakeShared:
    """Counts another process would have written, and what this one sends."""

    def __init__(self, counts: dict[str, int] | None = None) -> None:
        self.counts = counts or {}
        self.added: list[list[str]] = []
        self.cleared: list[list[str]] = []

    async def get(self, keys: Sequence[str]) -> list[int]:
        return [self.counts.get(k, 0) for k in keys]

    def add(self, keys: Sequence[str]) -> None:
        self.added.append(list(keys))

    def clear(self, keys: Sequence[str]) -> None:
        self.cleared.append(list(keys))


async def test_failures_counted_elsewhere_lock_out_here() -> None:
    shared = FakeShared({"acct:bob@example.test": 10})
    t = throttle(shared=shared)
    assert not t.locked("192.0.2.1", "bob@example.test")
    await t.refresh("192.0.2.1", "bob@example.test")
    assert t.locked("192.0.2.1", "bob@example.test")
    assert not t.locked("192.0.2.1", "carol@example.test")


async def test_refresh_never_lowers_the_local_count() -> None:
    t = throttle(shared=FakeShared({"ip:192.0.2.1": 1}))
    for _ in range(5):
        t.failure("192.0.2.1")
    await t.refresh("192.0.2.1")
    assert t.delay("192.0.2.1") == 2.0  # five failures, not one


def test_failures_and_successes_are_sent_to_the_shared_counts() -> None:
    shared = FakeShared()
    t = throttle(shared=shared)
    t.failure("192.0.2.1", "Bob@example.test")
    t.success("192.0.2.1", "bob@example.test")
    assert shared.added == [["ip:192.0.2.1", "acct:bob@example.test"]]
    assert shared.cleared == [["acct:bob@example.test"]]
