"""IMAP: SELECT, FETCH, SEARCH TEXT, SORT, THREAD and APPEND, against Dovecot.

Both servers get the same messages (a 10,000-message INBOX by default; set
POSTROOM_BENCH_IMAP_SIZES=10000,100000 for more) and the same minimal client on loopback,
which only frames responses, so the figures are the servers' own; APPEND is also timed with
Python's imaplib, as a new user would. Postroom runs as ``python -m postroom.access``;
Dovecot with a dovecot.conf of the bench's own, a static password and a Maildir. Both run
at once and are measured in turn, A B A B A B (POSTROOM_BENCH_IMAP_ROUNDS, 3), so that a
change in the machine's load falls on both; each figure is the median of its rounds (and
quick operations are repeated within a round). The environment is printed with the table:
Postgres's durability settings and the load average before and after.
"""

from __future__ import annotations

import asyncio
import imaplib
import os
import pwd
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from postroom import store
from postroom.db import connect

try:
    from bench.common import fresh_database, table
except ModuleNotFoundError:  # run as a script from bench/
    from common import fresh_database, table  # type: ignore[no-redef]

ADDRESS = "alice@bench.test"
PASSWORD = "bench-password"  # noqa: S105 - a throwaway account of the bench
RARE_WORD = "xylophonically"
APPENDS = 300
IMAPLIB_APPENDS = 100
WORDS = [
    "mail",
    "server",
    "message",
    "folder",
    "meeting",
    "report",
    "budget",
    "project",
    "invoice",
    "travel",
    "garden",
    "coffee",
    "lunch",
    "schedule",
    "review",
    "draft",
    "update",
    "question",
    "answer",
    "weekend",
    "holiday",
]


def make_messages(count: int, seed: int = 3501) -> list[bytes]:
    """Plain and multipart messages of 1-6 KiB; one in the middle holds the rare word."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(150, 900)))
        if n == count // 2:
            words += " " + RARE_WORD
        head = (
            f"From: Sender {n % 97} <sender{n % 97}@example.test>\r\nTo: {ADDRESS}\r\n"
            f"Subject: {rng.choice(WORDS)} {rng.choice(WORDS)} {n}\r\n"
            f"Date: Thu, 26 Nov 2026 12:{n % 60:02d}:00 +0000\r\n"
            f"Message-ID: <{n}.bench@example.test>\r\nMIME-Version: 1.0\r\n"
        )
        body = "\r\n".join(words[i : i + 72] for i in range(0, len(words), 72)) + "\r\n"
        if n % 3 == 0:
            raw = (
                head + 'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
                "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body + "--b\r\n"
                "Content-Type: text/html; charset=utf-8\r\n\r\n<p>" + body + "</p>\r\n--b--\r\n"
            )
        else:
            raw = head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body
        out.append(raw.encode())
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def last_line(data: bytes) -> bytes:
    end = data.rfind(b"\r\n", 0, len(data) - 2)
    return data[end + 2 :] if end >= 0 else data


class Client:
    """Sends a command and reads until its tagged response; parses nothing else."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=300)
        self.buffer = b""
        self.counter = 0
        self._until(b"* OK")

    def _until(self, marker: bytes) -> bytes:
        while True:
            if self.buffer.endswith(b"\r\n") and last_line(self.buffer).startswith(marker):
                data, self.buffer = self.buffer, b""
                return data
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk

    def command(self, text: str | bytes) -> bytes:
        self.counter += 1
        tag = b"A%d" % self.counter
        line = text.encode() if isinstance(text, str) else text
        self.sock.sendall(tag + b" " + line + b"\r\n")
        response = self._until(tag + b" ")
        last = last_line(response)
        if not last.startswith(tag + b" OK"):
            raise RuntimeError(f"{line[:60]!r} failed: {last!r}")
        return response

    def close(self) -> None:
        self.command("LOGOUT")
        self.sock.close()


