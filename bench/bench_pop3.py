"""POP3 RETR throughput of a 10,000-message maildrop: Postroom against Dovecot, same messages.

Both servers run at once and are measured in turn, A B A B A B (POSTROOM_BENCH_POP3_ROUNDS,
3): one session RETRs every message; each figure is the median of the rounds. Dovecot's
password is hashed with Argon2id, as Postroom's is; its first, indexing session is not
timed. The environment (Postgres's durability settings, the load average) is printed.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from postroom import store
from postroom.db import connect

try:
    from bench.common import fresh_database, table
except ModuleNotFoundError:  # run as a script from bench/
    from common import fresh_database, table  # type: ignore[no-redef,import-not-found]

MESSAGES = int(os.environ.get("POSTROOM_BENCH_POP3_MESSAGES", "10000"))
ADDRESS = "alice@bench.test"
PASSWORD = "bench-pw"  # noqa: S105 - a throwaway account in a throwaway database


def make_messages(count: int, seed: int = 1939) -> list[bytes]:
    """Mail-like messages of 2 to 50 KiB: a header, text lines, some starting with a dot."""
    rng = random.Random(seed)
    words = [b"postroom", b"mail", b"the", b"quick", b"brown", b"fox", b"jumps", b"over", b"."]
    messages = []
    for n in range(count):
        size = rng.randint(2 * 1024, 50 * 1024)
        head = (
            f"From: Sender {n} <sender{n}@example.test>\r\nTo: {ADDRESS}\r\n"
            f"Subject: benchmark message {n}\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000\r\n"
            f"Message-ID: <{n}.{rng.getrandbits(64):x}@example.test>\r\n\r\n"
        ).encode()
        lines = []
        total = len(head)
        while total < size:
            line = b" ".join(rng.choices(words, k=12)) + b"\r\n"
            lines.append(line)
            total += len(line)
        messages.append(head + b"".join(lines))
    return messages


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(100).startswith(b"+OK"):
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"no POP3 server answered on port {port}")


class Client:
    """A minimal POP3 client that reads whole responses in bulk (not line by line)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""
        self.line()

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._recv()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _recv(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    def command(self, text: str) -> bytes:
        self.sock.sendall(text.encode() + b"\r\n")
        reply = self.line()
        if not reply.startswith(b"+OK"):
            raise RuntimeError(f"{text.split()[0]}: {reply!r}")
        return reply

    def retr(self, number: int) -> int:
        """RETR a message; the octets received, terminator excluded."""
        reply = self.command(f"RETR {number}")
        match = re.match(rb"\+OK (\d+)", reply)
        expected = int(match[1]) if match else 0
        while True:
            end = self.buf.find(b"\r\n.\r\n", max(0, expected - 8))
            if end >= 0 or self.buf.startswith(b".\r\n"):
                break
            self._recv()
        body, self.buf = self.buf[: end + 2], self.buf[end + 5 :]
        return len(body)


def fetch_all(port: int, count: int) -> tuple[float, int]:
    client = Client(port)
    client.command(f"USER {ADDRESS}")
    client.command(f"PASS {PASSWORD}")
    start = time.perf_counter()
    octets = sum(client.retr(n) for n in range(1, count + 1))
    elapsed = time.perf_counter() - start
    client.command("QUIT")
    return elapsed, octets


async def fill_store(url: str, messages: list[bytes]) -> None:
    conn = await connect(url, autocommit=True)
    await store.create_domain(conn, "bench.test")
    account = await store.create_account(conn, ADDRESS, PASSWORD)
    box = await store.get_mailbox(conn, account.id, "INBOX")
    assert box is not None
    for raw in messages:
        await store.append_message(conn, box.id, raw)
    await conn.close()


def start_postroom(
    url: str, messages: list[bytes], tmp: Path
) -> tuple[int, subprocess.Popen[bytes]]:
    asyncio.run(fill_store(url, messages))
    port = free_port()
    env = {
        **os.environ,
        "POSTROOM_DATABASE_URL": url,
        "POSTROOM_BIND_ADDRESS": "127.0.0.1",
        "POSTROOM_POP3_PORT": str(port),
        "POSTROOM_POP3S_PORT": str(free_port()),
        "POSTROOM_IMAP_PORT": str(free_port()),
        "POSTROOM_IMAPS_PORT": str(free_port()),
        "POSTROOM_MANAGESIEVE_PORT": str(free_port()),
        "POSTROOM_DATA_DIR": str(tmp / "postroom"),
        "POSTROOM_LOG_LEVEL": "WARNING",
        "POSTROOM_HOSTNAME": "bench.test",
    }
    server = subprocess.Popen([sys.executable, "-m", "postroom.access"], env=env)
    wait_for_port(port)
    return port, server


def stop(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)


DOVECOT_CONF = """\
base_dir = {tmp}/run
state_dir = {tmp}/state
log_path = {tmp}/dovecot.log
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 1
mail_location = maildir:{tmp}/Maildir
passdb {{
  driver = passwd-file
  args = {tmp}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={tmp}/home
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


def start_dovecot(messages: list[bytes], tmp: Path) -> tuple[int, subprocess.Popen[bytes]] | str:
    dovecot = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not Path(dovecot).exists() or not Path("/usr/lib/dovecot/pop3").exists():
        return "dovecot-pop3d is not installed"
    folder = tmp / "dovecot"
    maildir = folder / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (folder / "home").mkdir()
    for n, raw in enumerate(messages):
        # Maildir keeps LF line ends; Dovecot sends CRLF. Same bytes on the wire.
        (maildir / "cur" / f"{1_700_000_000 + n}.M{n}P1.bench:2,").write_bytes(
            raw.replace(b"\r\n", b"\n")
        )
    user = pwd.getpwnam("nobody")
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)
    folder.chmod(0o755)
    tmp.chmod(0o755)
    port = free_port()
    conf = folder / "dovecot.conf"
    conf.write_text(DOVECOT_CONF.format(tmp=folder, port=port, uid=user.pw_uid, gid=user.pw_gid))
    os.chown(conf, 0, 0)
    # Passwords hashed with Argon2id, as Postroom hashes them.
    hashed = subprocess.run(
        ["doveadm", "pw", "-s", "ARGON2ID", "-p", PASSWORD],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (folder / "passwd").write_text(f"{ADDRESS}:{hashed}\n")
    server = subprocess.Popen([dovecot, "-c", str(conf), "-F"])
    wait_for_port(port)
    fetch_all(port, len(messages))  # the first session builds Dovecot's index: not timed
    return port, server


def environment(url: str) -> str:
    """What the figures depend on besides the code: Postgres durability, the machine's load."""
    import psycopg

    with psycopg.connect(url) as conn:
        settings = [
            f"{name}={conn.execute(f'SHOW {name}').fetchone()[0]}"  # type: ignore[index]
            for name in ("fsync", "synchronous_commit", "full_page_writes")
        ]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"postgres {' '.join(settings)}; load average {load}; {os.cpu_count()} cpus"


def row(name: str, result: tuple[float, int], count: int) -> list[object]:
    elapsed, octets = result
    return [name, count, f"{octets / 1e6:.1f}", f"{elapsed:.2f}",
            f"{octets / elapsed / 1e6:.1f}", f"{count / elapsed:.0f}"]  # fmt: skip


def median_run(results: list[tuple[float, int]]) -> tuple[float, int]:
    return sorted(results)[len(results) // 2]


def main() -> None:
    rounds = int(os.environ.get("POSTROOM_BENCH_POP3_ROUNDS", "3"))
    messages = make_messages(MESSAGES)
    tmp = Path(tempfile.mkdtemp(prefix="postroom-bench-pop3-"))
    ours: list[tuple[float, int]] = []
    theirs: list[tuple[float, int]] = []
    try:
        with fresh_database() as url:
            port, server = start_postroom(url, messages, tmp)
            try:
                dovecot = start_dovecot(messages, tmp)
                try:
                    before = environment(url)
                    for _ in range(rounds):  # A, B, A, B ...
                        ours.append(fetch_all(port, len(messages)))
                        if not isinstance(dovecot, str):
                            theirs.append(fetch_all(dovecot[0], len(messages)))
                    after = environment(url)
                finally:
                    if not isinstance(dovecot, str):
                        stop(dovecot[1])
            finally:
                stop(server)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    postroom = median_run(ours)
    rows = [row("postroom", postroom, len(messages))]
    if isinstance(dovecot, str):
        rows.append(["dovecot", "-", "-", "-", "-", dovecot])
    else:
        other = median_run(theirs)
        rows.append(row("dovecot", other, len(messages)))
        ratio = (postroom[1] / postroom[0]) / (other[1] / other[0])
        rows.append(["postroom / dovecot", "", "", "", f"{ratio:.2f}", ""])
    print(
        table(
            f"POP3 RETR of a {len(messages)}-message maildrop (2-50 KiB), one session,"
            f" {rounds} interleaved rounds, medians",
            ["server", "messages", "MB", "seconds", "MB/s", "msg/s"],
            rows,
        )
    )
    print(f"before: {before}")
    print(f"after:  {after}")


if __name__ == "__main__":
    main()
