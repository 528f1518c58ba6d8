"""Liveness, readiness (Postgres and Redis) and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from postroom.api.deps import pool_of, settings_of
from postroom.db import schema_version
from postroom.runtime import redis_url

router = APIRouter(tags=["health"])
CHECK_TIMEOUT = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


async def _postgres(request: Request) -> None:
    async with pool_of(request).connection(timeout=CHECK_TIMEOUT) as conn:
        await schema_version(conn)


def _redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(
        url.replace("redis+socket://", "unix://"),
        socket_timeout=CHECK_TIMEOUT,
        socket_connect_timeout=CHECK_TIMEOUT,
    )
    try:
        client.ping()
    finally:
        client.close()


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready when Postgres and Redis both answer; 503 naming what does not."""
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(_postgres(request), CHECK_TIMEOUT + 1)
        checks["postgres"] = "ok"
    except Exception as exc:  # any failure means not ready; the reason is reported
        checks["postgres"] = f"failed: {type(exc).__name__}"
    try:
        url = redis_url(settings_of(request))
        await asyncio.wait_for(asyncio.to_thread(_redis, url), CHECK_TIMEOUT + 1)
        checks["redis"] = "ok"
    except Exception as exc:  # as above
        checks["redis"] = f"failed: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    """Prometheus text exposition of this process's metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
