"""Request bodies are measured before they are read: strangers cannot make the API hold or
spool more than a login's worth, and the send endpoint no more than a message's worth."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import FastAPI

from postroom.api.security import MAX_BODY, send_body_limit
from tests.integration.api.conftest import User, client_for


async def test_an_oversized_login_body_is_413_before_it_is_read(app: FastAPI) -> None:
    async with client_for(app) as client:
        reply = await client.post(
            "/api/v1/tokens",
            content=b'{"address": "' + b"a" * MAX_BODY + b'", "password": "x"}',
            headers={"Content-Type": "application/json"},
        )
    assert reply.status_code == 413
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["detail"] == f"the request body may be at most {MAX_BODY} octets"


async def test_a_body_of_unknown_length_is_411(app: FastAPI) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"address": "a@b.test",'
        yield b' "password": "x"}'

    async with client_for(app) as client:
        reply = await client.post(
            "/api/v1/tokens", content=chunks(), headers={"Content-Type": "application/json"}
        )
    assert reply.status_code == 411
    assert reply.json()["title"] == "Length Required"


async def test_a_message_sized_upload_may_be_sent(alice: User) -> None:
    """A 2 MiB attachment is over the general limit but within the send endpoint's."""
    data = b"\x00" * (2 * 1024 * 1024)
    reply = await alice.client.post(
        "/api/v1/send",
        data={"from": alice.account.address, "to": "carol@remote.test", "subject": "Big"},
        files=[("attachments", ("big.bin", data, "application/octet-stream"))],
    )
    assert reply.status_code == 202, reply.text


async def test_an_upload_over_the_message_size_is_413_before_it_is_read(app: FastAPI) -> None:
    limit = send_body_limit(app.state.settings.max_message_size)

    async with client_for(app) as client:
        reply = await client.post(
            "/api/v1/send",
            content=b"x" * 16,
            headers={
                "Content-Type": "multipart/form-data; boundary=b",
                "Content-Length": str(limit + 1),
            },
        )
    assert reply.status_code == 413


async def test_a_draft_may_carry_an_attachment_as_large_as_a_send(alice: User) -> None:
    """A draft is saved with its attachments, so it has the send endpoint's limit."""
    data = b"\x00" * (2 * 1024 * 1024)
    reply = await alice.client.post(
        "/api/v1/drafts",
        data={"from": alice.account.address, "subject": "Big"},
        files=[("attachments", ("big.bin", data, "application/octet-stream"))],
    )
    assert reply.status_code == 201, reply.text
    assert [a["size"] for a in reply.json()["attachments"]] == [len(data)]
