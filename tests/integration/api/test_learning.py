"""Junk that learns through the API as through IMAP: a move or copy into Junk queues a
learn-spam lesson, one out of Junk learn-ham, one to Trash none; the request does not wait."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from fastapi import FastAPI

from postroom import store
from postroom.api.app import create_app
from postroom.config import Settings
from postroom.db import Conn
from postroom.store.types import Mailbox
from tests.conftest import empty_redis
from tests.integration.api.conftest import User, client_for, mail
from tests.integration.delivery.test_learning import lessons, wait_for
from tests.support import Tenant


@pytest.fixture
def broker(_servers: dict[str, str]) -> Iterator[str]:
    with empty_redis(_servers["redis"], 1) as url:
        yield url


@pytest_asyncio.fixture
async def learning_app(database_url: str, broker: str) -> AsyncIterator[FastAPI]:
    settings = Settings(
        database_url=database_url,
        redis_url=broker,
        hostname="mail.test",
        rspamd_controller_url="http://127.0.0.1:9",  # only needs to be set here
    )
    application = create_app(settings, pool_size=2)
    async with application.router.lifespan_context(application):
        yield application


@pytest_asyncio.fixture
async def carol(learning_app: FastAPI, tenant: Tenant, conn: Conn) -> AsyncIterator[User]:
    password = "pw-" + uuid.uuid4().hex[:8]
    account = await tenant.account("carol", password)
    client = client_for(learning_app)
    reply = await client.post(
        "/api/v1/tokens", json={"address": account.address, "password": password}
    )
    assert reply.status_code == 201, reply.text
    client.headers["Authorization"] = f"Bearer {reply.json()['token']}"
    try:
        yield User(account, password, client, conn)
    finally:
        await client.aclose()


async def _special(user: User, use: str) -> Mailbox:
    found = await store.get_special_use(user.conn, user.account.id, use)
    assert found is not None
    return found


async def _transfer(user: User, how: str, source: Mailbox, target: Mailbox, uid: int) -> int:
    reply = await user.client.post(
        f"/api/v1/mailboxes/{source.id}/messages/{how}",
        json={"uids": [uid], "target_mailbox_id": target.id},
    )
    assert reply.status_code == 200, reply.text
    pairs = reply.json()["moved" if how == "move" else "copied"]
    new_uid: int = pairs[0][1]
    return new_uid


@pytest.mark.parametrize("how", ["move", "copy"])
async def test_into_junk_queues_learn_spam_and_out_of_it_learn_ham(
    carol: User, broker: str, how: str
) -> None:
    inbox = await carol.mailbox()
    junk = await _special(carol, "\\Junk")
    uid = await carol.deliver(mail(f"Offer {uuid.uuid4()}"))
    in_junk = await _transfer(carol, how, inbox, junk, uid)
    assert await wait_for(broker, 1) == [[junk.id, [in_junk], True]]
    back = await _transfer(carol, how, junk, inbox, in_junk)
    # The newest lesson is pushed to the head of the list.
    assert (await wait_for(broker, 2))[0] == [inbox.id, [back], False]


@pytest.mark.parametrize("how", ["move", "copy"])
async def test_out_of_junk_to_trash_teaches_nothing(carol: User, broker: str, how: str) -> None:
    inbox = await carol.mailbox()
    junk = await _special(carol, "\\Junk")
    trash = await _special(carol, "\\Trash")
    uid = await carol.deliver(mail("Offer"), junk.name)
    await _transfer(carol, how, junk, trash, uid)
    # A lesson queued after it: once that one is there, any of the first would be too.
    marker = await _transfer(carol, how, inbox, junk, await carol.deliver(mail("Marker")))
    assert await wait_for(broker, 1) == [[junk.id, [marker], True]]
    assert len(lessons(broker)) == 1
