"""The chaos property: 500 messages over 8 SMTP sessions while a delivery worker is SIGKILLed,
smtp-in is SIGKILLed, Redis is flushed and Postgres is restarted (a crash restart of a cluster
of the test's own); afterwards every message acknowledged with 250 is in its mailbox once."""

from __future__ import annotations

import contextlib
import email
import os
import shutil
import signal
import smtplib
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.e2e.conftest import PORTS, Stack, free_port, wait_until
from tests.e2e.test_mail_path import add_users, inbox_raw, message

pytestmark = pytest.mark.e2e

MESSAGES = 500
SESSIONS = 8
# The machine's PostgreSQL server binaries (Debian's layout, newest version).
PG_BIN = max(
    Path("/usr/lib/postgresql").glob("*/bin"),
    key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    default=Path("/usr/lib/postgresql/missing/bin"),
)


def as_postgres(argv: list[str]) -> list[str]:
    """Postgres refuses to run as root: run its tools as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@dataclass
class Postgres:
    """A cluster of this test's own, so that restarting it disturbs nobody else."""

    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def ctl(self, *args: str) -> None:
        subprocess.run(
            as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", *args]),
            check=True, capture_output=True, timeout=90,
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data}"
        self.ctl("-o", options, "-l", str(self.data / "log"), "start")

    def crash_restart(self) -> None:
        """Stop without a clean shutdown (crash recovery at start), then start again."""
        self.ctl("-m", "immediate", "stop")
        self.start()


@pytest.fixture
def own_postgres() -> Iterator[Postgres]:
    if not (PG_BIN / "initdb").exists():
        raise AssertionError(f"the chaos test needs PostgreSQL's initdb in {PG_BIN}")
    data = Path(tempfile.mkdtemp(prefix="postroom-chaos-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    subprocess.run(
        as_postgres(
            [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-N"]
        ),
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    pg = Postgres(data, free_port())
    pg.start()
    try:
        yield pg
    finally:
        subprocess.run(
            as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def chaos_stack(
    own_postgres: Postgres, e2e_redis: str, tmp_path: Path
) -> Iterator[tuple[Stack, Postgres]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    env.update(
        POSTROOM_DATABASE_URL=own_postgres.url,
        POSTROOM_REDIS_URL=e2e_redis,
        POSTROOM_DATA_DIR=str(tmp_path / "data"),
        POSTROOM_BIND_ADDRESS="127.0.0.1",
        POSTROOM_HOSTNAME="mx.chaos.test",
        POSTROOM_SWEEP_INTERVAL="1",
        # Short, so that the killed worker's deliveries come back within the test's minute.
        POSTROOM_DELIVERY_LEASE="3",
        POSTROOM_DNS_RESOLVERS=os.environ["POSTROOM_DNS_RESOLVERS"],
        POSTROOM_LOG_LEVEL="WARNING",
    )
    for name in PORTS:
        env[f"POSTROOM_{name}_PORT"] = str(free_port())
    stack = Stack(env, workers=2)
    stack.start()
    try:
        yield stack, own_postgres
    finally:
        stack.stop()


@dataclass
class Sender:
    """One SMTP session after another: each message is sent until a 250 acknowledges it,
    every attempt with a Message-ID of its own (an attempt whose 250 was lost may land too)."""

    port: int
    jobs: list[str]
    acked: dict[str, str] = field(default_factory=dict)  # Message-ID -> recipient
    retries: int = 0

    def run(self) -> None:
        smtp: smtplib.SMTP | None = None
        deadline = time.monotonic() + 90
        for to in self.jobs:
            while time.monotonic() < deadline:
                raw = message("chaos@remote.example", to, "chaos")
                try:
                    if smtp is None:
                        smtp = smtplib.SMTP("127.0.0.1", self.port, timeout=10)
                    smtp.sendmail("chaos@remote.example", [to], raw)
                except (smtplib.SMTPException, OSError):
                    self.retries += 1
                    if smtp is not None:
                        with contextlib.suppress(OSError):
                            smtp.close()
                    smtp = None
                    time.sleep(0.2)
                    continue
                self.acked[str(email.message_from_bytes(raw)["Message-ID"])] = to
                break
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()


def test_every_acknowledged_message_is_delivered_exactly_once_through_chaos(
    chaos_stack: tuple[Stack, Postgres],
) -> None:
    stack, postgres = chaos_stack
    _, users = add_users(postgres.url, *(f"c{i}" for i in range(5)))
    jobs = [users[n % len(users)] for n in range(MESSAGES)]
    senders = [Sender(stack.port("smtp"), jobs[i::SESSIONS]) for i in range(SESSIONS)]
    threads = [threading.Thread(target=s.run) for s in senders]
    for thread in threads:
        thread.start()

    def acked() -> int:
        return sum(len(s.acked) for s in senders)

    def at(count: int, what: str, action: Callable[[], None]) -> None:
        wait_until(lambda: acked() >= count, 60, f"{count} acknowledged messages")
        action()

    at(MESSAGES // 5, "worker", lambda: os.kill(stack.pid_of("worker-1"), signal.SIGKILL))
    at(2 * MESSAGES // 5, "smtp-in", lambda: os.kill(stack.pid_of("smtp-in"), signal.SIGKILL))

    def flush() -> None:
        url = stack.env["POSTROOM_REDIS_URL"].replace("redis+socket://", "unix://")
        client = redis.Redis.from_url(url)
        client.flushdb()
        client.close()

    at(3 * MESSAGES // 5, "redis", flush)
    at(4 * MESSAGES // 5, "postgres", postgres.crash_restart)
    for thread in threads:
        thread.join(120)
    sent = {mid: to for s in senders for mid, to in s.acked.items()}
    assert len(sent) == MESSAGES

    def delivered() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for user in users:
            for raw in inbox_raw(postgres.url, user):
                mid = str(email.message_from_bytes(raw)["Message-ID"])
                found.setdefault(mid, []).append(user)
        return found

    wait_until(lambda: set(sent) <= set(delivered()), 60, "every acknowledged message")
    time.sleep(2)  # a duplicate, if any, would land now
    found = delivered()
    doubled = {mid: where for mid, where in found.items() if mid in sent and len(where) != 1}
    assert doubled == {}
    assert all(found[mid] == [to] for mid, to in sent.items())
    output = stack.output()
    assert "worker-1 | exited with -9" in output
    assert "smtp-in | exited with -9" in output
