"""`postroom up`: the stack as supervised child processes, stopped cleanly, one per data dir."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from postroom import store
from postroom.db import connect

POSTROOM = str(Path(sys.executable).with_name("postroom"))
PORT_SETTINGS = (
    "SMTP", "SUBMISSION", "SUBMISSIONS", "POP3", "POP3S", "IMAP", "IMAPS", "MANAGESIEVE", "HTTP",
    "METRICS",
)  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Up:
    """A running `postroom up` whose output is collected line by line."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [POSTROOM, "up", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                seen += 1
                if match := re.search(pattern, line):
                    return match
            if self.process.poll() is not None and seen == len(self.lines):
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(self.lines[-60:]))

    def children(self) -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = proc.info["cmdline"] or []
            if (
                any(part.startswith("postroom.") for part in cmdline)
                and proc.pid != self.process.pid
            ):
                try:
                    if os.getsid(proc.pid) != os.getsid(self.process.pid):
                        found.append(proc)
                except ProcessLookupError:
                    continue
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    env["POSTROOM_DATA_DIR"] = str(tmp_path / "data")
    env["POSTROOM_BIND_ADDRESS"] = "127.0.0.1"
    env["POSTROOM_HOSTNAME"] = "mx.test"
    env["POSTROOM_DNS_RESOLVERS"] = os.environ["POSTROOM_DNS_RESOLVERS"]
    for name in PORT_SETTINGS:
        env[f"POSTROOM_{name}_PORT"] = str(free_port())
    env.update(extra)
    return env


@pytest.fixture
def stack(tmp_path: Path, database_url: str, redis_url: str) -> Iterator[tuple[Up, dict[str, str]]]:
    env = environment(tmp_path, POSTROOM_DATABASE_URL=database_url, POSTROOM_REDIS_URL=redis_url)
    up = Up(["--demo"], env)
    try:
        yield up, env
    finally:
        up.stop()


def test_up_says_where_it_listens_and_starts_every_service(
    stack: tuple[Up, dict[str, str]],
) -> None:
    up, env = stack
    up.wait_for(rf"SMTP \(MX\)\s+127\.0\.0\.1:{env['POSTROOM_SMTP_PORT']}")
    for service in ("smtp-in", "worker-1", "beat", "access", "api"):
        up.wait_for(rf"^\s*{service} \| started \(pid \d+\)")


def test_demo_creates_two_users_whose_passwords_work(stack: tuple[Up, dict[str, str]]) -> None:
    up, env = stack
    alice = up.wait_for(r"(alice@example\.test)\s+password (\S+)")
    bob = up.wait_for(r"(bob@example\.test)\s+password (\S+)")

    async def check() -> None:
        conn = await connect(env["POSTROOM_DATABASE_URL"], autocommit=True)
        try:
            account = await store.authenticate(conn, alice[1], alice[2])
            assert account.is_admin
            await store.authenticate(conn, bob[1], bob[2])
        finally:
            await conn.close()

    asyncio.run(check())


def test_second_up_on_the_same_data_dir_refuses(
    stack: tuple[Up, dict[str, str]], tmp_path: Path
) -> None:
    up, env = stack
    up.wait_for(r"started \(pid")
    second = subprocess.run(
        [POSTROOM, "up"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert second.returncode == 1
    assert second.stderr.startswith("postroom: error: another `postroom up` is already running")


def test_a_dead_child_is_restarted(stack: tuple[Up, dict[str, str]]) -> None:
    up, _ = stack
    pid = int(up.wait_for(r"^\s*beat \| started \(pid (\d+)\)")[1])
    os.kill(pid, signal.SIGKILL)
    up.wait_for(r"^\s*beat \| exited with -9; restarting in 1s")
    new_pid = int(up.wait_for(rf"^\s*beat \| started \(pid (?!{pid}\))(\d+)\)")[1])
    assert new_pid != pid


def test_sigterm_stops_everything_without_orphans(stack: tuple[Up, dict[str, str]]) -> None:
    up, _ = stack
    services = ("smtp-in", "worker-1", "beat", "access", "api")
    pids = [int(up.wait_for(rf"^\s*{s} \| started \(pid (\d+)\)")[1]) for s in services]
    time.sleep(1)
    started = time.monotonic()
    os.kill(up.process.pid, signal.SIGTERM)
    assert up.process.wait(timeout=30) == 0
    assert time.monotonic() - started < 15
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_children_die_with_a_killed_runner(stack: tuple[Up, dict[str, str]]) -> None:
    up, _ = stack
    pid = int(up.wait_for(r"^\s*beat \| started \(pid (\d+)\)")[1])
    os.kill(up.process.pid, signal.SIGKILL)
    up.process.wait()
    deadline = time.monotonic() + 15
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "a child outlived its runner"
        time.sleep(0.1)


def test_embedded_servers_and_the_cli_find_them(tmp_path: Path) -> None:
    env = environment(tmp_path)
    up = Up(["--workers", "1"], env)
    try:
        up.wait_for(r"Ctrl-C stops everything", timeout=120)
        cli_env = {k: v for k, v in env.items() if k != "POSTROOM_DATABASE_URL"}
        added = subprocess.run(
            [POSTROOM, "domain", "add", "embedded.test"], env=cli_env, capture_output=True,
            text=True, timeout=60, check=False,
        )  # fmt: skip
        assert (added.returncode, added.stdout) == (0, "added domain embedded.test\n"), added.stderr
        os.kill(up.process.pid, signal.SIGINT)
        assert up.process.wait(timeout=60) == 0
    finally:
        up.stop()
    assert not (tmp_path / "data" / "run" / "database_url").exists()