def timed(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# How the planner's statistics stand when UID SEARCH TEXT is timed on Postroom (Dovecot has
# none): fresh (ANALYZE just before), stale (taken when the INBOX held a hundredth of its
# messages, autovacuum off since: first round only), absent (deleted, as never analysed).
STATS = ("stale", "absent", "fresh")
SetStats = Callable[[str], bool]


STRESS_BOX = "Stress"
STRESS_MBOX = (
    "From sender@bench.test Thu Nov 26 12:00:00 2026\n"
    "From: Sender <sender@bench.test>\nTo: {address}\nSubject: stress {n}\n"
    "Date: Thu, 26 Nov 2026 12:00:00 +0000\nMessage-ID: <{n}.stress@bench.test>\n\n"
    "A body line for the stress test.\n\n"
)


def stress(port: int, tmp: Path) -> dict[str, float]:
    """imaptest's default command mix, 10 clients, in a mailbox of its own (it expunges):
    only with IMAPTEST=/path/to/imaptest (IMAPTEST_SECS seconds, default 10)."""
    binary = os.environ.get("IMAPTEST", "")
    if not binary:
        return {}
    try:
        from bench.imaptest_run import stress_figures
    except ModuleNotFoundError:  # run as a script from bench/
        from imaptest_run import stress_figures  # type: ignore[no-redef]
    seconds = int(os.environ.get("IMAPTEST_SECS", "10"))
    mbox = tmp / "stress.mbox"
    mbox.write_text("".join(STRESS_MBOX.format(address=ADDRESS, n=n) for n in range(20)))
    done = subprocess.run(
        [binary, "host=127.0.0.1", f"port={port}", f"user={ADDRESS}", f"pass={PASSWORD}",
         f"mbox={mbox}", f"box={STRESS_BOX}", f"secs={seconds}", "clients=10"],
        capture_output=True, text=True, timeout=seconds + 120, check=False,
    )  # fmt: skip
    rate, errors = stress_figures(done.stdout + done.stderr, seconds)
    return {"imaptest stress, 10 clients (ops/s)": rate, "imaptest errors": float(errors)}


def measure(
    port: int, count: int, appends: list[bytes], set_stats: SetStats | None = None
) -> dict[str, float]:
    client = Client(port)
    client.command(f'LOGIN "{ADDRESS}" "{PASSWORD}"')
    client.command("SELECT INBOX")  # warm-up: Dovecot builds its index here
    client.command("FETCH 1:* (FLAGS)")
    out: dict[str, float] = {}
    out["SELECT"] = timed(lambda: client.command("SELECT INBOX"), 7)
    out["FETCH 1:* (FLAGS)"] = timed(lambda: client.command("FETCH 1:* (FLAGS)"), 5)
    last = f"{count - 99}:{count}"
    out["FETCH 100 (ENVELOPE BODYSTRUCTURE)"] = timed(
        lambda: client.command(f"FETCH {last} (ENVELOPE BODYSTRUCTURE)"), 5
    )
    out["FETCH 1:* (UID RFC822.SIZE INTERNALDATE ENVELOPE)"] = timed(
        lambda: client.command("FETCH 1:* (UID RFC822.SIZE INTERNALDATE ENVELOPE)"), 3
    )
    for state in STATS:
        if set_stats is None or set_stats(state):
            out[f"UID SEARCH TEXT rare word, stats {state}"] = timed(
                lambda: client.command(f"UID SEARCH TEXT {RARE_WORD}"), 3
            )
    # RFC 5256: an order read from columns, one compared in Python, and threading.
    for sort_command in (
        "UID SORT (REVERSE ARRIVAL) UTF-8 ALL",
        "UID SORT (SUBJECT) UTF-8 ALL",
        "UID THREAD REFERENCES UTF-8 ALL",
    ):
        out[sort_command.removesuffix(" UTF-8 ALL") + " ALL"] = timed(
            lambda text=sort_command: client.command(text), 3
        )
    start = time.perf_counter()
    for raw in appends:
        client.command(b"APPEND Drafts {%d+}\r\n" % len(raw) + raw)
    out["APPEND (msg/s)"] = len(appends) / (time.perf_counter() - start)
    client.close()
    # imaplib writes the literal and its CRLF separately, after a continuation.
    library = imaplib.IMAP4("127.0.0.1", port, timeout=300)
    library.login(ADDRESS, PASSWORD)
    start = time.perf_counter()
    for raw in appends[:IMAPLIB_APPENDS]:
        library.append("Drafts", None, None, raw)
    out["APPEND imaplib (msg/s)"] = IMAPLIB_APPENDS / (time.perf_counter() - start)
    library.logout()
    return out


async def fill_store(url: str, messages: list[bytes], writers: int = 4) -> None:
    conn = await connect(url, autocommit=True)
    await store.create_domain(conn, "bench.test")
    account = await store.create_account(conn, ADDRESS, PASSWORD)
    box = await store.get_mailbox(conn, account.id, "INBOX")
    assert box is not None
    await store.create_mailbox(conn, account.id, STRESS_BOX)
    # A hundredth first, analysed, then autovacuum off: the statistics stay those of a small
    # mailbox, for the "stale" SEARCH (see STATS).
    first = max(1, len(messages) // 100)
    for raw in messages[:first]:
        await store.append_message(conn, box.id, raw)
    for name in ("messages", "blobs"):
        await conn.execute(f"ANALYZE {name}")
        await conn.execute(f"ALTER TABLE {name} SET (autovacuum_enabled = false)")
    await conn.close()
    # Parsing happens before the append's transaction, so several writers overlap; UIDs are
    # still taken in order by each commit, which is all a mailbox needs.
    rest = messages[first:]
    chunks = [rest[i::writers] for i in range(writers)]

    async def write(batch: list[bytes]) -> None:
        c = await connect(url, autocommit=True)
        for raw in batch:
            await store.append_message(c, box.id, raw)
        await c.close()

    await asyncio.gather(*(write(batch) for batch in chunks))
    c = await connect(url, autocommit=True)
    await c.execute("VACUUM messages")  # the visibility map, not the statistics
    await c.execute("VACUUM blobs")
    await c.close()


def stats_setter(url: str) -> SetStats:
    """Puts the planner's statistics of messages and blobs in a state of STATS; False when
    that state cannot be had any more (stale, once anything has been analysed)."""
    import psycopg

    stale_left = [True]

    def set_stats(state: str) -> bool:
        with psycopg.connect(url, autocommit=True) as conn:
            if state == "stale":
                ok = stale_left[0]
                stale_left[0] = False
                return ok
            if state == "absent":
                for name in ("messages", "blobs"):
                    conn.execute("DELETE FROM pg_statistic WHERE starelid = %s::regclass", (name,))
                    conn.execute(
                        "UPDATE pg_class SET reltuples = -1 WHERE oid = %s::regclass", (name,)
                    )
            else:
                conn.execute("ANALYZE messages")
                conn.execute("ANALYZE blobs")
        return True

    return set_stats


def start_postroom(
    url: str, messages: list[bytes], tmp: Path
) -> tuple[int, subprocess.Popen[bytes]]:
    asyncio.run(fill_store(url, messages))
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
        "POSTROOM_ACCESS_DB_POOL_SIZE": "4",
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
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 1
mail_location = maildir:{tmp}/Maildir
# Dovecot is the only writer: it may trust its index instead of re-reading the directory.
maildir_very_dirty_syncs = yes
passdb {{
  driver = passwd-file
  args = {tmp}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={tmp}/home
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Drafts {{
    auto = create
    special_use = \\Drafts
  }}
  mailbox Stress {{
    auto = create
  }}
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


def start_dovecot(messages: list[bytes], tmp: Path) -> tuple[int, subprocess.Popen[bytes]]:
    dovecot = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not Path(dovecot).exists() or not Path("/usr/lib/dovecot/imap").exists():
        raise SystemExit("dovecot-imapd is not installed (Debian package dovecot-imapd)")
    folder = tmp / "dovecot"
    maildir = folder / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (folder / "home").mkdir()
    for n, raw in enumerate(messages):
        # Maildir keeps LF line ends; Dovecot sends CRLF. ",S=" is the size as Dovecot's own
        # deliveries name it, so it need not stat each file.
        data = raw.replace(b"\r\n", b"\n")
        name = f"{1_700_000_000 + n}.M{n}P1.bench,S={len(data)}:2,"
        (maildir / "cur" / name).write_bytes(data)
    user = pwd.getpwnam("nobody")
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)
    folder.chmod(0o755)
    tmp.chmod(0o755)
    port = free_port()
    conf = folder / "dovecot.conf"
    conf.write_text(
        DOVECOT_CONF.format(
            tmp=folder, port=port, uid=user.pw_uid, gid=user.pw_gid, password=PASSWORD
        )
    )
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
    return port, server


def sizes() -> list[int]:
    text = os.environ.get("POSTROOM_BENCH_IMAP_SIZES", "10000")
    return [int(part) for part in text.split(",") if part.strip()]


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


def main() -> None:
    rounds = int(os.environ.get("POSTROOM_BENCH_IMAP_ROUNDS", "3"))
    for count in sizes():
        messages = make_messages(count)
        with tempfile.TemporaryDirectory(prefix="postroom-bench-imap-") as name:
            tmp = Path(name)
            with fresh_database() as url:
                ours_port, ours_server = start_postroom(url, messages, tmp)
                try:
                    theirs_port, theirs_server = start_dovecot(messages, tmp)
                    try:
                        set_stats = stats_setter(url)
                        before = environment(url)
                        ours: list[dict[str, float]] = []
                        theirs: list[dict[str, float]] = []
                        for n in range(rounds):  # A, B, A, B ...
                            # New messages each round: Postroom stores equal content once.
                            appends = make_messages(APPENDS, seed=7888 + n)
                            ours.append(measure(ours_port, count, appends, set_stats))
                            ours[-1].update(stress(ours_port, tmp))
                            theirs.append(measure(theirs_port, count, appends))
                            theirs[-1].update(stress(theirs_port, tmp))
                        after = environment(url)
                    finally:
                        stop(theirs_server)
                finally:
                    stop(ours_server)
        rows: list[list[object]] = []
        for operation in theirs[0]:
            if not any(operation in r for r in ours):
                continue
            # "stale" statistics exist in the first round only.
            mine = statistics.median(r[operation] for r in ours if operation in r)
            other = statistics.median(r[operation] for r in theirs)
            if operation == "imaptest errors":
                rows.append([operation, f"{mine:.0f}", f"{other:.0f}", ""])
                continue
            rate = operation.endswith("/s)")
            shown = f"{mine:.0f}" if rate else f"{mine * 1000:.1f} ms"
            other_shown = f"{other:.0f}" if rate else f"{other * 1000:.1f} ms"
            # Ratio > 1 means Postroom is slower (for a rate: Dovecot appends faster).
            ratio = other / mine if rate else mine / other
            rows.append([operation, shown, other_shown, f"{ratio:.2f}"])
        print(
            table(
                f"IMAP, {count:,}-message INBOX, {rounds} interleaved rounds, medians"
                " (postroom / dovecot: >1 means slower)",
                ["operation", "postroom", "dovecot", "ratio"],
                rows,
            )
        )
        print(f"before: {before}")
        print(f"after:  {after}")
        print()


if __name__ == "__main__":
    main()
