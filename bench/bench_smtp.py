"""smtp-in acceptance rate with the durable spool, side by side with Postfix on the same load.

Postfix's own load generator, smtp-source, sends the same messages (one SMTP session per
message, 1 and 20 at a time, 1 KiB and 100 KiB) to smtp-in and to a Postfix instance this
benchmark configures in a temporary directory on a loopback port. Postfix answers 250 once its
queue file is written and fsynced; smtp-in once the message is committed in Postgres.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from postroom import store
from postroom.db import connect

try:
    from bench.common import fresh_database, table
except ModuleNotFoundError:  # run as a script from bench/
    from common import fresh_database, table  # type: ignore[no-redef,import-not-found]

DOMAIN = "bench.test"
RECIPIENT = f"user@{DOMAIN}"
CASES = [(1024, 1, 1500), (1024, 20, 3000), (100 * 1024, 1, 800), (100 * 1024, 20, 1500)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.recv(512)  # the greeting
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers on port {port}")


@contextmanager
def smtp_in(url: str, tmp: Path) -> Iterator[int]:
    port = free_port()
    env = {
        **os.environ,
        "POSTROOM_DATABASE_URL": url,
        "POSTROOM_REDIS_URL": os.environ.get(
            "POSTROOM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"
        ),
        "POSTROOM_HOSTNAME": "bench-smtp-in.test",
        "POSTROOM_BIND_ADDRESS": "127.0.0.1",
        "POSTROOM_DATA_DIR": str(tmp / "smtp-in"),
        "POSTROOM_SMTP_PORT": str(port),
        "POSTROOM_SUBMISSION_PORT": str(free_port()),
        "POSTROOM_SUBMISSIONS_PORT": str(free_port()),
        "POSTROOM_MAX_CONNECTIONS_PER_IP": "100",
        "POSTROOM_LOG_FORMAT": "json",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "postroom.smtp_in"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(30)


MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench-postfix.test
mydestination = {domain}
local_recipient_maps =
alias_maps =
alias_database =
local_transport = discard:
default_transport = discard:
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
default_process_limit = 100
maillog_file = /dev/stdout
"""


@contextmanager
def postfix(tmp: Path) -> Iterator[int]:
    """A Postfix of its own: config and queue under ``tmp``, smtpd on a loopback port."""
    port = free_port()
    conf = tmp / "postfix"
    conf.mkdir()
    queue, data = tmp / "postfix-queue", tmp / "postfix-data"
    queue.mkdir()
    data.mkdir()
    shutil.chown(data, "postfix")
    (conf / "main.cf").write_text(MAIN_CF.format(queue=queue, data=data, domain=DOMAIN))
    (conf / "master.cf").write_text(MASTER_CF.format(port=port))
    run = ["postfix", "-c", str(conf)]
    subprocess.run([*run, "check"], check=False, capture_output=True)
    subprocess.run(
        [*run, "start"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        subprocess.run([*run, "stop"], check=False, capture_output=True)
        # postfix stop returns before every child has gone; wait for the master's pid file.
        pid_file = queue / "pid" / "master.pid"
        deadline = time.monotonic() + 15
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)


def load(port: int, size: int, sessions: int, messages: int) -> float:
    """Messages per second smtp-source got accepted."""
    start = time.perf_counter()
    subprocess.run(
        ["smtp-source", "-s", str(sessions), "-l", str(size), "-m", str(messages),
         "-f", "sender@source.test", "-t", RECIPIENT, f"127.0.0.1:{port}"],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return messages / (time.perf_counter() - start)


async def prepare(url: str) -> None:
    conn = await connect(url, autocommit=True)
    await store.create_domain(conn, DOMAIN)
    await store.create_account(conn, RECIPIENT, "bench-password")
    await conn.close()


async def accepted(url: str) -> int:
    conn = await connect(url, autocommit=True)
    cur = await conn.execute("SELECT count(*) AS n FROM queue_messages")
    row = await cur.fetchone()
    await conn.close()
    return int(row["n"]) if row else 0


def main() -> None:
    if not shutil.which("smtp-source") or not shutil.which("postfix"):
        print("bench_smtp: needs Postfix's smtp-source and postfix (Debian package postfix)")
        return
    rows: list[list[object]] = []
    with fresh_database() as url, tempfile.TemporaryDirectory(prefix="bench-smtp-") as name:
        tmp = Path(name)
        os.chmod(tmp, 0o755)  # noqa: S103 - Postfix's daemons must reach their queue
        asyncio.run(prepare(url))
        results: dict[tuple[int, int], list[float]] = {}
        with smtp_in(url, tmp) as port:
            load(port, 1024, 4, 200)  # warm up
            for size, sessions, messages in CASES:
                results[(size, sessions)] = [load(port, size, sessions, messages)]
        expected = 200 + sum(m for _, _, m in CASES)
        spooled = asyncio.run(accepted(url))
        assert spooled == expected, f"{spooled} spooled, {expected} sent"
        with postfix(tmp) as port:
            load(port, 1024, 4, 200)
            for size, sessions, messages in CASES:
                results[(size, sessions)].append(load(port, size, sessions, messages))
        for (size, sessions), (ours, theirs) in results.items():
            rows.append([f"{size // 1024} KiB", sessions, f"{ours:.0f}", f"{theirs:.0f}",
                         f"{ours / theirs:.2f}"])  # fmt: skip
    print(
        table(
            "smtp-in vs Postfix: messages/s accepted (smtp-source, one session per message)",
            ["size", "sessions", "smtp-in", "postfix", "ratio"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
