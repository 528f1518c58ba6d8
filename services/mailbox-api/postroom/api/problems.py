"""Every error as an RFC 9457 problem document (application/problem+json) with a clear reason."""

from __future__ import annotations

from typing import Any

import psycopg.errors
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from postroom.db import DatabaseUnavailable
from postroom.errors import (
    AlreadyExists,
    AuthenticationFailed,
    InvalidInput,
    LimitExceeded,
    NotFound,
    QueryTimeout,
    QuotaExceeded,
    StoreError,
)

PROBLEM_TYPE = "application/problem+json"
log = structlog.get_logger("postroom.api")

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
    507: "Insufficient Storage",
}


class Problem(Exception):
    """Raise to answer with a problem document."""

    def __init__(
        self, status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(
    status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": "about:blank", "title": _TITLES.get(status, "Error"), "status": status}
    body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_TYPE)


def _store_status(exc: StoreError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, AlreadyExists):
        return 409
    if isinstance(exc, AuthenticationFailed):
        return 401
    if isinstance(exc, DatabaseUnavailable | QueryTimeout):
        return 503
    if isinstance(exc, InvalidInput | LimitExceeded):
        return 422
    if isinstance(exc, QuotaExceeded):
        # RFC 4918 §11.5: the account cannot store what the request needs.
        return 507
    return 400


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:10]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is not valid"


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem document."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.detail, headers=exc.headers, **exc.extra)

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> JSONResponse:
        return problem_response(_store_status(exc), str(exc))

    @app.exception_handler(psycopg.errors.QueryCanceled)
    async def _cancelled(request: Request, exc: psycopg.errors.QueryCanceled) -> JSONResponse:
        # The connection's statement_timeout ended a statement: the work was too costly now.
        log.warning("api.statement_timeout", path=request.url.path)
        return problem_response(503, "the request took too long; try again or narrow it down")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(422, _validation_detail(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "")
        return problem_response(exc.status_code, detail, headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("api.error", path=request.url.path, error=type(exc).__name__)
        return problem_response(500, "an internal error occurred; it has been logged")
