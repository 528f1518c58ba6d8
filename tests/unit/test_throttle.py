"""Failed-login throttling: free tries, growing delays, lock-out, expiry, bounded memory."""

from __future__ import annotations

from postroom.auth import plaintext_auth_allowed
from postroom.throttle import AuthThrottle


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
