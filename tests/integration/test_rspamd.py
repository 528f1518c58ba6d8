"""The rspamd client against a real rspamd: GTUBE is rejected, a clean message passes, the
classifier learns (asking again while the controller is busy), and a missing or slow rspamd is
an RspamdError."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from postroom import rspamd as rspamd_module
from postroom.rspamd import Rspamd, RspamdError
from tests.rspamd_server import Rspamd as RspamdServer

pytestmark = pytest.mark.peer

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def message(body: str) -> bytes:
    return (
        "From: Alice <alice@signed.test>\r\nTo: bob@example.test\r\nSubject: Lunch\r\n"
        f"Message-ID: <{uuid.uuid4()}@signed.test>\r\n"
        "Date: Wed, 02 Dec 2026 08:00:00 +0000\r\n\r\n" + body + "\r\n"
    ).encode()


CLEAN = "Hi Bob, lunch at noon tomorrow? Let me know what works for you and the team."


@pytest.fixture
async def client(rspamd: RspamdServer) -> AsyncIterator[Rspamd]:
    client = Rspamd(rspamd.url, controller_url=rspamd.controller_url, timeout=10)
    yield client
    await client.close()


async def test_gtube_is_rejected(client: Rspamd) -> None:
    result = await client.check(
        message(GTUBE),
        client_ip="127.0.0.1",
        helo="client.test",
        mail_from="alice@signed.test",
        recipients=["bob@example.test"],
    )
    assert (result.action, "GTUBE" in result.symbols) == ("reject", True)
    assert result.score >= result.required_score


async def test_clean_message_passes(client: Rspamd) -> None:
    result = await client.check(
        message(CLEAN),
        client_ip="127.0.0.1",
        helo="client.test",
        mail_from="alice@signed.test",
        recipients=["bob@example.test"],
    )
    assert result.action == "no action"
    assert result.score < 4


async def test_learning_spam_and_ham_is_counted(client: Rspamd, rspamd: RspamdServer) -> None:
    before = rspamd.learned()
    assert await client.learn(message(CLEAN + " Cheap pills."), spam=True)
    assert await client.learn(message(CLEAN + " See you."), spam=False)
    after = rspamd.learned()
    assert (after["spam"] - before["spam"], after["ham"] - before["ham"]) == (1, 1)


async def test_rspamd_that_is_down_is_an_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = Rspamd(f"http://127.0.0.1:{port}", controller_url=f"http://127.0.0.1:{port}")
    with pytest.raises(RspamdError, match="check failed: ClientConnectorError"):
        await client.check(
            message(CLEAN), client_ip="127.0.0.1", helo=None, mail_from="", recipients=["b@c.test"]
        )
    with pytest.raises(RspamdError, match="learnspam failed"):
        await client.learn(message(CLEAN), spam=True)
    await client.close()


async def test_rspamd_that_does_not_answer_is_an_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()  # accepts the connection, never answers
        client = Rspamd(f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=0.3)
        with pytest.raises(RspamdError, match="TimeoutError"):
            await client.check(
                message(CLEAN),
                client_ip="127.0.0.1",
                helo=None,
                mail_from="",
                recipients=["b@c.test"],
            )
        await client.close()


class BusyController:
    """An rspamd controller stand-in that answers 500 (as rspamd does while its Bayes
    database is locked) ``busy`` times, then learns."""

    def __init__(self, busy: int) -> None:
        self.busy = busy
        self.asked = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.asked += 1
        if self.asked <= self.busy:
            return web.json_response(
                {"error": "cannot commit checkpoint: database is locked"}, status=500
            )
        return web.json_response({"success": True})

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        app = web.Application()
        app.router.add_post("/learnspam", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()


async def test_learning_asks_again_while_the_controller_is_busy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rspamd_module, "LEARN_RETRY_PAUSES", (0.0, 0.0, 0.0))
    controller = BusyController(busy=2)
    async with controller.serving() as url:
        client = Rspamd(url, controller_url=url)
        assert await client.learn(message(CLEAN), spam=True)
        await client.close()
    assert controller.asked == 3


async def test_learning_gives_up_on_a_controller_that_stays_busy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rspamd_module, "LEARN_RETRY_PAUSES", (0.0, 0.0, 0.0))
    controller = BusyController(busy=10)
    async with controller.serving() as url:
        client = Rspamd(url, controller_url=url)
        with pytest.raises(RspamdError, match=r"learnspam answered 500: .*database is locked"):
            await client.learn(message(CLEAN), spam=True)
        await client.close()
    assert controller.asked == 4
