"""Kill -9 smtp-in at random points of many transactions: nothing acknowledged is missing."""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from postroom.db import Conn
from postroom.store.queue import list_queue
from tests.integration.smtp_in.conftest import HOSTNAME
from tests.integration.smtp_in.transcript import Transcript
from tests.support import Tenant

ROUNDS = 6
CLIENTS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    """``python -m postroom.smtp_in`` on free ports, started and killed at will."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.port = int(env["POSTROOM_SMTP_PORT"])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "postroom.smtp_in"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 30
        # Ready when it says so on its log; the rest of the log is drained in the background.
        for line in self.proc.stderr:
            if b"smtp.started" in line:
                break
            assert time.monotonic() < deadline, "smtp-in did not start"
        else:
            raise AssertionError(f"smtp-in exited with {self.proc.wait()}")
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(20)


@pytest.fixture
def process(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Process]:
    env = {
        **os.environ,
        "POSTROOM_DATABASE_URL": database_url,
        "POSTROOM_REDIS_URL": redis_url,
        "POSTROOM_HOSTNAME": HOSTNAME,
        "POSTROOM_BIND_ADDRESS": "127.0.0.1",
        "POSTROOM_DATA_DIR": str(tmp_path),
        "POSTROOM_SMTP_PORT": str(free_port()),
        "POSTROOM_SUBMISSION_PORT": str(free_port()),
        "POSTROOM_SUBMISSIONS_PORT": str(free_port()),
        "POSTROOM_LOG_FORMAT": "json",
        "POSTROOM_LOG_LEVEL": "INFO",
    }
    proc = Process(env)
    yield proc
    if proc.proc is not None and proc.proc.poll() is None:
        proc.kill()


def client(port: int, rcpt: str, acknowledged: list[str], stop: threading.Event) -> None:
    """Send messages until the server dies; note each Message-ID whose 250 arrived."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            while not stop.is_set():
                mid = f"<{secrets.token_hex(8)}@crash.test>"
                body = f"Message-ID: {mid}\r\nSubject: crash\r\n\r\n" + "x" * random.randint(
                    10, 20000
                )
                smtp.sendmail("sender@crash.test", [rcpt], body.encode())
                acknowledged.append(mid)
    except (smtplib.SMTPException, OSError):
        return


async def test_kill_9_never_loses_an_acknowledged_message(
    process: Process, tenant: Tenant, conn: Conn
) -> None:
    await tenant.account("alice")
    rcpt = tenant.address("alice")
    acknowledged: list[str] = []
    rng = random.Random()
    for _ in range(ROUNDS):
        process.start()
        stop = threading.Event()
        threads = [
            threading.Thread(target=client, args=(process.port, rcpt, acknowledged, stop))
            for _ in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        # A random moment in the middle of many transactions (not a wait for anything).
        await asyncio.sleep(rng.uniform(0.1, 0.8))
        process.kill()
        stop.set()
        for thread in threads:
            thread.join(15)
    assert len(acknowledged) > ROUNDS * CLIENTS
    queued = {e.message.message_id for e in await list_queue(conn, limit=1_000_000)}
    missing = [mid for mid in acknowledged if mid not in queued]
    assert missing == []


def test_sigterm_closes_idle_sessions_with_421_and_exits_0(process: Process) -> None:
    process.start()
    t = Transcript(process.port).greeting()
    t.send("EHLO client.example").expect("250 ")
    assert process.terminate() == 0
    t.expect_exactly("421 4.3.2 Service shutting down, closing connection")
    assert t.closed()
    t.close()
