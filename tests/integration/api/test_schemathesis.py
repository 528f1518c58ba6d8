"""Property-based requests from the OpenAPI schema (Schemathesis): no input gives a 500."""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from postroom import store
from postroom.api.app import create_app
from postroom.config import Settings
from postroom.db import connect
from postroom.throttle import AuthThrottle

# Each operation gets this many generated requests: enough to probe every parameter's edges,
# few enough that the suite stays quick.
EXAMPLES = 6


def _create_admin(database_url: str) -> tuple[str, str]:
    async def go() -> tuple[str, str]:
        conn = await connect(database_url, autocommit=True)
        try:
            domain = f"s{secrets.token_hex(4)}.test"
            await store.create_domain(conn, domain)
            password = secrets.token_hex(8)
            account = await store.create_account(conn, f"admin@{domain}", password, is_admin=True)
            return account.address, password
        finally:
            await conn.close()

    # Not on this thread: the test session's event loop belongs to it.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result(timeout=60)


@pytest.fixture(scope="module")
def server(database_url: str, redis_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    application = create_app(
        Settings(database_url=database_url, redis_url=redis_url, hostname="mail.test"),
        pool_size=4,
    )
    # Generated logins fail by the hundred: no growing delays here (throttling has its tests).
    application.state.throttle = AuthThrottle(base_delay=0.0, block_after=10**9)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(application, log_config=None, lifespan="on")
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    address, password = _create_admin(database_url)
    reply = httpx.post(
        f"{url}/api/v1/tokens", json={"address": address, "password": password}, timeout=30
    )
    assert reply.status_code == 201, reply.text
    yield url, {"Authorization": f"Bearer {reply.json()['token']}"}
    runner.should_exit = True
    thread.join(10)
    sock.close()


def test_no_request_gets_a_server_error(server: tuple[str, dict[str, str]]) -> None:
    url, headers = server
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) == ("DELETE", "/api/v1/session"):
            continue  # logging out would end the token every other request uses
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def probe(case: Any) -> None:
            response = case.call(base_url=url, headers=headers, timeout=30)
            case.validate_response(response, checks=(not_a_server_error,))

        try:
            probe()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {str(exc)[:2000]}")
    assert operations > 30
    assert failures == []
