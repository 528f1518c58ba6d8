"""Web mail in Chromium against a 100,000-message INBOX: navigation to the first page of the
list painted, and a click on a message to its body shown (p50 and p90 of several runs)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_imap import make_messages
from bench.common import fresh_database, table
from postroom import store
from postroom.db import connect
from postroom.store import search

ADDRESS = "reader@bench.test"
PASSWORD = "bench-password"  # noqa: S105 - the benchmark's own throwaway account
DISTINCT = 1000
COPIES = 100
RUNS = 15
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


async def fill(url: str) -> int:
    """INBOX of DISTINCT × COPIES messages: distinct ones appended through the store, then
    copied (COPY shares the content, as IMAP COPY does), so the fill takes seconds."""
    conn = await connect(url, autocommit=True)
    await store.create_domain(conn, "bench.test")
    account = await store.create_account(conn, ADDRESS, PASSWORD)
    seed = await store.create_mailbox(conn, account.id, "Seed")
    inbox = await store.get_mailbox(conn, account.id, "INBOX")
    assert inbox is not None
    for raw in make_messages(DISTINCT):
        await store.append_message(conn, seed.id, raw)
    uids = await store.list_uids(conn, seed.id)
    for _ in range(COPIES):
        await store.copy_messages(conn, seed.id, uids, inbox.id)
    await conn.execute("VACUUM ANALYZE messages")
    await conn.execute("VACUUM ANALYZE blobs")
    status = await store.mailbox_status(conn, inbox.id)
    await conn.close()
    return status.messages


async def conversation_pages(url: str) -> list[float]:
    """Milliseconds for one page of the INBOX by conversation (the store's query, as the
    list's group=conversation runs it), first page and a middle one, RUNS times each."""
    conn = await connect(url, autocommit=True)
    account = await store.get_account(conn, ADDRESS)
    assert account is not None
    inbox = await store.get_mailbox(conn, account.id, "INBOX")
    assert inbox is not None
    took: list[float] = []
    for run in range(RUNS + 1):
        for offset in (0, 500):
            started = time.perf_counter()
            await search.list_conversations(conn, inbox.id, offset=offset, limit=100)
            if run:
                took.append((time.perf_counter() - started) * 1000)
    await conn.close()
    return took


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the API did not listen on {port}")


def measure(base: str) -> tuple[list[float], list[float]]:
    from playwright.sync_api import sync_playwright

    lists: list[float] = []
    opens: list[float] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        page.goto(f"{base}/login")
        page.fill("input[name=address]", ADDRESS)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        for run in range(RUNS + 1):
            page.goto(f"{base}/")
            page.wait_for_selector("#messages li[data-uid]")
            painted = page.evaluate(
                "new Promise(r => { const f = () => { const m = performance.getEntriesByName("
                "'postroom:list-painted'); m.length ? r(m[0].startTime) : setTimeout(f, 5); };"
                " f(); })"
            )
            if run:  # the first load warms the browser's and the server's caches
                lists.append(painted)
            for row in range(3):
                page.evaluate("performance.clearMarks()")
                page.click(f"#messages li[data-index='{(run * 3 + row) % 10}'] .open")
                took = page.evaluate(
                    "new Promise(r => { const f = () => { const a = performance.getEntriesByName("
                    "'postroom:open'), b = performance.getEntriesByName("
                    "'postroom:message-shown'); a.length && b.length ? "
                    "r(b[0].startTime - a[0].startTime) : setTimeout(f, 5); }; f(); })"
                )
                if run:
                    opens.append(took)
        browser.close()
    return lists, opens


def quantiles(values: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(values, n=10)
    return statistics.median(values), cuts[8]


def main() -> None:
    with fresh_database() as url, tempfile.TemporaryDirectory() as tmp:
        messages = asyncio.run(fill(url))
        conversations = asyncio.run(conversation_pages(url))
        port = free_port()
        env = {
            **os.environ,
            "POSTROOM_DATABASE_URL": url,
            "POSTROOM_BIND_ADDRESS": "127.0.0.1",
            "POSTROOM_HTTP_PORT": str(port),
            "POSTROOM_DATA_DIR": str(Path(tmp) / "data"),
            "POSTROOM_LOG_LEVEL": "WARNING",
        }
        server = subprocess.Popen([sys.executable, "-m", "postroom.api"], env=env)
        try:
            wait_for(port)
            lists, opens = measure(f"http://127.0.0.1:{port}")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    list_p50, list_p90 = quantiles(lists)
    open_p50, open_p90 = quantiles(opens)
    conv_p50, conv_p90 = quantiles(conversations)
    rows: list[list[object]] = [
        ["navigation → list painted", len(lists), f"{list_p50:.0f}", f"{list_p90:.0f}", "≤ 300"],
        ["click → message shown", len(opens), f"{open_p50:.0f}", f"{open_p90:.0f}", "≤ 150"],
        [
            "page by conversation (store)",
            len(conversations),
            f"{conv_p50:.0f}",
            f"{conv_p90:.0f}",
            "≤ 300",
        ],
    ]
    title = f"Web mail in Chromium, INBOX of {messages:,} messages ({DISTINCT:,} distinct)"
    print(table(title, ["measure", "runs", "p50 ms", "p90 ms", "target p50"], rows))


if __name__ == "__main__":
    main()
