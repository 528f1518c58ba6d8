"""End to end: SMTP in → visible in IMAP, throughput and latency, with 1 and 2 workers.

Starts the real stack (`postroom up`) on free ports against a fresh database, sends mail over
SMTP at a steady rate from one thread while an IMAP session in IDLE on the recipient's INBOX
timestamps every EXISTS, and prints throughput and latency percentiles.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from imapclient import IMAPClient

from postroom import store
from postroom.db import connect

try:
    from bench.common import fresh_database, local_dns, table
except ModuleNotFoundError:  # run as a script from bench/
    from common import fresh_database, local_dns, table  # type: ignore[no-redef]

POSTROOM = str(Path(sys.executable).with_name("postroom"))
PORTS = (
    "SMTP",
    "SUBMISSION",
    "SUBMISSIONS",
    "POP3",
    "POP3S",
    "IMAP",
    "IMAPS",
    "MANAGESIEVE",
    "HTTP",
)
RATE = 50  # messages per second, steady
MESSAGES = 500
PASSWORD = "bench-password"  # noqa: S105 - a test account's


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port}")


async def prepare(url: str, address: str) -> None:
    conn = await connect(url, autocommit=True)
    try:
        await store.create_domain(conn, address.split("@")[1])
        await store.create_account(conn, address, PASSWORD)
    finally:
        await conn.close()


def run_case(url: str, redis_url: str, workers: int, tmp: Path, dns: str) -> list[object]:
    address = f"bench@b{secrets.token_hex(3)}.test"
    asyncio.run(prepare(url, address))
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    env.update(
        POSTROOM_DATABASE_URL=url,
        POSTROOM_REDIS_URL=redis_url,
        POSTROOM_DATA_DIR=str(tmp / f"data{workers}"),
        POSTROOM_BIND_ADDRESS="127.0.0.1",
        POSTROOM_HOSTNAME="bench.test",
        POSTROOM_SWEEP_INTERVAL="1",
        POSTROOM_LOG_LEVEL="WARNING",
        POSTROOM_DNS_RESOLVERS=dns,
    )
    for name in PORTS:
        env[f"POSTROOM_{name}_PORT"] = str(free_port())
    up = subprocess.Popen(
        [POSTROOM, "up", "--workers", str(workers)], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        for name in ("SMTP", "IMAP"):
            wait_port(int(env[f"POSTROOM_{name}_PORT"]))
        time.sleep(3)  # workers and beat
        seen: list[float] = []
        done = threading.Event()

        def watch() -> None:
            with IMAPClient("127.0.0.1", port=int(env["POSTROOM_IMAP_PORT"]), ssl=False) as imap:
                imap.login(address, PASSWORD)
                imap.select_folder("INBOX")
                imap.idle()
                count = 0
                while count < MESSAGES and not done.is_set():
                    for _, kind in ((r[0], r[1]) for r in imap.idle_check(timeout=1)):
                        if kind == b"EXISTS":
                            now = time.monotonic()
                            total = _[0] if isinstance(_, tuple) else _
                            while count < int(total):
                                seen.append(now)
                                count += 1
                imap.idle_done()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        time.sleep(1)
        sent: list[float] = []
        body = b"x" * 1000
        with smtplib.SMTP("127.0.0.1", int(env["POSTROOM_SMTP_PORT"]), timeout=60) as smtp:
            start = time.monotonic()
            for n in range(MESSAGES):
                target = start + n / RATE
                delay = target - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                raw = (
                    (
                        f"From: load@remote.example\r\nTo: {address}\r\nSubject: {n}\r\n"
                        f"Message-ID: <{n}.{secrets.token_hex(6)}@bench>\r\n\r\n"
                    ).encode()
                    + body
                    + b"\r\n"
                )
                sent.append(time.monotonic())
                smtp.sendmail("load@remote.example", [address], raw)
        watcher.join(timeout=120)
        done.set()
        if len(seen) < MESSAGES:
            return [workers, MESSAGES, f"only {len(seen)} seen", "-", "-", "-"]
        # Messages arrive in order of their UIDs, not necessarily of sending; pair by rank.
        latencies = sorted((b - a) * 1000 for a, b in zip(sorted(sent), sorted(seen), strict=True))
        elapsed = max(seen) - min(sent)
        return [
            workers,
            MESSAGES,
            f"{MESSAGES / elapsed:.0f}",
            f"{statistics.median(latencies):.0f}",
            f"{latencies[int(len(latencies) * 0.99) - 1]:.0f}",
            f"{max(latencies):.0f}",
        ]
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)


def main() -> None:
    import tempfile

    redis_url = os.environ.get("POSTROOM_BENCH_REDIS_URL") or os.environ.get(
        "POSTROOM_TEST_REDIS_URL", "redis://127.0.0.1:6379/13"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp, local_dns() as dns:
        for workers in (1, 2):
            with fresh_database() as url:
                rows.append(run_case(url, redis_url, workers, Path(tmp), dns))
    print(
        table(
            f"end to end, SMTP in → IMAP EXISTS, {RATE} msg/s steady, 1 KiB",
            ["workers", "messages", "msg/s", "p50 ms", "p99 ms", "max ms"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
