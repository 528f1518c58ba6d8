"""Junk that learns: an IMAP MOVE into Junk queues a lesson for the spam filter (the command
does not wait for it), out of Junk another; the worker's task teaches a real rspamd."""

from __future__ import annotations

import asyncio
import base64
import imaplib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from postroom import store
from postroom.db import Conn
from postroom.delivery import learn
from postroom.queue import DELIVERY_QUEUE, TASK_LEARN
from tests.conftest import empty_redis
from tests.integration.access.imap_support import ImapEndpoint, running_imap
from tests.integration.delivery.harness import settings_for
from tests.rspamd_server import Rspamd as RspamdServer
from tests.support import Tenant

pytestmark = pytest.mark.peer

PASSWORD = "pw-learn-1"


def message() -> bytes:
    # rspamd remembers learnt messages by their content: each one different.
    body = " ".join(["Limited offer on replica watches and cheap pills, act now!"] * 4)
    body += f" Reference {uuid.uuid4()}."
    return (
        "From: <promo@shop.example>\r\nTo: <bob@example.test>\r\nSubject: Offer\r\n"
        f"Message-ID: <{uuid.uuid4()}@shop.example>\r\n"
        f"Date: Wed, 02 Dec 2026 08:00:00 +0000\r\n\r\n{body}\r\n"
    ).encode()


@pytest.fixture
def broker(_servers: dict[str, str]) -> Iterator[str]:
    with empty_redis(_servers["redis"], 1) as url:
        yield url


@pytest.fixture
async def imap(database_url: str, tmp_path: Path, broker: str) -> AsyncIterator[ImapEndpoint]:
    async with running_imap(
        database_url,
        tmp_path,
        POSTROOM_REDIS_URL=broker,
        POSTROOM_RSPAMD_CONTROLLER_URL="http://127.0.0.1:9",  # only needs to be set here
    ) as endpoint:
        yield endpoint


def lessons(broker: str) -> list[list[Any]]:
    """The learn tasks waiting in the queue, as their arguments."""
    client = redis.Redis.from_url(broker.replace("redis+socket://", "unix://"))
    found = []
    for raw in client.lrange(DELIVERY_QUEUE, 0, -1):
        envelope = json.loads(raw)
        if envelope["headers"]["task"] == TASK_LEARN:
            found.append(json.loads(base64.b64decode(envelope["body"]))[0])
    client.close()
    return found


def move(endpoint: ImapEndpoint, user: str, source: str, target: str) -> tuple[str, list[Any]]:
    client = imaplib.IMAP4(endpoint.host, endpoint.port, timeout=30)
    try:
        client.login(user, PASSWORD)
        client.select(source)
        typ, data = client.uid("MOVE", "1:*", target)
        client.logout()
        return typ, data
    except BaseException:
        client.shutdown()
        raise


async def wait_for(broker: str, count: int) -> list[list[Any]]:
    for _ in range(100):
        found = lessons(broker)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    return lessons(broker)


async def test_move_into_junk_and_back_queues_spam_then_ham(
    imap: ImapEndpoint, tenant: Tenant, conn: Conn, broker: str
) -> None:
    bob = await tenant.account("bob", PASSWORD)
    inbox = await store.get_mailbox(conn, bob.id, "INBOX")
    junk = await store.get_special_use(conn, bob.id, "\\Junk")
    assert inbox is not None
    assert junk is not None
    await store.append_message(conn, inbox.id, message())
    typ, _ = await asyncio.to_thread(move, imap, bob.address, "INBOX", junk.name)
    assert typ == "OK"
    assert await wait_for(broker, 1) == [[junk.id, [1], True]]
    typ, _ = await asyncio.to_thread(move, imap, bob.address, junk.name, "INBOX")
    assert typ == "OK"
    assert (await wait_for(broker, 2))[0] == [inbox.id, [2], False]


async def test_move_to_trash_teaches_nothing(
    imap: ImapEndpoint, tenant: Tenant, conn: Conn, broker: str
) -> None:
    bob = await tenant.account("bob", PASSWORD)
    junk = await store.get_special_use(conn, bob.id, "\\Junk")
    trash = await store.get_special_use(conn, bob.id, "\\Trash")
    assert junk is not None
    assert trash is not None
    await store.append_message(conn, junk.id, message())
    typ, _ = await asyncio.to_thread(move, imap, bob.address, junk.name, trash.name)
    assert typ == "OK"
    await asyncio.sleep(0.3)
    assert lessons(broker) == []


async def test_learn_task_teaches_rspamd(
    tenant: Tenant, conn: Conn, rspamd: RspamdServer, make_harness: Any
) -> None:
    bob = await tenant.account("bob", PASSWORD)
    junk = await store.get_special_use(conn, bob.id, "\\Junk")
    assert junk is not None
    await store.append_message(conn, junk.id, message())
    await store.append_message(conn, junk.id, message())
    h = await make_harness(
        settings_for(
            POSTROOM_RSPAMD_URL=rspamd.url, POSTROOM_RSPAMD_CONTROLLER_URL=rspamd.controller_url
        )
    )
    before = rspamd.learned()
    assert await learn.learn(h.courier, junk.id, [1, 2, 99], spam=True) == 2
    assert rspamd.learned()["spam"] == before["spam"] + 2
    # rspamd remembers what it learnt: the same messages again teach nothing new.
    assert await learn.learn(h.courier, junk.id, [1, 2], spam=True) == 0
