"""smtp-in's memory under large DATA: many sessions each sending a large message at once.

smtp-source sends POSTROOM_BENCH_MEMORY_SESSIONS (default 50) messages of
POSTROOM_BENCH_MEMORY_MIB (default 50) MiB, all at once, one session each, to a fresh smtp-in
process whose in-flight budget lets every one of them in. The figure is the process's peak
resident set (VmHWM), with the time it took and how many were spooled. DATA goes to files under
the data dir as it arrives and into Postgres as a stream, so the peak should not grow with the
number or the size of the messages.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    from bench.bench_smtp import RECIPIENT, accepted, free_port, prepare, wait_for_port
    from bench.common import fresh_database, table
except ModuleNotFoundError:  # run as a script from bench/
    from bench_smtp import (  # type: ignore[import-not-found,no-redef]
        RECIPIENT,
        accepted,
        free_port,
        prepare,
        wait_for_port,
    )
    from common import fresh_database, table  # type: ignore[no-redef,import-not-found]

MIB = 1024 * 1024


@contextmanager
def smtp_in(url: str, tmp: Path, max_size: int, budget: int) -> Iterator[tuple[int, int]]:
    """(port, pid) of an smtp-in process on a loopback port."""
    port = free_port()
    env = {
        **os.environ,
        "POSTROOM_DATABASE_URL": url,
        "POSTROOM_REDIS_URL": os.environ.get(
            "POSTROOM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"
        ),
        "POSTROOM_HOSTNAME": "bench-memory.test",
        "POSTROOM_BIND_ADDRESS": "127.0.0.1",
        "POSTROOM_DATA_DIR": str(tmp / "smtp-in"),
        "POSTROOM_SMTP_PORT": str(port),
        "POSTROOM_SUBMISSION_PORT": str(free_port()),
        "POSTROOM_SUBMISSIONS_PORT": str(free_port()),
        "POSTROOM_MAX_CONNECTIONS_PER_IP": "200",
        "POSTROOM_MAX_MESSAGE_SIZE": str(max_size),
        "POSTROOM_MAX_INFLIGHT_BYTES": str(budget),
        # smtp-source writes one session's message at a time, so the others wait, silent,
        # after their 354: a real client that slow would be cut off, this one is not.
        "POSTROOM_MIN_DATA_RATE": "1",
        # Sender authentication (DKIM) reads each inbound message whole: it is measured on
        # its own (POSTROOM_BENCH_MEMORY_SENDER_CHECKS=true), bounded by the budget.
        "POSTROOM_SENDER_CHECKS": os.environ.get("POSTROOM_BENCH_MEMORY_SENDER_CHECKS", "false"),
        "POSTROOM_SMTP_TIMEOUT": "1200",
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
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(60)


def status_kib(pid: int, field: str) -> int:
    """A VmRSS/VmHWM figure of /proc/PID/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def main() -> None:
    if not shutil.which("smtp-source"):
        print("bench_memory: needs Postfix's smtp-source (Debian package postfix)")
        return
    sessions = int(os.environ.get("POSTROOM_BENCH_MEMORY_SESSIONS", "50"))
    size = int(os.environ.get("POSTROOM_BENCH_MEMORY_MIB", "50")) * MIB
    with fresh_database() as url, tempfile.TemporaryDirectory(prefix="bench-memory-") as name:
        asyncio.run(prepare(url))
        budget = int(os.environ.get("POSTROOM_BENCH_MEMORY_BUDGET_MIB", "0")) * MIB
        budget = budget or sessions * (size + MIB)
        with smtp_in(url, Path(name), size + MIB, budget) as (port, pid):
            idle = status_kib(pid, "VmRSS")
            start = time.perf_counter()
            result = subprocess.run(
                ["smtp-source", "-s", str(sessions), "-l", str(size), "-m", str(sessions),
                 "-f", "sender@source.test", "-t", RECIPIENT, f"127.0.0.1:{port}"],
                check=False, capture_output=True, text=True, timeout=1800,
            )  # fmt: skip
            refused = [line for line in result.stderr.splitlines() if "smtp-source" in line]
            elapsed = time.perf_counter() - start
            peak = status_kib(pid, "VmHWM")
        spooled = asyncio.run(accepted(url))
    if refused:
        print("smtp-source said:", *refused[:5], sep="\n  ")
    row: list[object] = [
        f"{spooled}/{sessions}",
        f"{elapsed:.1f}",
        f"{idle // 1024} MiB",
        f"{peak // 1024} MiB",
    ]
    print(
        table(
            f"smtp-in memory: {sessions} sessions at once, each one message of {size // MIB} MiB",
            ["spooled", "seconds", "RSS idle", "RSS peak"],
            [row],
        )
    )


if __name__ == "__main__":
    main()
