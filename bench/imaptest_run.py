"""Dovecot's imaptest against Postroom: the scripted compliance tests, then stress runs.

Builds nothing: give the binary as IMAPTEST=/path/to/imaptest (`make imaptest`); its
scripts are looked for beside it (``tests/``) or in IMAPTEST_TESTS. Postroom runs as
``python -m postroom.access`` on a fresh database with one account whose mail imaptest may
destroy. Prints the scripted result lines, and for each stress run (10 and 50 clients,
IMAPTEST_SECS seconds, default 20) the operations per second and the errors imaptest found.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from postroom import store
from postroom.db import connect

try:
    from bench.bench_imap import free_port, wait_for_port
    from bench.common import fresh_database, table
except ModuleNotFoundError:  # run as a script from bench/
    from bench_imap import free_port, wait_for_port  # type: ignore[no-redef]
    from common import fresh_database, table  # type: ignore[no-redef]

ADDRESS = "imaptest@imaptest.test"
PASSWORD = "imaptest-password"  # noqa: S105 - a throwaway account of this run
# A small message for the stress runs to append (imaptest wants an mbox file).
MBOX = (
    "From sender@imaptest.test Thu Nov 26 12:00:00 2026\n"
    "From: Sender <sender@imaptest.test>\nTo: {address}\nSubject: stress\n"
    "Date: Thu, 26 Nov 2026 12:00:00 +0000\nMessage-ID: <{n}@imaptest.test>\n\n"
    "A body line for the stress test.\n\n"
)


async def make_account(url: str) -> None:
    conn = await connect(url, autocommit=True)
    await store.create_domain(conn, "imaptest.test")
    await store.create_account(conn, ADDRESS, PASSWORD)
    await conn.close()


def imaptest(binary: str, port: int, *args: str, timeout: float) -> str:
    command = [binary, "host=127.0.0.1", f"port={port}", f"user={ADDRESS}", f"pass={PASSWORD}"]
    done = subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    return done.stdout + done.stderr


def stress_figures(output: str, seconds: int) -> tuple[float, int]:
    """(operations per second, errors) of a stress run's output."""
    errors = sum(1 for line in output.splitlines() if line.startswith("Error:"))
    totals = output.rsplit("Totals:", 1)
    if len(totals) < 2:
        return 0.0, errors
    numbers = [line for line in totals[1].splitlines() if re.fullmatch(r"[\d ]+", line.strip())]
    operations = sum(int(n) for n in numbers[-1].split()) if numbers else 0
    return operations / seconds, errors


def main() -> None:
    binary = os.environ.get("IMAPTEST", "")
    if not binary or not Path(binary).is_file():
        sys.exit("give the imaptest binary as IMAPTEST=/path/to/imaptest (this builds nothing)")
    tests = os.environ.get("IMAPTEST_TESTS") or str(Path(binary).resolve().parent / "tests")
    if not Path(tests).is_dir():
        sys.exit(f"no imaptest scripts in {tests}; set IMAPTEST_TESTS")
    seconds = int(os.environ.get("IMAPTEST_SECS", "20"))
    with tempfile.TemporaryDirectory(prefix="postroom-imaptest-") as name, fresh_database() as url:
        tmp = Path(name)
        asyncio.run(make_account(url))
        mbox = tmp / "stress.mbox"
        mbox.write_text("".join(MBOX.format(address=ADDRESS, n=n) for n in range(20)))
        port = free_port()
        env = {
            **os.environ,
            "POSTROOM_DATABASE_URL": url,
            "POSTROOM_BIND_ADDRESS": "127.0.0.1",
            "POSTROOM_IMAP_PORT": str(port),
            "POSTROOM_IMAPS_PORT": str(free_port()),
            "POSTROOM_POP3_PORT": str(free_port()),
            "POSTROOM_POP3S_PORT": str(free_port()),
            "POSTROOM_MANAGESIEVE_PORT": str(free_port()),
            "POSTROOM_DATA_DIR": str(tmp / "postroom"),
            "POSTROOM_LOG_LEVEL": "WARNING",
            "POSTROOM_HOSTNAME": "imaptest.test",
            # imaptest's stress runs are many sessions of one account from one address.
            "POSTROOM_IMAP_MAX_SESSIONS_PER_ACCOUNT": "100",
            "POSTROOM_MAX_CONNECTIONS_PER_IP": "200",
        }
        server = subprocess.Popen([sys.executable, "-m", "postroom.access"], env=env)
        try:
            wait_for_port(port)
            scripted = imaptest(binary, port, f"test={tests}", timeout=900)
            summary = [
                line
                for line in scripted.splitlines()
                if "test groups:" in line or "individual commands failed" in line
            ]
            failures = [line for line in scripted.splitlines() if line.startswith("*** Test")]
            print("imaptest scripted tests against Postroom")
            for line in failures:
                print("  " + line)
            for line in summary:
                print("  " + line)
            print()
            rows: list[list[object]] = []
            for clients in (10, 50):
                output = imaptest(
                    binary,
                    port,
                    f"mbox={mbox}",
                    f"secs={seconds}",
                    f"clients={clients}",
                    timeout=seconds + 120,
                )
                rate, errors = stress_figures(output, seconds)
                rows.append([clients, f"{rate:.1f}", errors])
                shown = sorted({line for line in output.splitlines() if line.startswith("Error:")})
                for line in shown[:5]:
                    print(f"  {clients} clients: {line[:160]}")
            print(
                table(
                    f"imaptest stress, default command mix, {seconds} s",
                    ["clients", "operations/s", "errors"],
                    rows,
                )
            )
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
