"""Request dependencies: the database connection, the session, the caller's account."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from postroom import store
from postroom.api.problems import Problem
from postroom.api.security import CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE, csrf_matches
from postroom.config import Settings
from postroom.db import Conn
from postroom.login import LoginPath
from postroom.spool import InflightBudget
from postroom.store.sessions import WebSession, get_session
from postroom.store.types import Account, Mailbox, MailboxId


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def inflight_of(request: Request) -> InflightBudget:
    """The process's budget of messages being received (POSTROOM_MAX_INFLIGHT_BYTES)."""
    budget: InflightBudget = request.app.state.inflight
    return budget


def pool_of(request: Request) -> AsyncConnectionPool[Conn]:
    pool: AsyncConnectionPool[Conn] = request.app.state.pool
    return pool


def login_of(request: Request) -> LoginPath:
    login: LoginPath = request.app.state.login
    return login


async def get_conn(request: Request) -> AsyncIterator[Conn]:
    """A pooled connection in autocommit mode, as the store expects."""
    async with pool_of(request).connection() as conn:
        if not conn.autocommit:
            await conn.set_autocommit(True)
        yield conn


ConnDep = Annotated[Conn, Depends(get_conn)]
SettingsDep = Annotated[Settings, Depends(settings_of)]


@dataclass(frozen=True, slots=True)
class Auth:
    """Who is calling, and how (the cookie needs CSRF checks; a bearer token does not)."""

    account: Account
    session: WebSession
    token: str
    via: Literal["cookie", "bearer"]


def presented_token(request: Request) -> tuple[str, Literal["cookie", "bearer"]] | None:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Problem(
                401, "the Authorization header must be 'Bearer <token>'", headers=_challenge()
            )
        return value.strip(), "bearer"
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return cookie, "cookie"
    return None


def _challenge() -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer realm="postroom"'}


def check_origin(request: Request) -> None:
    """A state-changing request from a browser must come from our own pages.

    Browsers send Origin on every non-GET fetch; when it is there it must name this host.
    """
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        if origin == "null":
            raise Problem(403, "cross-origin request refused")
        return
    host = request.headers.get("host", "")
    scheme_host = origin.split("://", 1)[-1]
    if scheme_host != host:
        raise Problem(403, "cross-origin request refused")


async def authenticate_request(request: Request, conn: Conn) -> Auth:
    presented = presented_token(request)
    if presented is None:
        raise Problem(401, "log in first", headers=_challenge())
    token, via = presented
    session = await get_session(conn, token, now=datetime.now(UTC))
    if session is None or session.kind != via:
        raise Problem(
            401, "the session has expired or was ended; log in again", headers=_challenge()
        )
    if via == "cookie" and request.method not in SAFE_METHODS:
        check_origin(request)
        if not csrf_matches(token, request.headers.get(CSRF_HEADER)):
            raise Problem(403, "missing or wrong X-CSRF-Token header")
    return Auth(session.account, session, token, via)


async def current_auth(request: Request, conn: ConnDep) -> Auth:
    return await authenticate_request(request, conn)


AuthDep = Annotated[Auth, Depends(current_auth)]


async def current_account(auth: AuthDep) -> Account:
    return auth.account


AccountDep = Annotated[Account, Depends(current_account)]


async def admin_account(account: AccountDep) -> Account:
    if not account.is_admin:
        raise Problem(403, "this needs an administrator account")
    return account


AdminDep = Annotated[Account, Depends(admin_account)]


async def owned_mailbox(conn: Conn, account: Account, mailbox_id: int) -> Mailbox:
    """The caller's mailbox with this id; someone else's is as absent as a missing one."""
    if not 0 < mailbox_id < 2**63:
        raise Problem(404, f"mailbox {mailbox_id} does not exist")
    mailbox = await store.get_mailbox_by_id(conn, MailboxId(mailbox_id))
    if mailbox is None or mailbox.account_id != account.id:
        raise Problem(404, f"mailbox {mailbox_id} does not exist")
    return mailbox


def client_ip(request: Request) -> str | None:
    """The client's address: the peer, or what a trusted proxy's X-Forwarded-For says
    (uvicorn believes it only from POSTROOM_TRUSTED_PROXIES)."""
    return request.client.host if request.client else None


def loopback_client(request: Request) -> bool:
    ip = client_ip(request)
    try:
        return ip is not None and ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False
