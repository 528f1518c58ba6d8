"""smtp-in acceptance rate with the durable spool, side by side with Postfix on the same load.

Postfix's own load generator, smtp-source, sends the same messages (one SMTP session per
message, 1 and 20 at a time, 1 KiB and 100 KiB) to smtp-in and to a Postfix instance this
benchmark configures in a temporary directory on a loopback port. Postfix answers 250 once its
queue file is written and fsynced; smtp-in once the message is committed in Postgres.

Two more tables, at 20 sessions and 1 KiB, every message DKIM-signed (the same file each
time, ``smtp-source -F``), all DNS answers from a local dnsmasq: smtp-in with its sender
checks (SPF, DKIM, DMARC, ARC) against smtp-in without, alternating; and smtp-in with the
checks and rspamd against Postfix with rspamd's milter proxy (the standard setup), both
using one rspamd. With them, smtp-in's CPU per message (its process's user + system time
over the run), and the checks' CPU per message measured in-process (``time.process_time``),
both less sensitive to a busy machine than a rate. ``POSTROOM_BENCH_SMTP=checks`` runs these
tables alone; ``POSTROOM_BENCH_CHECKED_MESSAGES`` (2000) sets the messages per run.
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
from typing import Any

from postroom import store
from postroom.db import connect

try:
    from bench.common import fresh_database, local_dns, table
except ModuleNotFoundError:  # run as a script from bench/
    from common import (  # type: ignore[no-redef,import-not-found]
        fresh_database,
        local_dns,
        table,
    )

DOMAIN = "bench.test"
RECIPIENT = f"user@{DOMAIN}"
SENDER = "sender@source.test"
# Per run of the checks tables (20 sessions, 1 KiB, signed); POSTROOM_BENCH_CHECKED_MESSAGES
# sets fewer for a quick look. POSTROOM_BENCH_SMTP=checks runs the checks tables alone.
CHECKED_MESSAGES = int(os.environ.get("POSTROOM_BENCH_CHECKED_MESSAGES", "2000"))
ONLY = os.environ.get("POSTROOM_BENCH_SMTP", "")
CPU_MESSAGES = 300  # checked in-process for the CPU time per message
CASES = [(1024, 1, 1500), (1024, 20, 3000), (100 * 1024, 1, 800), (100 * 1024, 20, 1500)]


PIDS: dict[int, int] = {}  # smtp-in's process by its port


def process_cpu(port: int) -> float:
    """CPU seconds (user + system) the smtp-in process on ``port`` has used so far."""
    import psutil

    times = psutil.Process(PIDS[port]).cpu_times()
    return float(times.user + times.system)


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
def smtp_in(url: str, tmp: Path, **settings: str) -> Iterator[int]:
    """smtp-in as a process; ``settings`` are more POSTROOM_* variables (lower-case names)."""
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
        **{f"POSTROOM_{k.upper()}": v for k, v in settings.items()},
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "postroom.smtp_in"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        PIDS[port] = proc.pid
        yield port
    finally:
        PIDS.pop(port, None)
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


MILTER_CF = """\
smtpd_milters = inet:127.0.0.1:{port}
non_smtpd_milters = inet:127.0.0.1:{port}
milter_protocol = 6
milter_default_action = accept
milter_mail_macros = i {{mail_addr}} {{client_addr}} {{client_name}} {{auth_authen}}
"""


@contextmanager
def postfix(tmp: Path, name: str = "postfix", milter: int | None = None) -> Iterator[int]:
    """A Postfix of its own: config and queue under ``tmp``, smtpd on a loopback port;
    ``milter``: rspamd's proxy port, asked about every message."""
    port = free_port()
    conf = tmp / name
    conf.mkdir()
    queue, data = tmp / f"{name}-queue", tmp / f"{name}-data"
    queue.mkdir()
    data.mkdir()
    shutil.chown(data, "postfix")
    main_cf = MAIN_CF.format(queue=queue, data=data, domain=DOMAIN)
    if milter is not None:
        main_cf += MILTER_CF.format(port=milter)
    (conf / "main.cf").write_text(main_cf)
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


