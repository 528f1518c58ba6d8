"""IMAP APPEND against the process's budget of messages being received, over a socket."""

from __future__ import annotations

import imaplib
from pathlib import Path
from typing import Any

from postroom import store
from postroom.db import Conn
from postroom.store.types import Account
from tests.integration.access.imap_support import ImapEndpoint, message, running_imap
from tests.integration.access.pop3_support import in_thread
from tests.support import Tenant


def two_appends(endpoint: ImapEndpoint, account: Account, big: bytes) -> list[Any]:
    client = imaplib.IMAP4(endpoint.host, endpoint.port, timeout=30)
    try:
        client.login(account.address, "pw")
        refused = client.append("INBOX", None, None, big)
        accepted = client.append("INBOX", None, None, message("small"))
        return [refused, accepted[0], client.noop()[0]]
    finally:
        client.logout()


async def test_an_append_past_the_inflight_budget_is_no_limit_and_the_session_goes_on(
    database_url: str, tmp_path: Path, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "pw")
    big = message("big", "x" * (2 * 1024 * 1024) + "\r\n")
    async with running_imap(
        database_url, tmp_path, POSTROOM_MAX_INFLIGHT_BYTES=str(1024 * 1024)
    ) as imap:
        refused, accepted, noop = await in_thread(two_appends, imap, alice, big)
    assert refused == ("NO", [b"[LIMIT] Too many messages are being received at once"])
    assert (accepted, noop) == ("OK", "OK")


def one_append(endpoint: ImapEndpoint, account: Account, big: bytes) -> Any:
    client = imaplib.IMAP4(endpoint.host, endpoint.port, timeout=30)
    try:
        client.login(account.address, "pw")
        return client.append("INBOX", None, None, big)
    finally:
        client.logout()


async def test_a_large_append_streams_through_a_spool_file_and_is_stored_whole(
    conn: Conn, database_url: str, tmp_path: Path, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "pw")
    big = message("big", "".join(f"line {n:07d}\r\n" for n in range(200_000)))
    async with running_imap(database_url, tmp_path) as imap:
        status, _ = await in_thread(one_append, imap, alice, big)
        folder = imap.server.spool_folder
        budget = imap.server.budget.in_use
    assert status == "OK"
    inbox = await store.get_mailbox(conn, alice.id, "INBOX")
    assert inbox is not None
    assert await store.fetch_raw(conn, inbox.id, 1) == big
    # The spool file was made (the folder exists), and is gone with the command.
    assert folder.is_dir()
    assert list(folder.iterdir()) == []
    assert budget == 0
