"""The web mail pages: the login redirect, the CSRF token in the page, our own scripts only."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI

from tests.integration.api.conftest import MakeUser, client_for


@pytest.mark.parametrize("path", ["/", "/admin", "/trace"], ids=["mail", "admin", "trace"])
async def test_pages_send_a_stranger_to_the_login(app: FastAPI, path: str) -> None:
    async with client_for(app) as client:
        reply = await client.get(path)
    assert reply.status_code == 303
    assert reply.headers["location"] == "/login"


async def test_mail_page_carries_the_csrf_token_and_no_inline_script(
    app: FastAPI, make_user: MakeUser
) -> None:
    user = await make_user()
    async with client_for(app) as client:
        login = await client.post(
            "/api/v1/session",
            json={"address": user.account.address, "password": user.password},
        )
        page = await client.get("/")
    assert page.status_code == 200
    meta = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert meta is not None
    assert meta[1] == login.json()["csrf_token"]
    assert re.findall(r"<script[^>]*>", page.text) == [
        '<script src="/static/common.js" defer>',
        '<script src="/static/compose.js" defer>',
        '<script src="/static/mail.js" defer>',
    ]


async def test_admin_page_sends_a_non_admin_back_to_mail(app: FastAPI, make_user: MakeUser) -> None:
    user = await make_user()
    async with client_for(app) as client:
        await client.post(
            "/api/v1/session", json={"address": user.account.address, "password": user.password}
        )
        reply = await client.get("/admin")
    assert reply.status_code == 303
    assert reply.headers["location"] == "/"


async def test_static_script_is_served_as_javascript(app: FastAPI) -> None:
    async with client_for(app) as client:
        reply = await client.get("/static/mail.js")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/javascript")
    assert reply.headers["x-content-type-options"] == "nosniff"
