"""IMAP QUOTA (RFC 9208): the account's quota root, and OVERQUOTA where mail does not fit."""

from __future__ import annotations

import imaplib
from pathlib import Path
from typing import Any

from postroom import store
from postroom.db import Conn
from postroom.store.types import Account
from tests.integration.access.imap_support import ImapEndpoint, Transcript, message, running_imap
from tests.integration.access.pop3_support import in_thread
from tests.support import Tenant

BIG = message("big", "x" * 3000 + "\r\n")


async def logged_in(conn: Conn, account: Account) -> Transcript:
    t = Transcript(conn)
    assert (await t.lines(f"a LOGIN {account.address} pw"))[-1].startswith("a OK")
    return t


async def inbox_of(conn: Conn, account: Account) -> store.Mailbox:
    found = await store.get_mailbox(conn, account.id, "INBOX")
    assert found is not None
    return found


async def test_getquotaroot_names_the_account_root_with_its_usage(
    conn: Conn, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "pw", quota_bytes=10 * 1024, quota_messages=100)
    await store.append_message(conn, (await inbox_of(conn, alice)).id, BIG)
    t = await logged_in(conn, alice)
    assert await t.lines("b GETQUOTAROOT INBOX") == [
        '* QUOTAROOT INBOX ""',
        '* QUOTA "" (STORAGE 4 10 MESSAGE 1 100)',
        "b OK GETQUOTAROOT completed",
    ]


async def test_getquota_of_the_root_gives_only_the_resources_with_a_limit(
    conn: Conn, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "pw", quota_bytes=2048)
    t = await logged_in(conn, alice)
    assert await t.lines('b GETQUOTA ""') == [
        '* QUOTA "" (STORAGE 0 2)',
        "b OK GETQUOTA completed",
    ]


async def test_an_account_without_limits_has_no_quota_root(conn: Conn, tenant: Tenant) -> None:
    alice = await tenant.account("alice", "pw")
    t = await logged_in(conn, alice)
    assert await t.lines("b GETQUOTAROOT INBOX") == [
        "* QUOTAROOT INBOX",
        "b OK GETQUOTAROOT completed",
    ]
    assert await t.lines('c GETQUOTA ""') == ["c NO [NONEXISTENT] No such quota root"]


async def test_getquotaroot_of_a_missing_mailbox_is_no(conn: Conn, tenant: Tenant) -> None:
    t = await logged_in(conn, await tenant.account("alice", "pw", quota_bytes=2048))
    assert await t.lines("b GETQUOTAROOT Nowhere") == ["b NO [NONEXISTENT] No such mailbox"]


async def test_append_past_the_quota_is_no_overquota(conn: Conn, tenant: Tenant) -> None:
    alice = await tenant.account("alice", "pw", quota_bytes=2048)
    t = await logged_in(conn, alice)
    assert await t.lines(b"b APPEND INBOX {%d+}\r\n" % len(BIG) + BIG + b"\r\n") == [
        "b NO [OVERQUOTA] the mailbox is full (over its quota)"
    ]
    assert await store.list_uids(conn, (await inbox_of(conn, alice)).id) == []


async def test_copy_past_the_quota_is_no_overquota_and_move_still_works(
    conn: Conn, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "pw", quota_bytes=5000)
    await store.append_message(conn, (await inbox_of(conn, alice)).id, BIG)
    t = await logged_in(conn, alice)
    await t.send("b SELECT INBOX")
    assert await t.lines("c COPY 1 Trash") == [
        "c NO [OVERQUOTA] the mailbox is full (over its quota)"
    ]
    assert (await t.lines("d MOVE 1 Trash"))[-1] == "d OK MOVE completed"


async def test_status_deleted_and_deleted_storage(conn: Conn, tenant: Tenant) -> None:
    alice = await tenant.account("alice", "pw")
    inbox = await inbox_of(conn, alice)
    await store.append_message(conn, inbox.id, BIG, flags=["\\Deleted"])
    await store.append_message(conn, inbox.id, message("small"))
    t = await logged_in(conn, alice)
    assert await t.lines("b STATUS INBOX (MESSAGES DELETED DELETED-STORAGE)") == [
        "* STATUS INBOX (MESSAGES 2 DELETED 1 DELETED-STORAGE 4)",
        "b OK STATUS completed",
    ]


def imaplib_quota(endpoint: ImapEndpoint, account: Account) -> list[Any]:
    client = imaplib.IMAP4(endpoint.host, endpoint.port, timeout=30)
    try:
        client.login(account.address, "pw")
        return [
            "QUOTA" in client.capabilities,
            client.getquotaroot("INBOX"),
            client.getquota('""'),
            client.append("INBOX", None, None, BIG),
        ]
    except imaplib.IMAP4.error as exc:
        return [str(exc)]
    finally:
        client.logout()


async def test_imaplib_reads_the_quota_and_is_refused_past_it(
    database_url: str, tmp_path: Path, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", "pw", quota_bytes=3072)
    async with running_imap(database_url, tmp_path) as imap:
        has_quota, root, quota, appended = await in_thread(imaplib_quota, imap, alice)
    assert has_quota
    assert root == ("OK", [[b'INBOX ""'], [b'"" (STORAGE 0 3)']])
    assert quota == ("OK", [b'"" (STORAGE 0 3)'])
    assert appended == ("NO", [b"[OVERQUOTA] the mailbox is full (over its quota)"])
