"""No stranger can lock an owner out of the web login: the attacker is slowed, then blocked;
the owner, from an address they logged in from before, gets in at once."""

from __future__ import annotations

import asyncio
import socket

import httpx
import uvicorn

from postroom.api.app import create_app
from postroom.config import Settings
from tests.integration.login_support import (
    ATTACKER_IP,
    EXPECTED,
    OWNER_IP,
    fast_throttle,
    strangers_are_slowed,
)
from tests.support import Tenant


async def test_web_owner_logs_in_during_an_attack_from_elsewhere(
    database_url: str, redis_url: str, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "owner-pw")
    throttle = fast_throttle()
    settings = Settings(database_url=database_url, redis_url=redis_url, hostname="mail.test")
    config = uvicorn.Config(
        create_app(settings, pool_size=4, throttle=throttle),
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    task = asyncio.create_task(server.serve(sockets=[sock]))

    async def attempt(source_ip: str, password: str) -> str:
        transport = httpx.AsyncHTTPTransport(local_address=source_ip)
        async with httpx.AsyncClient(transport=transport, base_url=url, timeout=30) as client:
            reply = await client.post(
                "/api/v1/tokens", json={"address": alice.address, "password": password}
            )
        return {201: "ok", 429: "throttled", 401: "wrong"}[reply.status_code]

    try:
        before = await attempt(OWNER_IP, "owner-pw")
        outcomes = [await attempt(ATTACKER_IP, f"guess-{n}") for n in range(30)]
        during = await attempt(OWNER_IP, "owner-pw")
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()
    assert set(outcomes) <= {"wrong", "throttled"}
    assert [before, *outcomes[-2:], during] == EXPECTED
    owner_delay, stranger_delay = await strangers_are_slowed(throttle, alice.address)
    assert owner_delay == 0.0
    assert stranger_delay > 0.0
