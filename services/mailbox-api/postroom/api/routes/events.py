"""Live updates: server-sent events fed by the store's LISTEN/NOTIFY change hub."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from postroom.api.deps import authenticate_request, pool_of
from postroom.api.problems import Problem
from postroom.store.notify import ChangeHub

router = APIRouter(prefix="/api/v1", tags=["events"])

KEEPALIVE = 15.0
# A stream ends after this long; EventSource reconnects by itself (and re-authenticates).
MAX_STREAM = 3600.0
# Open streams of one account in one process (a browser tab each): each holds a connection.
MAX_STREAMS_PER_ACCOUNT = 20


@router.get("/events", response_class=StreamingResponse)
async def events(request: Request) -> StreamingResponse:
    """``text/event-stream``: a ``change`` event naming the folders (ids) whose messages or
    flags changed, ``all`` when anything may have; clients then re-read what they show."""
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

    async def stream() -> AsyncIterator[bytes]:
        deadline = time.monotonic() + MAX_STREAM
        try:
            yield b"retry: 2000\nevent: ready\ndata: {}\n\n"
            while time.monotonic() < deadline:
                if await request.is_disconnected():
                    break
                if await subscription.wait(KEEPALIVE):
                    mailboxes, everything = subscription.take()
                    payload = {"mailboxes": sorted(int(m) for m in mailboxes), "all": everything}
                    yield f"event: change\ndata: {json.dumps(payload)}\n\n".encode()
                else:
                    yield b": keep-alive\n\n"
        finally:
            subscription.close()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