def load(port: int, size: int, sessions: int, messages: int, file: Path | None = None) -> float:
    """Messages per second smtp-source got accepted (``file``: send that message)."""
    content = ["-F", str(file)] if file is not None else ["-l", str(size)]
    start = time.perf_counter()
    done = subprocess.run(
        ["smtp-source", "-s", str(sessions), *content, "-m", str(messages),
         "-f", SENDER, "-t", RECIPIENT, f"127.0.0.1:{port}"],
        check=False, capture_output=True, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"smtp-source failed: {(done.stdout + done.stderr).decode()[-500:]}")
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


def signed_message(tmp: Path) -> tuple[Path, list[object]]:
    """A 1 KiB message from SENDER, DKIM-signed, and the DNS records that make it pass SPF,
    DKIM and DMARC (p=reject) for a client on 127.0.0.1."""
    from tests.dns_server import Record, txt
    from tests.mailauth_support import SigningKey

    key = SigningKey.rsa()
    body = ("The quarterly figures are attached below, as discussed on Monday. " * 14)[:900]
    raw = (
        f"From: Sender <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: Figures\r\n"
        "Date: Wed, 02 Dec 2026 08:00:00 +0000\r\nMessage-ID: <bench-1@source.test>\r\n"
        f"\r\n{body}\r\n"
    ).encode()
    path = tmp / "signed.eml"
    # smtp-source sends each line of the file with CRLF: the file has bare LFs.
    path.write_bytes(key.sign(raw, "source.test", "bench").replace(b"\r\n", b"\n"))
    records: list[object] = [
        txt("source.test", "v=spf1 ip4:127.0.0.1 -all"),
        txt("bench._domainkey.source.test", key.record),
        txt("_dmarc.source.test", "v=DMARC1; p=reject"),
        Record("source.test", "MX", "10 mx.source.test."),
    ]
    return path, records


async def cpu_per_message(message: bytes, dns: str) -> float:
    """CPU seconds one message's sender checks take in smtp-in's code (no SMTP, no store):
    less sensitive to a busy machine than a rate."""
    from postroom.config import load_settings
    from postroom.smtp_in.checks import InboundChecks

    settings = load_settings(
        {"POSTROOM_HOSTNAME": "bench-smtp-in.test", "POSTROOM_DNS_RESOLVERS": dns}
    )
    checks = InboundChecks(settings)
    args: dict[str, Any] = {
        "client_ip": "127.0.0.1", "helo": "client.source.test", "mail_from": SENDER,
        "recipients": [RECIPIENT],
    }  # fmt: skip
    for _ in range(20):  # warm up: DNS answers cached
        verdict = await checks.check(message, **args)
    assert verdict.checks, "no checks ran"
    assert verdict.checks["auth_summary"]["dmarc"] == "pass", verdict.checks
    started = time.process_time()
    for _ in range(CPU_MESSAGES):
        await checks.check(message, **args)
    return (time.process_time() - started) / CPU_MESSAGES


def measured(port: int, messages: int, file: Path) -> tuple[float, float]:
    """The rate of a 20-session, 1 KiB run of ``file``, and smtp-in's CPU seconds per message."""
    before = process_cpu(port)
    rate = load(port, 1024, 20, messages, file)
    return rate, (process_cpu(port) - before) / messages


