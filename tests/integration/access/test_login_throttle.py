"""No stranger can lock an owner out of IMAP or POP3: the attacker is slowed, then blocked;
the owner, from an address they logged in from before, gets in at once."""

from __future__ import annotations

from pathlib import Path

from tests.integration.access.imap_support import running_imap
from tests.integration.access.pop3_support import in_thread, running_pop3
from tests.integration.login_support import (
    EXPECTED,
    attack_while_the_owner_logs_in,
    connect_from,
    fast_throttle,
    strangers_are_slowed,
)
from tests.support import Tenant


def imap_login(port: int) -> object:
    def attempt(source_ip: str, address: str, password: str) -> str:
        sock = connect_from(source_ip, port)
        file = sock.makefile("rb")
        try:
            file.readline()
            sock.sendall(f'a LOGIN "{address}" "{password}"\r\n'.encode())
            reply = file.readline()
        finally:
            sock.close()
        if reply.startswith(b"a OK"):
            return "ok"
        if b"[UNAVAILABLE]" in reply:
            return "throttled"
        assert reply == b"a NO [AUTHENTICATIONFAILED] Authentication failed\r\n", reply
        return "wrong"

    return attempt


def pop3_login(port: int) -> object:
    def attempt(source_ip: str, address: str, password: str) -> str:
        sock = connect_from(source_ip, port)
        file = sock.makefile("rb")
        try:
            file.readline()
            sock.sendall(f"USER {address}\r\n".encode())
            file.readline()
            sock.sendall(f"PASS {password}\r\n".encode())
            reply = file.readline()
            sock.sendall(b"QUIT\r\n")
            file.readline()
        finally:
            sock.close()
        if reply.startswith(b"+OK"):
            return "ok"
        if reply == b"-ERR [AUTH] Too many failed logins, try again later\r\n":
            return "throttled"
        assert reply == b"-ERR [AUTH] Authentication failed\r\n", reply
        return "wrong"

    return attempt


async def test_imap_owner_logs_in_during_an_attack_from_elsewhere(
    database_url: str, tmp_path: Path, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "owner-pw")
    throttle = fast_throttle()
    async with running_imap(database_url, tmp_path, throttle=throttle) as imap:
        outcomes = await in_thread(
            attack_while_the_owner_logs_in, imap_login(imap.port), alice.address, "owner-pw"
        )
    assert outcomes == EXPECTED
    owner_delay, stranger_delay = await strangers_are_slowed(throttle, alice.address)
    assert owner_delay == 0.0
    assert stranger_delay > 0.0


async def test_pop3_owner_logs_in_during_an_attack_from_elsewhere(
    database_url: str, tmp_path: Path, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "owner-pw")
    throttle = fast_throttle()
    async with running_pop3(database_url, tmp_path, throttle=throttle) as pop3:
        outcomes = await in_thread(
            attack_while_the_owner_logs_in, pop3_login(pop3.port), alice.address, "owner-pw"
        )
    assert outcomes == EXPECTED
    owner_delay, stranger_delay = await strangers_are_slowed(throttle, alice.address)
    assert owner_delay == 0.0
    assert stranger_delay > 0.0


async def test_guessing_spread_over_20_addresses_is_still_slowed(
    database_url: str, tmp_path: Path, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "owner-pw")
    throttle = fast_throttle()
    async with running_imap(database_url, tmp_path, throttle=throttle) as imap:
        attempt = imap_login(imap.port)

        def spread() -> list[str]:
            return [attempt(f"127.0.1.{n + 1}", alice.address, f"guess-{n}") for n in range(20)]

        outcomes = await in_thread(spread)
    # Each address failed once: none is blocked, every answer is a plain "wrong"...
    assert outcomes == ["wrong"] * 20
    # ...but the account is slowed for any address that never logged in to it.
    assert (await throttle.check("127.0.1.99", alice.address)).delay == throttle.max_delay
