"""The real stack as processes (`postroom up`), on free ports and a database of its own."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import ARGON2_TEST_PARAMETERS, empty_redis, fresh_database

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class Stack:
    """One `postroom up`: its settings, its output, and how to stop it."""

    env: dict[str, str]
    workers: int
    process: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)

    def port(self, name: str) -> int:
        return int(self.env[f"POSTROOM_{name.upper()}_PORT"])

    @property
    def database_url(self) -> str:
        return self.env["POSTROOM_DATABASE_URL"]

    def start(self) -> None:
        self.lines = []
        self.process = subprocess.Popen(
            [POSTROOM, "up", "--workers", str(self.workers)], env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()
        ports = [self.port(p) for p in PORTS]
        wait_until(lambda: all(self._listening(p) for p in ports), 90, "every listener")
        started = {"worker-1", "beat"}
        wait_until(
            lambda: all(any(f"{s} | started" in line for line in self.lines) for s in started),
            60, "the workers",
        )  # fmt: skip

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))

    def _listening(self, port: int) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError("postroom up exited:\n" + "\n".join(self.lines[-40:]))
        with socket.socket() as s:
            s.settimeout(0.2)
            return s.connect_ex(("127.0.0.1", port)) == 0

    def pid_of(self, service: str) -> int:
        for line in reversed(self.lines):
            if f"{service} | started (pid " in line:
                return int(line.rsplit("(pid ", 1)[1].rstrip(")"))
        raise AssertionError(f"{service} never started")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def tls_context(self) -> ssl.SSLContext:
        """A client context that trusts the self-signed pair the stack made."""
        cafile = Path(self.env["POSTROOM_DATA_DIR"]) / "tls" / "cert.pem"
        return ssl.create_default_context(cafile=str(cafile))

    def output(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture(scope="module")
def e2e_database(_servers: dict[str, str]) -> Iterator[str]:
    """A database of this module's own: the stack's sweep sees no other test's queue."""
    with fresh_database(_servers["pg"], "postroom_e2e") as url:
        yield url


@pytest.fixture(scope="module")
def e2e_redis(_servers: dict[str, str]) -> Iterator[str]:
    with empty_redis(_servers["redis"], 1) as url:
        yield url


def stack_env(database_url: str, redis_url: str, data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of a `postroom up` on these servers, on free ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    env.update(
        POSTROOM_DATABASE_URL=database_url,
        POSTROOM_REDIS_URL=redis_url,
        POSTROOM_DATA_DIR=str(data_dir),
        POSTROOM_BIND_ADDRESS="127.0.0.1",
        POSTROOM_HOSTNAME="mx.e2e.test",
        POSTROOM_SWEEP_INTERVAL="1",
        POSTROOM_ARGON2_PARAMETERS=ARGON2_TEST_PARAMETERS,
        # Never the machine's resolver: the tests' own DNS server on loopback.
        POSTROOM_DNS_RESOLVERS=os.environ["POSTROOM_DNS_RESOLVERS"],
    )
    for name in PORTS:
        env[f"POSTROOM_{name}_PORT"] = str(free_port())
    env.update(settings)
    return env


@pytest.fixture(scope="module")
def stack(
    e2e_database: str, e2e_redis: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """One stack with the default settings for the tests of a module that use no other (each
    brings users of a domain of its own): starting one takes seconds. A module that starts
    stacks of its own (``make_stack``) must not use it: they would share the database."""
    started = Stack(stack_env(e2e_database, e2e_redis, tmp_path_factory.mktemp("stack")), 1)
    try:
        started.start()
        yield started
    finally:
        started.stop()


@pytest.fixture
def make_stack(e2e_database: str, e2e_redis: str, tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    stacks: list[Stack] = []

    def make(workers: int = 1, **settings: str) -> Stack:
        env = stack_env(e2e_database, e2e_redis, tmp_path / f"data{len(stacks)}", **settings)
        stack = Stack(env, workers)
        stacks.append(stack)
        stack.start()
        return stack

    yield make
    for stack in stacks:
        stack.stop()
