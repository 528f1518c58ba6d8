"""Real POP3 clients from Debian (mpop, fetchmail) fetch a mailbox in keep and delete mode."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from postroom import store
from tests.integration.access.pop3_support import Pop3Endpoint, in_thread, inbox_of, running_pop3
from tests.support import Tenant

pytestmark = pytest.mark.peer


def sample_messages() -> list[bytes]:
    """Messages with what trips up POP3: dot lines, a ".." line, a long body, 8-bit text."""
    messages = []
    for n in range(6):
        body = b"".join(
            b"%s line %d of message %d\r\n" % (b"." * (i % 3), i, n) for i in range(n * 400)
        )
        messages.append(
            b"From: sender%d@example.test\r\nTo: alice@example.test\r\n"
            b"Subject: message %d \xc3\xa9t\xc3\xa9\r\nMessage-ID: <%d@example.test>\r\n\r\n"
            % (n, n, n)
            + body
            + b".\r\n..\r\nend\r\n"
        )
    return messages


def crlf(data: bytes) -> bytes:
    """Local mail files end lines with LF; the message as served ends them with CRLF."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def digests(messages: list[bytes]) -> list[str]:
    return sorted(hashlib.sha256(m).hexdigest() for m in messages)


@pytest.fixture
async def pop3(database_url: str, tmp_path: Path) -> AsyncIterator[Pop3Endpoint]:
    async with running_pop3(database_url, tmp_path) as endpoint:
        yield endpoint


def need(program: str) -> None:
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed (Debian package {program}, see .ci/apt-packages)")


def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(argv, capture_output=True, timeout=60, check=False, **kw)  # type: ignore[call-overload]
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result  # type: ignore[no-any-return]


def maildir_messages(folder: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((folder / "new").iterdir())]


def mpop(pop3: Pop3Endpoint, address: str, folder: Path, *, keep: bool, tls: bool) -> None:
    for sub in ("new", "cur", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    run(
        [
            "mpop", "--quiet", f"--host={pop3.host}", f"--port={pop3.port}",
            f"--user={address}", "--passwordeval=echo pw-1", "--auth=user",
            f"--tls={'on' if tls else 'off'}", "--tls-starttls=on",
            f"--tls-trust-file={pop3.ca_file}", "--received-header=off",
            f"--keep={'on' if keep else 'off'}", "--only-new=off",
            f"--delivery=maildir,{folder}", f"--uidls-file={folder}.uidls",
        ]
    )  # fmt: skip


def fetchmail(pop3: Pop3Endpoint, address: str, out: Path, *, keep: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rc = out.parent / "fetchmailrc"
    rc.write_text(
        f"poll {pop3.host} protocol pop3 port {pop3.port} auth password\n"
        f'  user "{address}" password "pw-1" is "tester" here\n'
        f'  sslproto "" {"keep" if keep else "nokeep"} fetchall\n'
        f"  mda \"/bin/sh -c 'cat > {out}/$$.eml'\"\n"
    )
    rc.chmod(0o600)
    env = {**os.environ, "HOME": str(out.parent), "FETCHMAILHOME": str(out.parent)}
    run(["fetchmail", "-f", str(rc), "--invisible", "--nosyslog", "-v"], env=env)


async def test_mpop_fetches_and_keeps(pop3: Pop3Endpoint, tenant: Tenant, tmp_path: Path) -> None:
    need("mpop")
    address, box = await inbox_of(tenant, "alice")
    messages = sample_messages()
    for raw in messages:
        await store.append_message(tenant.conn, box, raw)
    await in_thread(lambda: mpop(pop3, address, tmp_path / "md", keep=True, tls=False))
    fetched = [crlf(m) for m in maildir_messages(tmp_path / "md")]
    assert digests(fetched) == digests(messages)
    assert len(await store.list_messages(tenant.conn, box)) == len(messages)


async def test_mpop_fetches_and_deletes_over_stls(
    pop3: Pop3Endpoint, tenant: Tenant, tmp_path: Path
) -> None:
    need("mpop")
    address, box = await inbox_of(tenant, "alice")
    messages = sample_messages()
    for raw in messages:
        await store.append_message(tenant.conn, box, raw)
    await in_thread(lambda: mpop(pop3, address, tmp_path / "md", keep=False, tls=True))
    fetched = [crlf(m) for m in maildir_messages(tmp_path / "md")]
    assert digests(fetched) == digests(messages)
    assert await store.list_messages(tenant.conn, box) == []


async def test_fetchmail_fetches_and_keeps(
    pop3: Pop3Endpoint, tenant: Tenant, tmp_path: Path
) -> None:
    need("fetchmail")
    address, box = await inbox_of(tenant, "alice")
    messages = sample_messages()
    for raw in messages:
        await store.append_message(tenant.conn, box, raw)
    await in_thread(lambda: fetchmail(pop3, address, tmp_path / "out", keep=True))
    fetched = [crlf(p.read_bytes()) for p in (tmp_path / "out").iterdir()]
    assert digests(fetched) == digests(messages)
    assert len(await store.list_messages(tenant.conn, box)) == len(messages)


async def test_fetchmail_fetches_and_deletes(
    pop3: Pop3Endpoint, tenant: Tenant, tmp_path: Path
) -> None:
    need("fetchmail")
    address, box = await inbox_of(tenant, "alice")
    messages = sample_messages()
    for raw in messages:
        await store.append_message(tenant.conn, box, raw)
    await in_thread(lambda: fetchmail(pop3, address, tmp_path / "out", keep=False))
    fetched = [crlf(p.read_bytes()) for p in (tmp_path / "out").iterdir()]
    assert digests(fetched) == digests(messages)
    assert await store.list_messages(tenant.conn, box) == []
