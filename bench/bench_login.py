"""Logins: IMAP LOGIN/LOGOUT cycles a second over 10 connections, against Dovecot.

Both servers hold one account whose password is hashed with argon2id (64 MiB, t=3; Dovecot's
hash from ``doveadm pw -s ARGON2ID``, Postroom's from argon2-cffi's defaults). Ten client
threads on loopback each connect, read the greeting, LOGIN, LOGOUT and disconnect, over and
over, for a fixed time. Postroom runs as ``python -m postroom.access``; Dovecot with the
bench's own dovecot.conf (passwd-file), once without an auth cache (its default) and once
with one, as Postroom remembers a verified password for 5 minutes.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from postroom import store
from postroom.db import connect

try:
    from bench.bench_imap import free_port, wait_for_port
    from bench.common import fresh_database, table
except ModuleNotFoundError:  # run as a script from bench/
    from bench_imap import free_port, wait_for_port  # type: ignore[no-redef]
    from common import fresh_database, table  # type: ignore[no-redef]

ADDRESS = "alice@bench.test"
PASSWORD = "bench-password"  # noqa: S105 - a throwaway account of the bench
CONNECTIONS = 10
SECONDS = float(os.environ.get("POSTROOM_BENCH_LOGIN_SECONDS", "15"))


def cycle(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        file = sock.makefile("rb")
        if not file.readline().startswith(b"* OK"):
            raise RuntimeError("no greeting")
        sock.sendall(f'a LOGIN "{ADDRESS}" "{PASSWORD}"\r\n'.encode())
        while not (line := file.readline()).startswith(b"a "):
            if not line:
                raise ConnectionError("closed during LOGIN")
        if not line.startswith(b"a OK"):
            raise RuntimeError(f"LOGIN failed: {line!r}")
        sock.sendall(b"b LOGOUT\r\n")
        while not (line := file.readline()).startswith(b"b "):
            if not line:
                break


def measure(port: int) -> tuple[float, float]:
    """(cycles a second, mean seconds a cycle) over CONNECTIONS threads for SECONDS."""
    cycle(port)  # warm-up: caches, the first argon2
    counts = [0] * CONNECTIONS
    spent = [0.0] * CONNECTIONS
    deadline = time.monotonic() + SECONDS

    def run(i: int) -> None:
        while time.monotonic() < deadline:
            start = time.perf_counter()
            cycle(port)
            spent[i] += time.perf_counter() - start
            counts[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CONNECTIONS)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start
    total = sum(counts)
    return total / elapsed, sum(spent) / max(total, 1)


async def make_account(url: str) -> None:
    conn = await connect(url, autocommit=True)
    try:
        await store.create_domain(conn, "bench.test")
        await store.create_account(conn, ADDRESS, PASSWORD)
    finally:
        await conn.close()


def run_postroom(url: str, tmp: Path) -> tuple[float, float]:
    asyncio.run(make_account(url))
    port = free_port()
    env = {
        **os.environ,
        "POSTROOM_DATABASE_URL": url,
        "POSTROOM_BIND_ADDRESS": "127.0.0.1",
        "POSTROOM_IMAP_PORT": str(port),
        "POSTROOM_IMAPS_PORT": str(free_port()),
        "POSTROOM_MANAGESIEVE_PORT": str(free_port()),
        "POSTROOM_POP3_PORT": str(free_port()),
        "POSTROOM_POP3S_PORT": str(free_port()),
        "POSTROOM_DATA_DIR": str(tmp / "postroom"),
        "POSTROOM_LOG_LEVEL": "WARNING",
        "POSTROOM_HOSTNAME": "bench.test",
    }
    env.pop("POSTROOM_REDIS_URL", None)
    server = subprocess.Popen([sys.executable, "-m", "postroom.access"], env=env)
    try:
        wait_for_port(port)
        return measure(port)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


DOVECOT_CONF = """\
base_dir = {tmp}/run
state_dir = {tmp}/state
log_path = {tmp}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 1
mail_location = maildir:{tmp}/Maildir
auth_cache_size = {cache}
auth_cache_ttl = 5 min
passdb {{
  driver = passwd-file
  args = scheme=ARGON2ID {tmp}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={tmp}/home
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


def run_dovecot(tmp: Path, *, cache: bool) -> tuple[float, float] | str:
    dovecot = shutil.which("dovecot") or "/usr/sbin/dovecot"
    doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
    if not Path(dovecot).exists() or not Path("/usr/lib/dovecot/imap").exists():
        return "dovecot-imapd is not installed"
    folder = tmp / ("dovecot-cache" if cache else "dovecot")
    for sub in ("Maildir/new", "Maildir/cur", "Maildir/tmp", "home"):
        (folder / sub).mkdir(parents=True)
    hashed = subprocess.run(
        [doveadm, "pw", "-s", "ARGON2ID", "-p", PASSWORD],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (folder / "passwd").write_text(f"{ADDRESS}:{hashed}\n")
    user = pwd.getpwnam("nobody")
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)
    folder.chmod(0o755)
    tmp.chmod(0o755)
    port = free_port()
    conf = folder / "dovecot.conf"
    conf.write_text(
        DOVECOT_CONF.format(
            tmp=folder, port=port, uid=user.pw_uid, gid=user.pw_gid, cache="10M" if cache else 0
        )
    )
    os.chown(conf, 0, 0)
    server = subprocess.Popen([dovecot, "-c", str(conf), "-F"])
    try:
        wait_for_port(port)
        return measure(port)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="postroom-bench-login-") as name:
        tmp = Path(name)
        with fresh_database() as url:
            ours = run_postroom(url, tmp)
        theirs = {
            "dovecot (no auth cache, its default)": run_dovecot(tmp, cache=False),
            "dovecot (auth_cache_size = 10M)": run_dovecot(tmp, cache=True),
        }
    rows: list[list[object]] = [["postroom", f"{ours[0]:.1f}", f"{ours[1] * 1000:.0f} ms"]]
    for label, figures in theirs.items():
        if isinstance(figures, str):
            rows.append([label, figures, ""])
        else:
            rows.append([label, f"{figures[0]:.1f}", f"{figures[1] * 1000:.0f} ms"])
    print(
        table(
            f"IMAP LOGIN/LOGOUT over {CONNECTIONS} connections, argon2id, {SECONDS:.0f} s",
            ["server", "cycles/s", "mean cycle"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
