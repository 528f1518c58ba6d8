"""``python -m postroom.access`` serves POP3 and POP3S and stops cleanly on SIGTERM; its
revocation watcher ends an IMAP session when the account's password changes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import sys
from pathlib import Path

import pytest

from postroom import store
from postroom.db import connect
from tests.support import Tenant


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


def process_env(database_url: str, tmp_path: Path, **ports: int) -> dict[str, str]:
    """The access process's settings: ``ports`` by setting name, the others free ones."""
    names = ("pop3", "pop3s", "imap", "imaps", "managesieve")
    chosen = {name: ports.get(name) or free_port() for name in names}
    return {
        **os.environ,
        "POSTROOM_DATABASE_URL": database_url,
        "POSTROOM_BIND_ADDRESS": "127.0.0.1",
        **{f"POSTROOM_{name.upper()}_PORT": str(port) for name, port in chosen.items()},
        "POSTROOM_DATA_DIR": str(tmp_path),
        "POSTROOM_HOSTNAME": "pop.postroom.test",
    }


@pytest.mark.e2e
async def test_access_process_serves_pop3_and_stops_on_sigterm(
    database_url: str, tmp_path: Path
) -> None:
    pop3, pop3s = free_port(), free_port()
    env = process_env(database_url, tmp_path, pop3=pop3, pop3s=pop3s)
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


@pytest.mark.e2e
async def test_access_process_ends_an_imap_session_when_the_password_changes(
    database_url: str, tenant: Tenant, tmp_path: Path
) -> None:
    alice = await tenant.account("alice", "pw-1")
    imap = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "postroom.access",
        env=process_env(database_url, tmp_path, imap=imap),
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(30):
            assert (await greeting(imap)).startswith(b"* OK")
            reader, writer = await asyncio.open_connection("127.0.0.1", imap)
            await reader.readline()
            writer.write(f"a LOGIN {alice.address} pw-1\r\n".encode())
            while not (line := await reader.readline()).startswith(b"a "):
                pass
            assert line.startswith(b"a OK")
            # The process listens for revocations before it opens its ports.
            conn = await connect(database_url, autocommit=True)
            await store.set_password(conn, alice.address, "pw-2")
            await conn.close()
            assert await reader.readline() == (
                b"* BYE [UNAVAILABLE] Credentials changed, log in again\r\n"
            )
            assert await reader.read() == b""
            writer.close()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(20):
                await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
