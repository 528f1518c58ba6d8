"""swaks, a real SMTP client, against the inbound and submission listeners."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from postroom.db import Conn
from postroom.store.queue import list_queue
from tests.integration.smtp_in.transcript import ServerThread
from tests.support import Tenant

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed"),
]


def swaks(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["swaks", "--silent", "1", *args], capture_output=True, text=True, timeout=60, check=False
    )


async def message_ids(conn: Conn) -> set[str | None]:
    return {e.message.message_id for e in await list_queue(conn, limit=1_000_000)}


async def test_swaks_pipelined_inbound(smtp: ServerThread, tenant: Tenant, conn: Conn) -> None:
    await tenant.account("alice")
    result = swaks(
        "--server", f"127.0.0.1:{smtp.inbound}", "--pipeline",
        "--from", "someone@remote.example", "--to", tenant.address("alice"),
        "--header", "Message-Id: <swaks-inbound@test>", "--body", ".dot line\n..two\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "<swaks-inbound@test>" in await message_ids(conn)


async def test_swaks_refused_relay_exits_with_rcpt_error(smtp: ServerThread) -> None:
    result = swaks(
        "--server", f"127.0.0.1:{smtp.inbound}", "--from", "a@remote.example",
        "--to", "b@elsewhere.example", "--silent", "0",
    )  # fmt: skip
    assert result.returncode == 24  # swaks: error in RCPT TO
    assert "<** 554 5.7.1 Relay access denied" in result.stdout


async def test_swaks_starttls_and_auth_on_submission(
    smtp: ServerThread, tenant: Tenant, conn: Conn, tls_files: tuple[Path, Path]
) -> None:
    alice = await tenant.account("alice", "pw-swaks-1")
    result = swaks(
        "--server", f"127.0.0.1:{smtp.submission}", "--tls", "--auth", "LOGIN",
        "--auth-user", alice.address, "--auth-password", "pw-swaks-1",
        "--from", alice.address, "--to", "friend@remote.example",
        "--header", "Message-Id: <swaks-submission@test>",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "<swaks-submission@test>" in await message_ids(conn)


async def test_swaks_implicit_tls_auth_plain(smtp: ServerThread, tenant: Tenant) -> None:
    alice = await tenant.account("alice", "pw-swaks-2")
    result = swaks(
        "--server", f"127.0.0.1:{smtp.submissions}", "--tlsc", "--auth", "PLAIN",
        "--auth-user", alice.address, "--auth-password", "pw-swaks-2",
        "--from", alice.address, "--to", "friend@remote.example",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
