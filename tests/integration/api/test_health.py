"""Health, readiness and metrics."""

from __future__ import annotations

from fastapi import FastAPI

from postroom.api.app import create_app
from postroom.config import Settings
from tests.integration.api.conftest import client_for


async def test_healthz(app: FastAPI) -> None:
    async with client_for(app) as client:
        reply = await client.get("/healthz")
    assert reply.json() == {"status": "ok"}


async def test_readyz_checks_postgres_and_redis(app: FastAPI) -> None:
    async with client_for(app) as client:
        reply = await client.get("/readyz")
    assert reply.status_code == 200
    assert reply.json() == {"status": "ready", "checks": {"postgres": "ok", "redis": "ok"}}


async def test_readyz_is_503_naming_what_is_down(database_url: str) -> None:
    settings = Settings(database_url=database_url, redis_url="redis://127.0.0.1:1/0")
    application = create_app(settings, pool_size=2)
    async with application.router.lifespan_context(application), client_for(application) as c:
        reply = await c.get("/readyz")
    assert reply.status_code == 503
    assert reply.json()["checks"]["postgres"] == "ok"
    assert reply.json()["checks"]["redis"].startswith("failed: ")


async def test_metrics_count_requests_by_route(app: FastAPI) -> None:
    async with client_for(app) as client:
        await client.get("/healthz")
        reply = await client.get("/metrics")
    assert reply.headers["content-type"].startswith("text/plain")
    assert 'postroom_api_requests_total{method="GET",route="/healthz",status="200"}' in reply.text
