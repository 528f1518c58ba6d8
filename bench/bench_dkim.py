"""DKIM signing: signatures per second of a 4 KiB message, and outbound messages per second
(spooled from a local domain, signed at the hand-off, sent over SMTP to a sink on loopback)
with signing off, RSA 2048, Ed25519, and both at once."""

from __future__ import annotations

import asyncio
import socket
import tempfile
import time
from datetime import UTC, datetime

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from postroom import dkim_admin, store
from postroom.config import load_settings
from postroom.db import connect
from postroom.delivery.courier import Courier, create_pool
from postroom.delivery.signing import sign_with
from postroom.dkim import check_algorithm, generate
from postroom.log import configure_logging
from postroom.store import dkim as dkim_store
from postroom.store import queue as queue_store
from postroom.store.dkim import SigningKey
from postroom.store.types import Arrival

try:
    from bench.common import fresh_database, table
except ModuleNotFoundError:  # run as a script from bench/
    from common import fresh_database, table  # type: ignore[no-redef]

SIGNATURES = 500
MESSAGES = 200
BATCH = 20


def message(n: int, domain: str) -> bytes:
    return (
        f"From: Alice <alice@{domain}>\r\nTo: <bob@remote.test>\r\nSubject: bench {n}\r\n"
        f"Date: Thu, 26 Nov 2026 12:00:00 +0000\r\n"
        f"Message-ID: <{n}.{time.time_ns()}@{domain}>\r\nMIME-Version: 1.0\r\n\r\n"
    ).encode() + b"The quick brown fox jumps over the lazy dog, again and again.\r\n" * 64


class Sink:
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 2.0.0 taken"


def signing_rates() -> list[list[object]]:
    rsa, ed = generate("rsa"), generate("ed25519")
    keys: dict[str, list[tuple[SigningKey, bytes]]] = {
        "rsa": [(SigningKey("bench.test", "r", "rsa", b""), rsa.private)],
        "ed25519": [(SigningKey("bench.test", "e", "ed25519", b""), ed.private)],
    }
    keys["both"] = keys["rsa"] + keys["ed25519"]
    rows: list[list[object]] = []
    content = message(0, "bench.test")
    for name, chosen in keys.items():
        start = time.perf_counter()
        for _ in range(SIGNATURES):
            sign_with(content, chosen)
        elapsed = time.perf_counter() - start
        rows.append(
            [name, SIGNATURES, f"{SIGNATURES / elapsed:.0f}", f"{elapsed / SIGNATURES * 1000:.2f}"]
        )
    return rows


async def outbound(url: str, port: int) -> list[list[object]]:
    conn = await connect(url, autocommit=True)
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory() as data_dir:
        settings = load_settings(
            {
                "POSTROOM_HOSTNAME": "mx.bench.test",
                "POSTROOM_DATA_DIR": data_dir,
                "POSTROOM_TRANSPORT_MAP": f"remote.test=[127.0.0.1]:{port}",
                "POSTROOM_LOG_LEVEL": "WARNING",
            }
        )
        configure_logging(settings, "bench")
        for label, algorithms in (
            ("off", []),
            ("rsa", ["rsa"]),
            ("ed25519", ["ed25519"]),
            ("both", ["rsa", "ed25519"]),
        ):
            domain = f"{label}.bench.test"
            await store.create_domain(conn, domain)
            for algorithm in algorithms:
                await dkim_admin.generate(
                    conn, settings, domain, algorithm=check_algorithm(algorithm)
                )
            assert len(await dkim_store.list_keys(conn, domain)) == len(algorithms)
            ids: list[int] = []
            for n in range(MESSAGES):
                spooled = await queue_store.spool(
                    conn,
                    message(n, domain),
                    reverse_path=f"alice@{domain}",
                    recipients=["bob@remote.test"],
                    arrival=Arrival(source="smtp"),
                    now=datetime.now(UTC),
                )
                ids += [d.id for d in spooled.deliveries]
            pool = create_pool(url, max_size=4)
            await pool.open()
            try:
                courier = Courier(settings, pool)
                start = time.perf_counter()
                for i in range(0, len(ids), BATCH):
                    await courier.deliver(ids[i : i + BATCH])
                elapsed = time.perf_counter() - start
            finally:
                await pool.close()
            rows.append([label, MESSAGES, f"{MESSAGES / elapsed:.0f}"])
    await conn.close()
    return rows


def main() -> None:
    signing = signing_rates()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Sink(), hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        with fresh_database() as url:
            sent = asyncio.run(outbound(url, port))
    finally:
        controller.stop()
    print(
        table(
            "DKIM: signatures of a 4 KiB message", ["keys", "signed", "per s", "ms each"], signing
        )
    )
    print()
    print(
        table(
            "DKIM: outbound messages signed at hand-off and sent over SMTP to a loopback sink "
            f"(batches of {BATCH})",
            ["signing", "messages", "messages/s"],
            sent,
        )
    )


if __name__ == "__main__":
    main()