def checks_tables(url: str, tmp: Path) -> list[str]:
    """Sender checks on against off; with rspamd, smtp-in against Postfix's milter setup."""
    from tests.rspamd_server import start_rspamd

    signed, records = signed_message(tmp)
    n = CHECKED_MESSAGES
    with local_dns(records) as dns:
        rates: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
        for _ in range(2):  # alternate, so both see the same machine
            for mode in ("off", "on"):
                with smtp_in(url, tmp, dns_resolvers=dns, sender_checks=str(mode == "on")) as port:
                    load(port, 1024, 4, 200, signed)  # warm up (and fill the DNS cache)
                    rates[mode].append(measured(port, n, signed))
        rows_checks: list[list[object]] = [
            [i + 1, f"{off:.0f}", f"{on:.0f}", f"{on / off:.2f}",
             f"{off_cpu * 1000:.2f}", f"{on_cpu * 1000:.2f}", f"{off_cpu / on_cpu:.2f}"]
            for i, ((off, off_cpu), (on, on_cpu)) in enumerate(
                zip(rates["off"], rates["on"], strict=True)
            )
        ]  # fmt: skip
        cpu = asyncio.run(cpu_per_message(signed.read_bytes().replace(b"\n", b"\r\n"), dns))
        rows_rspamd: list[list[object]] = []
        with start_rspamd(tmp / "rspamd", dns=dns, proxy=True) as rspamd:
            for i in range(2):
                with smtp_in(url, tmp, dns_resolvers=dns, rspamd_url=rspamd.url) as port:
                    load(port, 1024, 4, 200, signed)
                    ours, ours_cpu = measured(port, n, signed)
                with postfix(tmp, f"postfix-milter{i}", milter=rspamd.proxy_port) as port:
                    load(port, 1024, 4, 200, signed)
                    theirs = load(port, 1024, 20, n, signed)
                rows_rspamd.append(
                    [i + 1, f"{ours:.0f}", f"{theirs:.0f}", f"{ours / theirs:.2f}",
                     f"{ours_cpu * 1000:.2f}"]
                )  # fmt: skip
    return [
        table(
            f"CPU per message of the sender checks in-process (time.process_time, {CPU_MESSAGES}"
            " checks of the signed message, DNS cached)",
            ["checks", "ms CPU per message"],
            [["SPF, DKIM, DMARC, ARC", f"{cpu * 1000:.3f}"]],
        ),
        table(
            "smtp-in sender checks (SPF, DKIM, DMARC, ARC): messages/s, 20 sessions, 1 KiB signed",
            ["run", "checks off", "checks on", "ratio", "ms CPU off", "ms CPU on", "CPU ratio"],
            rows_checks,
        ),
        table(
            "with rspamd: smtp-in (checks + /checkv2) vs Postfix (rspamd milter proxy), msg/s",
            ["run", "smtp-in", "postfix", "ratio", "smtp-in ms CPU"],
            rows_rspamd,
        ),
    ]


def main() -> None:
    if not shutil.which("smtp-source") or not shutil.which("postfix"):
        print("bench_smtp: needs Postfix's smtp-source and postfix (Debian package postfix)")
        return
    rows: list[list[object]] = []
    extra: list[str] = []
    with (
        fresh_database() as url,
        tempfile.TemporaryDirectory(prefix="bench-smtp-") as name,
        local_dns() as dns,
    ):
        tmp = Path(name)
        os.chmod(tmp, 0o755)  # noqa: S103 - Postfix's daemons must reach their queue
        asyncio.run(prepare(url))
        if ONLY == "checks":
            for text in checks_tables(url, tmp):
                print(text, end="\n\n")
            return
        results: dict[tuple[int, int], list[float]] = {}
        # As Postfix here: no sender checks (the tables below have them).
        with smtp_in(url, tmp, dns_resolvers=dns, sender_checks="false") as port:
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
        if shutil.which("rspamd") and shutil.which("dnsmasq"):
            extra = checks_tables(url, tmp)
        else:
            extra = ["bench_smtp: the checks tables need rspamd and dnsmasq (Debian packages)"]
    print(
        table(
            "smtp-in vs Postfix: messages/s accepted (smtp-source, one session per message)",
            ["size", "sessions", "smtp-in", "postfix", "ratio"],
            rows,
        )
    )
    for text in extra:
        print()
        print(text)


if __name__ == "__main__":
    main()
