"""The web pages in a real browser: the API served by uvicorn in a thread of this process on
the test database, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn

from postroom import store
from postroom.api.app import create_app
from postroom.config import Settings
from postroom.db import Conn, connect
from postroom.store.types import Account

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
TIMEOUT_MS = 20_000
PASSWORD = "browser-pw-1"
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
T = TypeVar("T")

if shutil.which(CHROMIUM) is None:
    raise RuntimeError("Debian's chromium is missing (apt-get install chromium)")
from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402


class Loop:
    """An event loop in a thread of its own: the server runs there, and test code (which
    Playwright's sync API keeps off the main loop) runs store calls there too."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Awaitable[T], timeout: float = 60) -> T:
        async def wrap() -> T:
            return await coro

        future: Future[T] = asyncio.run_coroutine_threadsafe(wrap(), self.loop)
        return future.result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@dataclass
class Site:
    """The running web app, and a connection to its database for arranging each test."""

    base: str
    loop: Loop
    conn: Conn

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run(coro)

    def user(self, local: str = "", *, is_admin: bool = False) -> Account:
        async def make() -> Account:
            domain = await store.create_domain(self.conn, f"b{secrets.token_hex(4)}.test")
            return await store.create_account(
                self.conn, f"{local or 'u'}@{domain.name}", PASSWORD, is_admin=is_admin
            )

        return self.run(make())

    def deliver(self, account: Account, raw: bytes, folder: str = "INBOX", **kw: Any) -> int:
        async def put() -> int:
            box = await store.get_mailbox(self.conn, account.id, folder)
            assert box is not None
            return (await store.append_message(self.conn, box.id, raw, **kw)).uid

        return self.run(put())


@contextmanager
def serve(loop: Loop, settings: Settings) -> Iterator[Site]:
    """The app for these settings on a free loopback port until the block ends."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, pool_size=4),
            log_config=None,
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
    )
    task = asyncio.run_coroutine_threadsafe(server.serve(sockets=[sock]), loop.loop)
    conn = loop.run(connect(settings.database_url or "", autocommit=True))
    try:
        yield Site(f"http://127.0.0.1:{port}", loop, conn)
    finally:
        loop.run(conn.close())
        server.should_exit = True
        task.result(15)
        sock.close()


@pytest.fixture(scope="session")
def loop() -> Iterator[Loop]:
    running = Loop()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def site(database_url: str, redis_url: str, loop: Loop) -> Iterator[Site]:
    settings = Settings(database_url=database_url, redis_url=redis_url, hostname="mail.test")
    with serve(loop, settings) as running:
        yield running


# One Chromium for the browser tests (each test gets browser contexts of its own, with their
# own cookies, storage and cache: launching Chromium per test cost 2-3 s each). Not for the
# whole run: Playwright's sync API runs an event loop in this thread while it is open, which
# the asyncio tests of the same run need free, so it closes when the tests of this folder end.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


Login = Callable[..., Page]


@pytest.fixture
def login(site: Site, browser: Browser) -> Iterator[Login]:
    """A new browser context logged in as the account; the page opened on the mail view.
    Any request that leaves the site fails the test."""
    contexts: list[Any] = []
    strays: list[str] = []

    def log_in(
        account: Account,
        *,
        path: str = "/",
        on: Site | None = None,
        clock: bool = False,
        **context: Any,
    ) -> Page:
        base = (on or site).base
        ctx = browser.new_context(**context)
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        if clock:
            # The page's timers on a clock that runs as the real one, which the test may move
            # on (``page.clock.fast_forward``) instead of waiting out a delay (undo send's).
            page.clock.install()
        # The browser's own pages (its PDF viewer) are not requests to anyone.
        page.on(
            "request",
            lambda r: (
                None
                if r.url.startswith((base, "data:", "chrome:", "chrome-extension:", "blob:"))
                else strays.append(r.url)
            ),
        )
        page.goto(f"{base}/login")
        page.fill("input[name=address]", account.address)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        if path == "/":
            page.wait_for_selector("#list-scroll[aria-busy=false]", state="attached")
        else:
            page.goto(base + path)
        return page

    yield log_in
    for ctx in contexts:
        ctx.close()
    assert strays == [], f"requests left the site: {strays}"


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Serious and critical findings of axe-core on the page as it is now."""
    if not AXE.exists():
        raise RuntimeError(f"{AXE} is missing: run make install (npm ci)")
    # Evaluated through the debugging protocol: the page's policy allows no inline script.
    page.evaluate(AXE.read_text())
    found: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
             .filter(v => v.impact === 'serious' || v.impact === 'critical')
             .map(v => ({id: v.id, impact: v.impact,
                         nodes: v.nodes.map(n => n.target.join(' '))}))"""
    )
    return found


def mail(
    subject: str = "Hello",
    body: str = "Hi there.",
    *,
    sender: str = "Carol <carol@remote.test>",
    to: str = "someone@example.test",
    date: str = "Thu, 26 Nov 2026 12:00:00 +0000",
    message_id: str | None = None,
    extra: str = "",
) -> bytes:
    mid = message_id or f"<{secrets.token_hex(6)}@remote.test>"
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n"
        f"Message-ID: {mid}\r\n{extra}"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()
