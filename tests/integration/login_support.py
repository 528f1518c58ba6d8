"""The owner-versus-attacker scenario every protocol's login is tested with, over real sockets.

An attacker at 127.0.0.2 tries 30 wrong passwords for alice; alice, who logged in from
127.0.0.3 before, logs in from there during the attack; a stranger's address is slowed.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from postroom.throttle import AuthThrottle

OWNER_IP, ATTACKER_IP, STRANGER_IP = "127.0.0.3", "127.0.0.2", "127.0.0.4"


# The default shape (3 free failures, doubling, a block after 10, accounts slowed after 5)
# with short delays, so that 30 attempts take seconds, not minutes.
def fast_throttle() -> AuthThrottle:
    return AuthThrottle(base_delay=0.01, max_delay=0.05)


def connect_from(source_ip: str, port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=20, source_address=(source_ip, 0))


Attempt = Callable[[str, str, str], str]  # (source ip, identity, password) -> outcome


def attack_while_the_owner_logs_in(attempt: Attempt, address: str, password: str) -> list[str]:
    """The outcomes ("ok", "wrong", "throttled"): the owner before, the attacker's last two
    tries, the owner during the attack."""
    before = attempt(OWNER_IP, address, password)
    outcomes = [attempt(ATTACKER_IP, address, f"guess-{n}") for n in range(30)]
    during = attempt(OWNER_IP, address, password)
    assert set(outcomes) <= {"wrong", "throttled"}
    return [before, *outcomes[-2:], during]


EXPECTED = ["ok", "throttled", "throttled", "ok"]


async def strangers_are_slowed(throttle: AuthThrottle, address: str) -> tuple[float, float]:
    """(the owner's delay, a new address's delay) for this account now."""
    owner = await throttle.check(OWNER_IP, address)
    stranger = await throttle.check(STRANGER_IP, address)
    return owner.delay, stranger.delay
