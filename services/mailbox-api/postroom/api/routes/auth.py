"""Logging in and out: a cookie session for the browser, a bearer token for scripts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog
from fastapi import APIRouter, Request, Response

from postroom import store
from postroom.api import schemas, two_factor
from postroom.api.convert import account_public
from postroom.api.deps import (
    AuthDep,
    ConnDep,
    check_origin,
    client_ip,
    login_of,
    loopback_client,
    settings_of,
)
from postroom.api.problems import Problem
from postroom.api.security import SESSION_COOKIE, csrf_token
from postroom.store.sessions import (
    create_session,
    delete_session,
    delete_session_of,
    list_sessions_of,
)
from postroom.store.types import Account

COOKIE_LIFETIME = timedelta(hours=12)
TOKEN_LIFETIME = timedelta(days=30)

router = APIRouter(prefix="/api/v1", tags=["session"])
log = structlog.get_logger("postroom.api")


async def _login(request: Request, body: schemas.Login) -> Account:
    """The one login path, as every protocol uses it; no database connection is held while
    the password is verified."""
    login = login_of(request)
    ip = client_ip(request)
    result = await login.login(body.address, body.password, client_ip=ip, service="web")
    if result.outcome == "throttled":
        raise Problem(
            429,
            "too many failed logins; try again later",
            headers={"Retry-After": str(int(login.throttle.window))},
        )
    if result.outcome == "unavailable":
        raise Problem(503, "the mail store is unavailable; try again later")
    if result.account is None:
        raise Problem(401, "wrong address or password")
    return result.account


@router.post("/session", response_model=schemas.SessionPublic)
async def log_in(
    body: schemas.Login, request: Request, response: Response, conn: ConnDep
) -> schemas.SessionPublic:
    """Log in from a browser: sets an HTTP-only, SameSite=Strict session cookie."""
    check_origin(request)
    account = await _login(request, body)
    await two_factor.require(conn, settings_of(request), account, body.otp)
    token, session = await create_session(
        conn,
        account.id,
        kind="cookie",
        now=datetime.now(UTC),
        lifetime=COOKIE_LIFETIME,
        client_address=client_ip(request),
    )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(COOKIE_LIFETIME.total_seconds()),
        httponly=True,
        samesite="strict",
        # Secure always, but for a browser on this very machine (development over plain
        # http://localhost): behind a load balancer the scheme seen here may be http.
        secure=not loopback_client(request),
        path="/",
    )
    return schemas.SessionPublic(
        account=account_public(account),
        addresses=(await store.senders_of(conn, account.id))[0],
        csrf_token=csrf_token(token),
        expires_at=session.expires_at,
    )


@router.post("/tokens", response_model=schemas.TokenPublic, status_code=201)
async def create_token(body: schemas.Login, request: Request, conn: ConnDep) -> schemas.TokenPublic:
    """Log in from a script: a bearer token for the Authorization header."""
    account = await _login(request, body)
    await two_factor.require(conn, settings_of(request), account, body.otp)
    token, session = await create_session(
        conn,
        account.id,
        kind="bearer",
        now=datetime.now(UTC),
        lifetime=TOKEN_LIFETIME,
        client_address=client_ip(request),
    )
    return schemas.TokenPublic(
        token=token, expires_at=session.expires_at, account=account_public(account)
    )


@router.get("/session", response_model=schemas.SessionPublic)
async def who_am_i(auth: AuthDep, conn: ConnDep) -> schemas.SessionPublic:
    """The caller's account, the addresses it may send as, and (for a cookie) the CSRF token."""
    return schemas.SessionPublic(
        account=account_public(auth.account),
        addresses=(await store.senders_of(conn, auth.account.id))[0],
        csrf_token=csrf_token(auth.token) if auth.via == "cookie" else None,
        expires_at=auth.session.expires_at,
    )


@router.delete("/session", status_code=204)
async def log_out(auth: AuthDep, conn: ConnDep, response: Response) -> Response:
    """End this session (the cookie's, or the bearer token's)."""
    await delete_session(conn, auth.token)
    result = Response(status_code=204)
    result.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return result


@router.get("/tokens", response_model=list[schemas.SessionListed])
async def list_tokens(auth: AuthDep, conn: ConnDep) -> list[schemas.SessionListed]:
    """The caller's own sessions and tokens (where and when each began), to spot a stranger's."""
    sessions = await list_sessions_of(conn, auth.account.id, now=datetime.now(UTC))
    return [
        schemas.SessionListed(
            id=s.id,
            kind=s.kind,
            created_at=s.created_at,
            expires_at=s.expires_at,
            client_address=s.client_address,
            current=s.id == auth.session.id,
        )
        for s in sessions
    ]


@router.delete("/tokens/{session_id}", status_code=204)
async def revoke_token(session_id: int, auth: AuthDep, conn: ConnDep) -> Response:
    """End one of the caller's own sessions or tokens (404 for anyone else's)."""
    if not await delete_session_of(conn, auth.account.id, session_id):
        raise Problem(404, f"no session {session_id} of yours")
    return Response(status_code=204)
