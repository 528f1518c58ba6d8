"""No stranger can lock an owner out of SMTP AUTH: the attacker is slowed, then blocked; the
owner, from an address they logged in from before, gets in at once."""

from __future__ import annotations

import base64
from collections.abc import Callable

from tests.integration.access.pop3_support import in_thread
from tests.integration.login_support import (
    EXPECTED,
    attack_while_the_owner_logs_in,
    connect_from,
    fast_throttle,
    strangers_are_slowed,
)
from tests.integration.smtp_in.transcript import ServerThread
from tests.support import Tenant


async def test_smtp_auth_owner_logs_in_during_an_attack_from_elsewhere(
    start_smtp: Callable[..., ServerThread], tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "owner-pw")
    throttle = fast_throttle()
    server = start_smtp(kwargs={"throttle": throttle})

    def attempt(source_ip: str, address: str, password: str) -> str:
        sock = connect_from(source_ip, server.submission)
        file = sock.makefile("rb")
        try:
            file.readline()
            sock.sendall(b"EHLO client.example\r\n")
            while file.readline()[3:4] == b"-":
                pass
            token = base64.b64encode(f"\0{address}\0{password}".encode()).decode()
            sock.sendall(f"AUTH PLAIN {token}\r\n".encode())
            reply = file.readline()
        finally:
            sock.close()
        if reply.startswith(b"235 "):
            return "ok"
        if reply == b"454 4.7.0 Too many failed authentications, try again later\r\n":
            return "throttled"
        assert reply == b"535 5.7.8 Authentication credentials invalid\r\n", reply
        return "wrong"

    outcomes = await in_thread(attack_while_the_owner_logs_in, attempt, alice.address, "owner-pw")
    assert outcomes == EXPECTED
    owner_delay, stranger_delay = await strangers_are_slowed(throttle, alice.address)
    assert owner_delay == 0.0
    assert stranger_delay > 0.0
