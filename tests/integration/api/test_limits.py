"""The API within the store's limits: costly searches refused, slow statements cancelled,
quotas enforced (507) and shown."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest_asyncio
from fastapi import FastAPI

from postroom import store
from postroom.api.app import create_app
from postroom.config import Settings
from postroom.db import connect
from tests.integration.api.conftest import MakeUser, User, client_for, mail
from tests.support import Tenant


@pytest_asyncio.fixture
async def impatient_app(database_url: str, redis_url: str) -> AsyncIterator[FastAPI]:
    """The app with a short statement timeout, as a deployment might set it."""
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        hostname="mail.test",
        statement_timeout=timedelta(milliseconds=300),
    )
    application = create_app(settings, pool_size=2)
    async with application.router.lifespan_context(application):
        yield application


async def logged_in(app: FastAPI, tenant: Tenant) -> httpx.AsyncClient:
    password = "pw-" + secrets.token_hex(4)
    account = await tenant.account(f"u{secrets.token_hex(3)}", password)
    client = client_for(app)
    reply = await client.post(
        "/api/v1/tokens", json={"address": account.address, "password": password}
    )
    assert reply.status_code == 201, reply.text
    client.headers["Authorization"] = f"Bearer {reply.json()['token']}"
    return client


async def test_the_pool_sets_the_statement_timeout(impatient_app: FastAPI) -> None:
    async with impatient_app.state.pool.connection() as conn:
        cur = await conn.execute("SHOW statement_timeout")
        assert (await cur.fetchone())["statement_timeout"] == "300ms"


async def test_a_search_past_the_statement_timeout_is_a_503_problem(
    impatient_app: FastAPI, tenant: Tenant, database_url: str
) -> None:
    client = await logged_in(impatient_app, tenant)
    try:
        boxes = (await client.get("/api/v1/mailboxes")).json()
        inbox = next(b for b in boxes if b["name"] == "INBOX")
        # Another session holds the table the search reads: the lock wait runs into the
        # statement timeout without the test needing a slow query.
        holder = await connect(database_url)
        try:
            await holder.execute("LOCK TABLE blobs IN ACCESS EXCLUSIVE MODE")
            reply = await client.get(
                f"/api/v1/mailboxes/{inbox['id']}/messages", params={"q": "pineapple"}
            )
        finally:
            await holder.rollback()
            await holder.close()
        assert reply.status_code == 503
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.json()["detail"] == "the search took too long; narrow it down"
        again = await client.get(
            f"/api/v1/mailboxes/{inbox['id']}/messages", params={"q": "pineapple"}
        )
        assert (again.status_code, again.json()["total"]) == (200, 0)
    finally:
        await client.aclose()


async def test_a_search_term_too_short_for_the_index_is_a_422_problem(alice: User) -> None:
    inbox = await alice.mailbox()
    reply = await alice.client.get(f"/api/v1/mailboxes/{inbox.id}/messages", params={"q": "ab"})
    assert reply.status_code == 422
    assert reply.json()["detail"] == "body and text search terms need at least 3 characters"


async def test_a_copy_past_the_quota_is_a_507_problem(alice: User) -> None:
    uid = await alice.deliver(mail("copying", "x" * 2000))
    await store.update_account(alice.conn, alice.account.address, quota_bytes=3000)
    inbox, archive = await alice.mailbox(), await alice.mailbox("Archive")
    reply = await alice.client.post(
        f"/api/v1/mailboxes/{inbox.id}/messages/copy",
        json={"uids": [uid], "target_mailbox_id": archive.id},
    )
    assert reply.status_code == 507
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["detail"] == "the mailbox is full (over its quota)"
    assert await store.list_uids(alice.conn, archive.id) == []


async def test_moving_to_trash_works_over_the_quota(alice: User) -> None:
    uid = await alice.deliver(mail("doomed", "x" * 2000))
    await store.update_account(alice.conn, alice.account.address, quota_bytes=100)
    inbox = await alice.mailbox()
    reply = await alice.client.post(
        f"/api/v1/mailboxes/{inbox.id}/messages/delete", json={"uids": [uid]}
    )
    assert reply.status_code == 200, reply.text


async def test_sending_when_the_sent_copy_cannot_fit_is_a_507_and_sends_nothing(
    alice: User, bob: User
) -> None:
    await store.update_account(alice.conn, alice.account.address, quota_bytes=100)
    reply = await alice.client.post(
        "/api/v1/send",
        data={"from": alice.account.address, "to": bob.account.address, "text": "hello"},
    )
    assert reply.status_code == 507
    assert reply.json()["detail"] == "the Sent copy would take the account past its quota"
    cur = await alice.conn.execute(
        "SELECT count(*) AS n FROM queue_messages WHERE auth_account_id = %s", (alice.account.id,)
    )
    assert (await cur.fetchone())["n"] == 0


async def test_the_admin_api_shows_usage_and_sets_a_message_limit(
    make_user: MakeUser, alice: User
) -> None:
    await alice.deliver(mail("one", "x" * 500))
    admin = await make_user(is_admin=True)
    url = f"/api/v1/admin/accounts/{alice.account.address}"
    shown = (await admin.client.patch(url, json={"quota_messages": 10})).json()
    assert (shown["used_messages"], shown["quota_messages"]) == (1, 10)
    assert shown["used_bytes"] == len(mail("one", "x" * 500))
    cleared = (await admin.client.patch(url, json={"clear_quota_messages": True})).json()
    assert cleared["quota_messages"] is None
    listed = (await admin.client.get("/api/v1/admin/accounts")).json()
    assert [a["used_messages"] for a in listed if a["address"] == alice.account.address] == [1]


@pytest_asyncio.fixture
async def small_budget_app(database_url: str, redis_url: str) -> AsyncIterator[FastAPI]:
    """The app with the smallest budget of messages being received."""
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        hostname="mail.test",
        max_inflight_bytes=1024 * 1024,
    )
    application = create_app(settings, pool_size=2)
    async with application.router.lifespan_context(application):
        yield application


async def test_a_send_past_the_inflight_budget_is_a_503_and_the_budget_comes_back(
    small_budget_app: FastAPI, tenant: Tenant
) -> None:
    client = await logged_in(small_budget_app, tenant)
    try:
        me = (await client.get("/api/v1/session")).json()["account"]["address"]
        form = {"from": me, "to": "far@remote.test", "text": "hello"}
        big = {"attachments": ("big.bin", b"x" * (1536 * 1024), "application/octet-stream")}
        refused = await client.post("/api/v1/send", data=form, files=big)
        assert refused.status_code == 503
        assert refused.json()["detail"] == (
            "too many messages are being received; try again shortly"
        )
        for _ in range(2):  # what a send reserved is given back after it
            sent = await client.post("/api/v1/send", data=form)
            assert sent.status_code == 202, sent.text
    finally:
        await client.aclose()
