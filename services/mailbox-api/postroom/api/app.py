"""The FastAPI application: the pool and change hub, middleware, routers, error documents."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from postroom.api import problems
from postroom.api.metrics import MetricsMiddleware
from postroom.api.routes import (
    account,
    acme,
    admin,
    auth,
    autoconfig,
    console,
    domain_setup,
    drafts,
    events,
    health,
    mailboxes,
    messages,
    preferences,
    send,
    sieve,
    trace,
    web,
)
from postroom.api.security import BodyLimit, SecurityHeaders
from postroom.api.session_ends import SessionEnds
from postroom.config import Settings
from postroom.db import create_pool
from postroom.login import LoginPath
from postroom.runtime import database_url
from postroom.spool import InflightBudget
from postroom.store.notify import ChangeHub
from postroom.throttle import AuthThrottle


def create_app(
    settings: Settings, *, pool_size: int = 10, throttle: AuthThrottle | None = None
) -> FastAPI:
    """The app for these settings; Postgres is opened when it starts (lifespan)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = database_url(settings)
        pool = create_pool(
            url, min_size=1, max_size=pool_size, statement_timeout=settings.statement_timeout
        )
        await pool.open()
        hub = ChangeHub(url)
        await hub.start()
        ends = SessionEnds(url)
        await ends.start()
        app.state.pool = pool
        app.state.hub = hub
        app.state.session_ends = ends
        app.state.login = LoginPath(pool, app.state.throttle)
        try:
            yield
        finally:
            app.state.login.close()
            await ends.stop()
            await hub.stop()
            await pool.close()

    app = FastAPI(
        title="Postroom mailbox API",
        version="1",
        description="Mail, folders, sending, administration and message trace over HTTP.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.throttle = throttle or AuthThrottle()
    # One budget for the send bodies (BodyLimit) and the messages built from them.
    app.state.inflight = InflightBudget(settings.max_inflight_bytes)
    problems.install(app)
    for module in (
        auth,
        account,
        mailboxes,
        messages,
        send,
        drafts,
        preferences,
        events,
        admin,
        console,
        domain_setup,
        autoconfig,
        acme,
        trace,
        sieve,
        health,
        web,
    ):
        app.include_router(module.router)
    web.mount_static(app)
    # Starlette runs the last added outermost: the size check inside the security headers.
    app.add_middleware(
        BodyLimit,
        max_message_size=settings.max_message_size,
        budget=app.state.inflight,
    )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(MetricsMiddleware)
    return app
