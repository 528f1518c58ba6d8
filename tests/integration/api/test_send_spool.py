"""A send (or a draft save) is built into a spool file and stored as a stream: its size is
known before it is written (413), it counts against the process's budget while it is (503),
and what arrives in the queue and the Sent folder is exactly what was uploaded."""

from __future__ import annotations

import email
import email.policy
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from postroom import store
from postroom.api.app import create_app
from postroom.config import Settings
from postroom.spool import InflightBudget
from postroom.store import queue
from postroom.store.types import QueueId
from tests.integration.api.conftest import User
from tests.integration.api.test_limits import logged_in
from tests.support import Tenant


def _parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _attachments(raw: bytes) -> dict[str | None, bytes]:
    return {
        p.get_filename(): p.get_payload(decode=True)  # type: ignore[misc]
        for p in _parse(raw).iter_attachments()
    }


class Recorder:
    """Every reservation asked of a budget, in order."""

    def __init__(self, budget: InflightBudget) -> None:
        self.asked: list[int] = []
        reserve = budget.reserve

        def recording(octets: int) -> bool:
            self.asked.append(octets)
            return reserve(octets)

        budget.reserve = recording  # type: ignore[method-assign]


@asynccontextmanager
async def _client(
    database_url: str, redis_url: str, tenant: Tenant, tmp_path: Path, **limits: Any
) -> AsyncIterator[tuple[Any, InflightBudget, str]]:
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        hostname="mail.test",
        data_dir=tmp_path,
        **limits,
    )
    app = create_app(settings, pool_size=2)
    async with app.router.lifespan_context(app):
        client = await logged_in(app, tenant)
        try:
            me = (await client.get("/api/v1/session")).json()["account"]["address"]
            yield client, app.state.inflight, me
        finally:
            await client.aclose()


async def test_a_large_attachment_arrives_exactly_in_the_queue_and_the_sent_copy(
    alice: User,
) -> None:
    big = secrets.token_bytes(2 * 1024 * 1024 + 7)  # many pieces, a short last line
    reply = await alice.client.post(
        "/api/v1/send",
        data={"from": alice.account.address, "to": "carol@remote.test", "bcc": "d@remote.test"},
        files=[
            ("attachments", ("big.bin", big, "application/octet-stream")),
            ("attachments", ("small.txt", b"a line\n", "text/plain")),
        ],
    )
    assert reply.status_code == 202, reply.text
    queued = await queue.read_queued_message(alice.conn, QueueId(reply.json()["queue_id"]))
    assert _attachments(queued) == {"big.bin": big, "small.txt": b"a line\n"}
    assert _parse(queued)["Bcc"] is None
    sent = await store.fetch_raw(
        alice.conn, reply.json()["sent_mailbox_id"], reply.json()["sent_uid"]
    )
    assert _parse(sent)["Bcc"] == "d@remote.test"
    assert _attachments(sent) == {"big.bin": big, "small.txt": b"a line\n"}


@pytest.mark.parametrize("path", ["/api/v1/send", "/api/v1/drafts"])
async def test_a_message_over_the_size_limit_is_413_before_any_of_it_is_written(
    database_url: str, redis_url: str, tenant: Tenant, tmp_path: Path, path: str
) -> None:
    """The form fits the send endpoint's body limit, the message built from it (base64) does
    not: refused from the uploads' sizes, so the only octets asked of the budget are the
    body's own."""
    async with _client(database_url, redis_url, tenant, tmp_path, max_message_size=64 * 1024) as (
        client,
        budget,
        me,
    ):
        recorder = Recorder(budget)
        reply = await client.post(
            path,
            data={"from": me, "to": "far@remote.test"},
            files={"attachments": ("a.bin", b"x" * 60 * 1024, "application/octet-stream")},
        )
        assert reply.status_code == 413
        assert reply.json()["detail"].endswith("the limit is 65536")
        assert recorder.asked == [int(reply.request.headers["content-length"])]
        assert budget.in_use == 0


@pytest.mark.parametrize(("path", "status"), [("/api/v1/send", 202), ("/api/v1/drafts", 201)])
async def test_a_message_past_the_budget_is_503_and_gives_its_octets_back(
    database_url: str, redis_url: str, tenant: Tenant, tmp_path: Path, path: str, status: int
) -> None:
    """Other messages being received hold most of the budget: the body of this send fits
    what is left, the message built from it does not."""
    async with _client(
        database_url, redis_url, tenant, tmp_path, max_inflight_bytes=1024 * 1024
    ) as (client, budget, me):
        others = 700 * 1024
        assert budget.reserve(others)
        form: dict[str, Any] = {
            "data": {"from": me, "to": "far@remote.test"},
            "files": {"attachments": ("a.bin", b"x" * 150 * 1024, "application/octet-stream")},
        }
        refused = await client.post(path, **form)
        assert refused.status_code == 503
        assert refused.json()["detail"] == (
            "too many messages are being received; try again shortly"
        )
        assert budget.in_use == others
        budget.release(others)
        sent = await client.post(path, **form)
        assert sent.status_code == status, sent.text
        assert budget.in_use == 0
