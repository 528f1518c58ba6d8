"""The web mail pages: server-rendered shells (Jinja2) driven by a small script of our own."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from postroom import store
from postroom.api.deps import pool_of
from postroom.api.security import SESSION_COOKIE, csrf_token
from postroom.store import preferences
from postroom.store.sessions import WebSession, get_session

WEB = Path(__file__).resolve().parent.parent / "web"
templates = Jinja2Templates(directory=WEB / "templates")
router = APIRouter(include_in_schema=False)


def mount_static(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")


async def _session(request: Request) -> tuple[WebSession, str] | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    async with pool_of(request).connection() as conn:
        await conn.set_autocommit(True)
        session = await get_session(conn, token, now=datetime.now(UTC))
    return (session, token) if session is not None and session.kind == "cookie" else None


async def _page(
    request: Request, template: str, *, section: str, admin: bool = False, mail: bool = False
) -> Response:
    found = await _session(request)
    if found is None:
        return RedirectResponse("/login", status_code=303)
    session, token = found
    if admin and not session.account.is_admin:
        return RedirectResponse("/", status_code=303)
    context = {"account": session.account, "csrf_token": csrf_token(token), "section": section}
    if mail:
        # In the page, so that its script asks for the folders and the first page of the
        # INBOX at once instead of one after the other.
        async with pool_of(request).connection() as conn:
            await conn.set_autocommit(True)
            inbox = await store.get_mailbox(conn, session.account.id, "INBOX")
            context["inbox_id"] = inbox.id if inbox is not None else ""
            addresses, domains = await store.senders_of(conn, session.account.id)
            context["addresses"] = ",".join(addresses)
            context["send_domains"] = ",".join(domains)
            context["conversations"] = await preferences.list_by_conversation(
                conn, session.account.id
            )
    return templates.TemplateResponse(
        request, template, context, headers={"Cache-Control": "no-store"}
    )


@router.get("/", response_class=HTMLResponse)
async def mail_page(request: Request) -> Response:
    return await _page(request, "mail.html", section="mail", mail=True)


@router.get("/settings", response_class=HTMLResponse)
async def settings_page(request: Request) -> Response:
    return await _page(request, "settings.html", section="settings")


@router.get("/admin", response_class=HTMLResponse)
async def admin_page(request: Request) -> Response:
    return await _page(request, "admin.html", section="admin", admin=True)


@router.get("/trace", response_class=HTMLResponse)
async def trace_page(request: Request) -> Response:
    return await _page(request, "trace.html", section="trace")


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Response:
    if await _session(request) is not None:
        return RedirectResponse("/", status_code=303)
    return templates.TemplateResponse(
        request, "login.html", {}, headers={"Cache-Control": "no-store"}
    )
