"""Failed-login throttling: per-client penalties then a block, per-account slowing that spares
clients known to the account, expiry and bounded memory."""

from __future__ import annotations

from postroom.auth import plaintext_auth_allowed
from postroom.throttle import AuthThrottle, Decision

OWNER, ATTACKER = "192.0.2.1", "203.0.113.66"
ALICE = "alice@example.test"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock | None = None) -> AuthThrottle:
    return AuthThrottle(
        free_failures=3,
        base_delay=0.5,
        max_delay=15.0,
        block_after=10,
        account_free_failures=5,
        clock=clock or Clock(),
    )


async def test_first_failures_cost_nothing() -> None:
    t = throttle()
    for _ in range(2):
        t.failure(ATTACKER, ALICE)
    assert await t.check(ATTACKER, ALICE) == Decision(blocked=False, delay=0.0, known=False)


async def test_a_client_is_slowed_doubling_to_the_cap_then_blocked() -> None:
    t = throttle()
    delays = []
    for n in range(10):
        delays.append((await t.check(ATTACKER, f"user{n}@example.test")).delay)
        t.failure(ATTACKER, f"user{n}@example.test")
    assert delays == [0.0, 0.0, 0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0]
    assert (await t.check(ATTACKER, "someone@example.test")).blocked


async def test_the_owner_from_a_known_address_is_never_slowed_by_an_attack() -> None:
    t = throttle()
    t.success(OWNER, ALICE)
    for _ in range(30):
        t.failure(ATTACKER, ALICE)
    assert await t.check(OWNER, ALICE) == Decision(blocked=False, delay=0.0, known=True)
    assert (await t.check(ATTACKER, ALICE)).blocked


async def test_guessing_spread_over_many_addresses_is_still_slowed() -> None:
    t = throttle()
    for n in range(20):
        t.failure(f"198.51.100.{n}", ALICE)
    decision = await t.check("198.51.100.200", ALICE)
    assert not decision.blocked
    assert decision.delay == 15.0
    # Each of those addresses alone has one failure: none is blocked or slowed for others.
    assert (await t.check("198.51.100.3", "bob@example.test")).delay == 0.0


async def test_an_ipv6_client_is_its_64() -> None:
    t = throttle()
    for n in range(10):
        t.failure(f"2001:db8:5:6::{n + 1:x}", f"user{n}@example.test")
    assert (await t.check("2001:db8:5:6:ffff::1", "other@example.test")).blocked
    assert not (await t.check("2001:db8:5:7::1", "other@example.test")).blocked


async def test_the_block_ends_after_a_quiet_window() -> None:
    clock = Clock()
    t = throttle(clock)
    for _ in range(10):
        t.failure(ATTACKER, ALICE)
    assert (await t.check(ATTACKER, ALICE)).blocked
    clock.now += t.window + 1
    assert not (await t.check(ATTACKER, ALICE)).blocked


async def test_a_known_address_is_forgotten_after_30_days() -> None:
    clock = Clock()
    t = throttle(clock)
    t.success(OWNER, ALICE)
    clock.now += 31 * 86400
    assert not (await t.check(OWNER, ALICE)).known


async def test_memory_is_bounded() -> None:
    t = AuthThrottle(max_entries=100, clock=Clock())
    for n in range(1000):
        t.failure(f"10.0.{n // 250}.{n % 250}", f"user{n}@example.test")
    assert len(t._local._values) <= 100


def test_plaintext_passwords_need_tls_except_from_loopback() -> None:
    assert plaintext_auth_allowed(tls=True, peer_ip="192.0.2.1", allow_plaintext=False)
    assert plaintext_auth_allowed(tls=False, peer_ip="127.0.0.1", allow_plaintext=False)
    assert plaintext_auth_allowed(tls=False, peer_ip="::1", allow_plaintext=False)
    assert not plaintext_auth_allowed(tls=False, peer_ip="192.0.2.1", allow_plaintext=False)
    assert plaintext_auth_allowed(tls=False, peer_ip="192.0.2.1", allow_plaintext=True)
