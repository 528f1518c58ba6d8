"""Live updates: server-sent events fed by the store's LISTEN/NOTIFY change hub."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from postroom.api.deps import authenticate_request, pool_of
from postroom.api.problems import Problem
from postroom.api.session_ends import SessionEnds
from postroom.store.notify import ChangeHub, Subscription
from postroom.store.sessions import get_session

router = APIRouter(prefix="/api/v1", tags=["events"])

KEEPALIVE = 15.0
LISTEN_WAIT = 5.0
# A stream ends after this long; EventSource reconnects by itself (and re-authenticates).
MAX_STREAM = 3600.0
# Open streams of one account in one process (a browser tab each): each holds a connection.
MAX_STREAMS_PER_ACCOUNT = 20


@router.get("/events", response_class=StreamingResponse)
async def events(request: Request) -> StreamingResponse:
    """``text/event-stream``: a ``change`` event naming the folders (ids) whose messages or
    flags changed, ``all`` when anything may have; clients then re-read what they show. An
    ``ended`` event, and the end of the stream, as soon as the session is logged out, ended
    from another session or revoked (a new password, a disabled account)."""
    async with pool_of(request).connection() as conn:
        await conn.set_autocommit(True)
        auth = await authenticate_request(request, conn)
    hub: ChangeHub = request.app.state.hub
    if hub.subscriptions(auth.account.id) >= MAX_STREAMS_PER_ACCOUNT:
        raise Problem(
            429,
            f"at most {MAX_STREAMS_PER_ACCOUNT} event streams per account; close one",
            headers={"Retry-After": "30"},
        )
    subscription = hub.subscribe(auth.account.id)
    ends: SessionEnds = request.app.state.session_ends
    ended = ends.watch(auth.account.id)

    async def session_live() -> bool:
        async with pool_of(request).connection() as conn:
            await conn.set_autocommit(True)
            return await get_session(conn, auth.token, now=datetime.now(UTC)) is not None

    async def stream() -> AsyncIterator[bytes]:
        deadline = time.monotonic() + MAX_STREAM
        try:
            # "ready" means: from now on, changes and ends are heard (unless Postgres is
            # down, when the stream starts anyway and the listeners catch up).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LISTEN_WAIT):
                    await hub.listening.wait()
                    await ends.listening.wait()
            yield b"retry: 2000\nevent: ready\ndata: {}\n\n"
            while time.monotonic() < deadline:
                if await request.is_disconnected():
                    break
                if ended.is_set():
                    ended.clear()
                    if not await session_live():
                        yield b"event: ended\ndata: {}\n\n"
                        break
                if await _changed_or_ended(subscription, ended):
                    if subscription.pending():
                        mailboxes, everything = subscription.take()
                        payload = {
                            "mailboxes": sorted(int(m) for m in mailboxes),
                            "all": everything,
                        }
                        yield f"event: change\ndata: {json.dumps(payload)}\n\n".encode()
                else:
                    yield b": keep-alive\n\n"
        finally:
            ends.unwatch(auth.account.id, ended)
            subscription.close()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _changed_or_ended(subscription: Subscription, ended: asyncio.Event) -> bool:
    """Wait for a change or a session's end (True), or KEEPALIVE seconds (False)."""
    change = asyncio.ensure_future(subscription.wait())
    end = asyncio.ensure_future(ended.wait())
    try:
        done, _ = await asyncio.wait(
            {change, end}, timeout=KEEPALIVE, return_when="FIRST_COMPLETED"
        )
    finally:  # also when the stream itself is cancelled (the client went away)
        for task in (change, end):
            task.cancel()
    return bool(done)
