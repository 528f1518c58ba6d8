"""Web mail in a real browser (Debian's Chromium driven by Playwright) against the real stack:
log in, send to a second local user, the delivery worker delivers, the reply comes back; a
hostile message's script never runs."""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from postroom import store
from postroom.db import connect
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "web-secret-1"
TIMEOUT_MS = 30_000

if shutil.which(CHROMIUM) is None:
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True
    )
playwright_api = pytest.importorskip("playwright.sync_api")


def _run(url: str, action: Callable[[Any], Any]) -> Any:
    async def go() -> Any:
        conn = await connect(url, autocommit=True)
        try:
            return await action(conn)
        finally:
            await conn.close()

    # Playwright's sync API keeps an event loop running in this thread: use another one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result(timeout=60)


def add_users(url: str, *locals_: str) -> list[str]:
    domain = f"w{secrets.token_hex(4)}.test"

    async def action(conn: Any) -> list[str]:
        await store.create_domain(conn, domain)
        return [
            (await store.create_account(conn, f"{local}@{domain}", PASSWORD)).address
            for local in locals_
        ]

    result: list[str] = _run(url, action)
    return result


def deliver(url: str, address: str, raw: bytes) -> None:
    async def action(conn: Any) -> None:
        account = await store.get_account(conn, address)
        assert account is not None
        inbox = await store.get_mailbox(conn, account.id, "INBOX")
        assert inbox is not None
        await store.append_message(conn, inbox.id, raw)

    _run(url, action)


@pytest.fixture
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        # Playwright gives every launch a fresh temporary --user-data-dir of its own.
        instance = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
            ],
        )  # fmt: skip
        try:
            yield instance
        finally:
            instance.close()


def log_in(browser: Any, base: str, address: str) -> Any:
    page = browser.new_context().new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{base}/login")
    page.fill("input[name=address]", address)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    page.wait_for_selector("#folders li[data-name=INBOX]")
    page.wait_for_selector("body[data-live=yes]")  # the event stream is open
    return page


def send(page: Any, *, to: str | None, subject: str | None, text: str) -> None:
    if to is not None:
        page.fill("#compose-form input[name=to]", to)
    if subject is not None:
        page.fill("#compose-form input[name=subject]", subject)
    quoted = page.input_value("#compose-form textarea[name=text]")
    page.fill("#compose-form textarea[name=text]", text + quoted)
    page.click("#send")
    page.wait_for_selector("#status:has-text('Message sent.')")


def test_send_deliver_read_and_reply_in_the_browser(stack: Stack, browser: Any) -> None:
    alice, bob = add_users(stack.database_url, "alice", "bob")
    base = f"http://127.0.0.1:{stack.port('http')}"

    alice_page = log_in(browser, base, alice)
    alice_page.click("#compose-button")
    alice_page.wait_for_selector("#compose[open]")
    send(alice_page, to=bob, subject="Lunch on Friday?", text="Shall we meet at noon?")

    bob_page = log_in(browser, base, bob)
    # Delivered by the real worker; it appears without a reload (server-sent events).
    row = bob_page.locator("#messages li", has_text="Lunch on Friday?")
    try:
        row.wait_for()
    except Exception:
        print(stack.output()[-6000:])
        raise
    assert "unread" in (row.get_attribute("class") or "")
    row.locator(".open").click()
    bob_page.wait_for_selector("#reader-text:has-text('Shall we meet at noon?')")
    assert bob_page.text_content("#reader-from") == alice
    bob_page.click("#reply-button")
    bob_page.wait_for_selector("#compose[open]")
    assert bob_page.input_value("#compose-form input[name=to]") == alice
    assert bob_page.input_value("#compose-form input[name=subject]") == "Re: Lunch on Friday?"
    send(bob_page, to=None, subject=None, text="Noon works.")

    alice_page.click("#folders li[data-name=INBOX]")
    alice_page.locator("#messages li", has_text="Re: Lunch on Friday?").locator(".open").click()
    alice_page.wait_for_selector("#reader-text:has-text('Noon works.')")
    sent = alice_page.text_content("#reader-text") or ""
    assert "> Shall we meet at noon?" in sent


HOSTILE = (
    b"From: Mallory <mallory@evil.test>\r\nTo: victim@example.test\r\nSubject: Free prize\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<p id=bait>Claim your prize</p><script>window.top.pwned = 1; alert('script')</script>"
    b"<img src=x onerror=\"window.top.pwned = 2; alert('onerror')\">"
    b'<a id=jslink href="javascript:window.top.pwned=3">click</a>'
    b'<img src="https://tracker.invalid/pixel.gif">'
    b"<svg><script>window.top.pwned = 4</script></svg>\r\n"
)


def test_a_hostile_messages_script_never_runs(stack: Stack, browser: Any) -> None:
    [victim] = add_users(stack.database_url, "victim")
    deliver(stack.database_url, victim, HOSTILE)
    base = f"http://127.0.0.1:{stack.port('http')}"
    page = log_in(browser, base, victim)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    remote: list[str] = []
    page.on(
        "request", lambda request: remote.append(request.url) if "tracker" in request.url else None
    )
    page.locator("#messages li", has_text="Free prize").locator(".open").click()
    frame = page.wait_for_selector("#reader-html[srcdoc*='Claim your prize']")
    assert frame.get_attribute("sandbox") == "allow-popups allow-popups-to-escape-sandbox"
    document = (frame.get_attribute("srcdoc") or "").lower()
    assert "claim your prize" in document
    for needle in ("<script", "onerror", "javascript:", "tracker.invalid", "pwned"):
        assert needle not in document
    page.wait_for_timeout(500)  # give a script that slipped through the time to run
    assert page.evaluate("window.pwned") is None
    assert dialogs == []
    assert remote == []
    assert page.is_visible("#images-note")
