"""Store append rate: 4 KiB messages, one connection and four."""

from __future__ import annotations

import asyncio
import secrets
import time

from postroom import store
from postroom.db import connect

try:
    from bench.common import fresh_database, table
except ModuleNotFoundError:  # run as a script from bench/
    from common import fresh_database, table  # type: ignore[no-redef]

MESSAGES = 2000
SIZE = 4096


def message(n: int) -> bytes:
    head = (
        f"From: Sender <sender@example.test>\r\nTo: alice@bench.test\r\n"
        f"Subject: benchmark message {n}\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000\r\n"
        f"Message-ID: <{n}.{secrets.token_hex(8)}@example.test>\r\n\r\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    body = (line * (SIZE // len(line) + 1))[: SIZE - len(head)]
    return head + body


async def run(url: str) -> list[list[object]]:
    conn = await connect(url, autocommit=True)
    await store.create_domain(conn, "bench.test")
    inboxes = []
    for i in range(4):
        account = await store.create_account(conn, f"user{i}@bench.test", "pw")
        box = await store.get_mailbox(conn, account.id, "INBOX")
        assert box is not None
        inboxes.append(box.id)
    messages = [message(n) for n in range(MESSAGES * 3)]
    rows: list[list[object]] = []

    async def writer(c: store.Conn, box: store.MailboxId, batch: list[bytes]) -> None:  # type: ignore[name-defined]
        for raw in batch:
            await store.append_message(c, box, raw)

    cases = [("1 connection", 1, False), ("4 connections, 4 mailboxes", 4, False),
             ("4 connections, 1 mailbox", 4, True)]  # fmt: skip
    offset = 0
    for label, n_conns, same_box in cases:
        conns = [await connect(url, autocommit=True) for _ in range(n_conns)]
        batch = messages[offset : offset + MESSAGES]
        offset += MESSAGES
        per = len(batch) // n_conns
        start = time.perf_counter()
        await asyncio.gather(
            *(
                writer(c, inboxes[0] if same_box else inboxes[i], batch[i * per : (i + 1) * per])
                for i, c in enumerate(conns)
            )
        )
        elapsed = time.perf_counter() - start
        rows.append([label, per * n_conns, f"{elapsed:.2f}", f"{per * n_conns / elapsed:.0f}"])
        for c in conns:
            await c.close()
    await conn.close()
    return rows


def main() -> None:
    with fresh_database() as url:
        rows = asyncio.run(run(url))
    print(
        table(
            f"store append, {SIZE // 1024} KiB messages",
            ["case", "messages", "seconds", "msg/s"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
