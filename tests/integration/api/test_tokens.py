"""A user's own sessions and tokens: listed, revoked one by one, and all ended by a new
password; the session cookie is Secure outside loopback development."""

from __future__ import annotations

import asyncio
import socket
from contextlib import aclosing

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from postroom import store
from postroom.api.__main__ import proxy_options
from postroom.api.app import create_app
from postroom.config import Settings
from tests.integration.api.conftest import MakeUser, client_for

ORIGIN = {"Origin": "http://mail.test"}


async def test_a_user_lists_their_own_tokens_and_nobody_elses(
    app: FastAPI, make_user: MakeUser
) -> None:
    alice, bob = await make_user(), await make_user()
    client = client_for(app, ip="192.0.2.44")
    async with aclosing(client):
        second = await client.post(
            "/api/v1/tokens", json={"address": alice.account.address, "password": alice.password}
        )
    assert second.status_code == 201
    listed = (await alice.client.get("/api/v1/tokens")).json()
    assert [(s["kind"], s["client_address"], s["current"]) for s in listed] == [
        ("bearer", "192.0.2.44", False),
        ("bearer", "127.0.0.1", True),
    ]
    assert len((await bob.client.get("/api/v1/tokens")).json()) == 1


async def test_a_user_revokes_one_of_their_tokens(app: FastAPI, make_user: MakeUser) -> None:
    alice = await make_user()
    client = client_for(app)
    async with aclosing(client):
        reply = await client.post(
            "/api/v1/tokens", json={"address": alice.account.address, "password": alice.password}
        )
        client.headers["Authorization"] = f"Bearer {reply.json()['token']}"
        other = next(
            s for s in (await alice.client.get("/api/v1/tokens")).json() if not s["current"]
        )
        assert (await alice.client.delete(f"/api/v1/tokens/{other['id']}")).status_code == 204
        assert (await client.get("/api/v1/session")).status_code == 401
    assert (await alice.client.get("/api/v1/session")).status_code == 200


async def test_nobody_revokes_someone_elses_token(app: FastAPI, make_user: MakeUser) -> None:
    alice, bob = await make_user(), await make_user()
    [bobs] = (await bob.client.get("/api/v1/tokens")).json()
    assert (await alice.client.delete(f"/api/v1/tokens/{bobs['id']}")).status_code == 404
    assert (await bob.client.get("/api/v1/session")).status_code == 200


async def test_a_new_password_ends_every_web_session_and_token(
    app: FastAPI, make_user: MakeUser
) -> None:
    alice = await make_user()
    await store.set_password(alice.conn, alice.account.address, "a-new-password")
    assert (await alice.client.get("/api/v1/session")).status_code == 401


async def test_the_session_cookie_is_secure_except_for_a_loopback_browser(
    app: FastAPI, make_user: MakeUser
) -> None:
    user = await make_user()
    cookies = {}
    for ip in ("127.0.0.1", "192.0.2.80"):
        client = client_for(app, ip=ip)
        async with aclosing(client):
            reply = await client.post(
                "/api/v1/session",
                json={"address": user.account.address, "password": user.password},
                headers=ORIGIN,
            )
        assert reply.status_code == 200
        cookies[ip] = reply.headers["set-cookie"].lower()
    assert "secure" not in cookies["127.0.0.1"]
    assert "; secure" in cookies["192.0.2.80"]


async def test_changing_ones_own_password_ends_every_session(
    app: FastAPI, make_user: MakeUser
) -> None:
    alice = await make_user()
    wrong = await alice.client.post(
        "/api/v1/account/password",
        json={"current_password": "not-it-at-all", "new_password": "a-new-password"},
    )
    assert wrong.status_code == 403
    changed = await alice.client.post(
        "/api/v1/account/password",
        json={"current_password": alice.password, "new_password": "a-new-password"},
    )
    assert changed.status_code == 204
    assert (await alice.client.get("/api/v1/session")).status_code == 401


@pytest.mark.parametrize(
    ("trusted", "seen"),
    [("", "127.0.0.1"), ("127.0.0.1/32", "198.51.100.23")],
    ids=["untrusted-peer", "trusted-proxy"],
)
async def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(
    database_url: str, redis_url: str, make_user: MakeUser, trusted: str, seen: str
) -> None:
    user = await make_user()
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        hostname="mail.test",
        trusted_proxies=trusted,  # type: ignore[arg-type]
    )
    config = uvicorn.Config(
        create_app(settings, pool_size=2),
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=1,
        **proxy_options(settings),
    )
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            for _ in range(100):
                if server.started:
                    break
                await asyncio.sleep(0.05)
            reply = await client.post(
                "/api/v1/tokens",
                json={"address": user.account.address, "password": user.password},
                headers={"X-Forwarded-For": "198.51.100.23"},
            )
            assert reply.status_code == 201
            token = reply.json()["token"]
            listed = await client.get(
                "/api/v1/tokens", headers={"Authorization": f"Bearer {token}"}
            )
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()
    [mine] = [s for s in listed.json() if s["current"]]
    assert mine["client_address"] == seen
