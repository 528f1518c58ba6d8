"""IMAP and POP3 fuzzed whole: random valid and invalid commands over a socket, every one
answered, the server still serving afterwards."""

from __future__ import annotations

import itertools
from pathlib import Path

from postroom import store
from tests.integration.access.imap_support import message, running_imap
from tests.integration.access.pop3_support import in_thread, running_pop3
from tests.integration.fuzz_support import Client, SessionFuzz, fuzz
from tests.support import Tenant

_tags = itertools.count(1)


def imap_exchange(client: Client, line: bytes) -> list[bytes]:
    if not line.strip() or line[:1] in (b"\x00", b"\xff") or b" " not in line:
        # Not a tagged command: answered untagged (* BAD), or as a bad tag.
        client.send(line + b"\r\n")
        return [client.line()]
    tag = b"t%d" % next(_tags)
    client.send(tag + b" " + line + b"\r\n")
    lines: list[bytes] = []
    while True:
        reply = client.line()
        lines.append(reply)
        if not reply:
            return lines
        if reply.startswith(b"+ "):
            client.send(b"DONE\r\n")  # IDLE (or a challenge: cancelled the same way)
        if reply.startswith(tag + b" "):
            break
    if line.upper().startswith((b"LOGOUT", b"STARTTLS")) and b" OK" in reply:
        lines.append(b"")
    return lines


def pop3_exchange(client: Client, line: bytes) -> list[bytes]:
    client.send(line + b"\r\n")
    reply = client.line()
    lines = [reply]
    word = line.split(b" ")
    multi = word[0].upper() in (b"CAPA", b"RETR", b"TOP") or (
        word[0].upper() in (b"LIST", b"UIDL", b"AUTH") and len(word) == 1
    )
    if reply.startswith(b"+OK") and multi:
        while (more := client.line()) not in (b".\r\n", b""):
            lines.append(more)
    if reply.startswith(b"+OK") and word[0].upper() in (b"QUIT", b"STLS"):
        lines.append(b"")
    return lines


async def test_random_imap_sessions_are_answered_and_the_server_goes_on(
    database_url: str, tmp_path: Path, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "pw-1")
    inbox = await store.get_mailbox(tenant.conn, alice.id, "INBOX")
    assert inbox is not None
    await store.append_message(tenant.conn, inbox.id, message())
    login = f'LOGIN "{alice.address}" "pw-1"'.encode()
    async with running_imap(database_url, tmp_path) as imap:

        class ImapFuzz(SessionFuzz):
            port = imap.port
            greeting = b"* OK"
            exchange = staticmethod(imap_exchange)
            commands = (
                login, b"CAPABILITY", b"NOOP", b"SELECT INBOX", b"EXAMINE INBOX",
                b"FETCH 1:* (FLAGS UID)", b"FETCH 1 BODY.PEEK[]", b"UID SEARCH ALL",
                b"SEARCH TEXT hello", b'LIST "" *', b'LIST "" "%/%*%"', b"STATUS INBOX (MESSAGES)",
                b"STORE 1 +FLAGS (\\Seen)", b"CLOSE", b"UNSELECT", b"IDLE", b"LOGOUT",
                b"STARTTLS", b"FETCH 99999999 FLAGS", b"SELECT", b"LOGIN a", b"CREATE x/y",
                b"DELETE x/y", b"EXPUNGE", b"NAMESPACE", b"ID NIL", b"ENABLE QRESYNC",
            )  # fmt: skip

        await in_thread(fuzz, ImapFuzz)


async def test_random_pop3_sessions_are_answered_and_the_server_goes_on(
    database_url: str, tmp_path: Path, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "pw-1")
    inbox = await store.get_mailbox(tenant.conn, alice.id, "INBOX")
    assert inbox is not None
    await store.append_message(tenant.conn, inbox.id, message())
    async with running_pop3(database_url, tmp_path) as pop3:

        class Pop3Fuzz(SessionFuzz):
            port = pop3.port
            greeting = b"+OK"
            exchange = staticmethod(pop3_exchange)
            commands = (
                f"USER {alice.address}".encode(), b"PASS pw-1", b"PASS wrong", b"STAT",
                b"LIST", b"LIST 1", b"UIDL", b"UIDL 1", b"RETR 1", b"TOP 1 0", b"DELE 1",
                b"RSET", b"NOOP", b"CAPA", b"QUIT", b"STLS", b"AUTH", b"APOP x y",
                b"RETR 999", b"TOP 1 x",
            )  # fmt: skip

        await in_thread(fuzz, Pop3Fuzz)
