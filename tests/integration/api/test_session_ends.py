"""An open event stream ends as soon as its session does: logged out, ended from another
session, or every session of the account ended by a new password."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from postroom import store
from tests.integration.api.conftest import User, mail


class Stream:
    def __init__(self, lines: AsyncIterator[str]) -> None:
        self.lines = lines

    async def next_event(self) -> str | None:
        """The next event's name; None when the server ended the stream."""
        event = ""
        async for line in self.lines:
            if line.startswith("event: "):
                event = line[7:]
            elif line == "" and event:
                return event
        return None

    async def ended(self) -> bool:
        """True when the server sends ``ended`` and then closes the stream."""
        first = await asyncio.wait_for(self.next_event(), 10)
        after = await asyncio.wait_for(self.next_event(), 10)
        return (first, after) == ("ended", None)


@asynccontextmanager
async def event_stream(live_url: str, headers: Any) -> AsyncIterator[Stream]:
    client = httpx.AsyncClient(base_url=live_url, headers=headers, timeout=10)
    async with client, client.stream("GET", "/api/v1/events") as reply:
        assert reply.status_code == 200
        stream = Stream(reply.aiter_lines())
        assert await asyncio.wait_for(stream.next_event(), 10) == "ready"
        yield stream


async def second_token(user: User) -> tuple[dict[str, str], int]:
    """Another bearer token of the user: its headers and its session id."""
    reply = await user.client.post(
        "/api/v1/tokens", json={"address": user.account.address, "password": user.password}
    )
    headers = {"Authorization": f"Bearer {reply.json()['token']}"}
    listed = (await user.client.get("/api/v1/tokens")).json()
    newest = max((s for s in listed if not s["current"]), key=lambda s: s["id"])
    return headers, newest["id"]


async def test_a_stream_ends_when_its_session_is_ended_from_another(
    alice: User, live_url: str
) -> None:
    headers, session_id = await second_token(alice)
    async with event_stream(live_url, headers) as stream:
        assert (await alice.client.delete(f"/api/v1/tokens/{session_id}")).status_code == 204
        assert await stream.ended()


async def test_a_stream_ends_when_its_session_logs_out(alice: User, live_url: str) -> None:
    headers, _ = await second_token(alice)
    async with event_stream(live_url, headers) as stream:
        async with httpx.AsyncClient(base_url=live_url, headers=headers) as other:
            assert (await other.delete("/api/v1/session")).status_code == 204
        assert await stream.ended()


async def test_a_new_password_ends_every_open_stream(alice: User, live_url: str) -> None:
    async with event_stream(live_url, alice.client.headers) as stream:
        await store.set_password(alice.conn, alice.account.address, "another-password")
        assert await stream.ended()


async def test_ending_another_session_leaves_this_stream_open(alice: User, live_url: str) -> None:
    _, other_id = await second_token(alice)
    async with event_stream(live_url, alice.client.headers) as stream:
        assert (await alice.client.delete(f"/api/v1/tokens/{other_id}")).status_code == 204
        await alice.deliver(mail("still here"))
        assert await asyncio.wait_for(stream.next_event(), 10) == "change"


async def test_a_disabled_account_loses_its_open_streams(alice: User, live_url: str) -> None:
    async with event_stream(live_url, alice.client.headers) as stream:
        await store.update_account(alice.conn, alice.account.address, disabled=True)
        assert await stream.ended()


async def test_a_deleted_account_loses_its_open_streams(alice: User, live_url: str) -> None:
    async with event_stream(live_url, alice.client.headers) as stream:
        await store.delete_account(alice.conn, alice.account.address)
        assert await stream.ended()
