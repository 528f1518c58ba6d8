"""Logging in and out: cookie sessions with CSRF protection, bearer tokens, throttling."""

from __future__ import annotations

from contextlib import aclosing

import httpx
from fastapi import FastAPI

from postroom.throttle import AuthThrottle
from tests.integration.api.conftest import MakeUser, client_for

ORIGIN = {"Origin": "http://mail.test"}


async def _cookie_login(app: FastAPI, address: str, password: str) -> tuple[httpx.AsyncClient, str]:
    client = client_for(app)
    reply = await client.post(
        "/api/v1/session", json={"address": address, "password": password}, headers=ORIGIN
    )
    assert reply.status_code == 200, reply.text
    return client, reply.json()["csrf_token"]


async def test_browser_login_sets_http_only_strict_cookie(
    app: FastAPI, make_user: MakeUser
) -> None:
    user = await make_user()
    client = client_for(app)
    async with aclosing(client):
        reply = await client.post(
            "/api/v1/session",
            json={"address": user.account.address, "password": user.password},
            headers=ORIGIN,
        )
    assert reply.status_code == 200
    cookie = reply.headers["set-cookie"].lower()
    assert cookie.startswith("postroom_session=")
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert reply.json()["account"]["address"] == user.account.address
    assert reply.json()["addresses"] == [user.account.address]


async def test_wrong_password_is_a_401_problem(app: FastAPI, make_user: MakeUser) -> None:
    user = await make_user()
    async with client_for(app, ip="192.0.2.10") as client:
        reply = await client.post(
            "/api/v1/tokens", json={"address": user.account.address, "password": "nope"}
        )
    assert reply.status_code == 401
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json() == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "wrong address or password",
    }


async def test_repeated_failures_lock_the_login_out_with_429(
    app: FastAPI, make_user: MakeUser
) -> None:
    user = await make_user()
    saved = app.state.login.throttle
    app.state.login.throttle = AuthThrottle(free_failures=1, base_delay=0.0, block_after=2)
    try:
        async with client_for(app, ip="192.0.2.11") as client:
            body = {"address": user.account.address, "password": "wrong"}
            assert (await client.post("/api/v1/tokens", json=body)).status_code == 401
            assert (await client.post("/api/v1/tokens", json=body)).status_code == 401
            body["password"] = user.password
            reply = await client.post("/api/v1/tokens", json=body)
        assert reply.status_code == 429
        assert reply.json()["detail"] == "too many failed logins; try again later"
    finally:
        app.state.login.throttle = saved


async def test_cookie_request_without_csrf_token_is_refused(
    app: FastAPI, make_user: MakeUser
) -> None:
    user = await make_user()
    client, _ = await _cookie_login(app, user.account.address, user.password)
    async with aclosing(client):
        reply = await client.post("/api/v1/mailboxes", json={"name": "Projects"}, headers=ORIGIN)
    assert reply.status_code == 403
    assert reply.json()["detail"] == "missing or wrong X-CSRF-Token header"


async def test_cookie_request_with_csrf_token_is_accepted(
    app: FastAPI, make_user: MakeUser
) -> None:
    user = await make_user()
    client, csrf = await _cookie_login(app, user.account.address, user.password)
    async with aclosing(client):
        reply = await client.post(
            "/api/v1/mailboxes",
            json={"name": "Projects"},
            headers={**ORIGIN, "X-CSRF-Token": csrf},
        )
    assert reply.status_code == 201, reply.text


async def test_cookie_request_from_another_origin_is_refused(
    app: FastAPI, make_user: MakeUser
) -> None:
    user = await make_user()
    client, csrf = await _cookie_login(app, user.account.address, user.password)
    async with aclosing(client):
        reply = await client.post(
            "/api/v1/mailboxes",
            json={"name": "Projects"},
            headers={"Origin": "http://evil.test", "X-CSRF-Token": csrf},
        )
    assert reply.status_code == 403
    assert reply.json()["detail"] == "cross-origin request refused"


async def test_bearer_token_needs_no_csrf_token(make_user: MakeUser) -> None:
    user = await make_user()
    reply = await user.client.post("/api/v1/mailboxes", json={"name": "Scripts"})
    assert reply.status_code == 201


async def test_logout_ends_the_session(make_user: MakeUser) -> None:
    user = await make_user()
    assert (await user.client.delete("/api/v1/session")).status_code == 204
    reply = await user.client.get("/api/v1/mailboxes")
    assert reply.status_code == 401
    assert reply.json()["detail"] == "the session has expired or was ended; log in again"


async def test_cookie_logout_clears_the_cookie(app: FastAPI, make_user: MakeUser) -> None:
    user = await make_user()
    client, csrf = await _cookie_login(app, user.account.address, user.password)
    async with aclosing(client):
        reply = await client.delete("/api/v1/session", headers={**ORIGIN, "X-CSRF-Token": csrf})
        assert reply.status_code == 204
        assert 'postroom_session=""' in reply.headers["set-cookie"]
        assert (await client.get("/api/v1/session")).status_code == 401


async def test_no_credentials_is_401_with_a_challenge(app: FastAPI) -> None:
    async with client_for(app) as client:
        reply = await client.get("/api/v1/mailboxes")
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"] == 'Bearer realm="postroom"'
    assert reply.json()["detail"] == "log in first"


async def test_malformed_authorization_header_is_401(app: FastAPI) -> None:
    async with client_for(app) as client:
        reply = await client.get("/api/v1/mailboxes", headers={"Authorization": "Basic eDp5"})
    assert reply.status_code == 401
    assert reply.json()["detail"] == "the Authorization header must be 'Bearer <token>'"


async def test_disabled_account_loses_its_sessions(make_user: MakeUser) -> None:
    from postroom import store

    user = await make_user()
    await store.update_account(user.conn, user.account.address, disabled=True)
    assert (await user.client.get("/api/v1/session")).status_code == 401
