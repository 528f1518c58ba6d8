"""``python -m postroom.access`` serves POP3 and POP3S and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import sys
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def greeting(port: int, *, tls: bool = False) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the self-signed pair made in the data dir
    for _ in range(100):
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=context if tls else None
            )
        except OSError:
            await asyncio.sleep(0.1)  # the process is still starting
            continue
        line = await reader.readline()
        writer.close()
        return line
    raise AssertionError(f"nothing listens on {port}")


@pytest.mark.e2e
async def test_access_process_serves_pop3_and_stops_on_sigterm(
    database_url: str, tmp_path: Path
) -> None:
    pop3, pop3s = free_port(), free_port()
    env = {
        **os.environ,
        "POSTROOM_DATABASE_URL": database_url,
        "POSTROOM_BIND_ADDRESS": "127.0.0.1",
        "POSTROOM_POP3_PORT": str(pop3),
        "POSTROOM_POP3S_PORT": str(pop3s),
        "POSTROOM_IMAP_PORT": str(free_port()),
        "POSTROOM_IMAPS_PORT": str(free_port()),
        "POSTROOM_MANAGESIEVE_PORT": str(free_port()),
        "POSTROOM_DATA_DIR": str(tmp_path),
        "POSTROOM_HOSTNAME": "pop.postroom.test",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "postroom.access", env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(30):
            assert await greeting(pop3) == b"+OK pop.postroom.test POP3 server ready\r\n"
            assert await greeting(pop3s, tls=True) == (
                b"+OK pop.postroom.test POP3 server ready\r\n"
            )
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            _, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode(errors="replace")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
