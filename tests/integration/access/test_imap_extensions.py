"""ESEARCH (RFC 4731), STATUS=SIZE (RFC 8438) and APPENDLIMIT (RFC 7889), by transcript."""

from __future__ import annotations

import pytest

from postroom import store
from postroom.db import Conn
from postroom.store.types import Account
from tests.integration.access.imap_support import Transcript, message
from tests.support import Tenant


@pytest.fixture
async def alice(tenant: Tenant) -> Account:
    return await tenant.account("alice", "pw")


@pytest.fixture
async def selected(conn: Conn, alice: Account) -> Transcript:
    box = await store.get_mailbox(conn, alice.id, "INBOX")
    assert box is not None
    for subject in ("one", "two", "three", "four"):
        await store.append_message(conn, box.id, message(subject))
    t = Transcript(conn)
    await t.send(f"a LOGIN {alice.address} pw")
    await t.send("b SELECT INBOX")
    return t


@pytest.mark.parametrize(
    ("command", "response"),
    [
        ("SEARCH RETURN (MIN MAX COUNT) ALL", '* ESEARCH (TAG "t") MIN 1 MAX 4 COUNT 4'),
        ("SEARCH RETURN () 2:4", '* ESEARCH (TAG "t") ALL 2:4'),
        ("SEARCH RETURN (ALL) OR 1 3", '* ESEARCH (TAG "t") ALL 1,3'),
        ("UID SEARCH RETURN (MAX) ALL", '* ESEARCH (TAG "t") UID MAX 4'),
        ("SEARCH RETURN (MIN COUNT) SUBJECT nothing", '* ESEARCH (TAG "t") COUNT 0'),
    ],
    ids=["min-max-count", "empty-is-all", "all", "uid", "nothing-found"],
)
async def test_esearch_answers_what_return_asks(
    selected: Transcript, command: str, response: str
) -> None:
    # RFC 4731 §3.1: one ESEARCH response tagged with the command's tag, no SEARCH.
    assert await selected.lines(f"t {command}") == [response, "t OK SEARCH completed"]


async def test_a_plain_search_still_answers_search(selected: Transcript) -> None:
    assert await selected.lines("t SEARCH 1:2") == ["* SEARCH 1 2", "t OK SEARCH completed"]


async def test_status_size_is_the_mailboxs_octets(conn: Conn, alice: Account) -> None:
    box = await store.get_mailbox(conn, alice.id, "Drafts")
    assert box is not None
    for subject in ("one", "two"):
        await store.append_message(conn, box.id, message(subject))
    t = Transcript(conn)
    await t.send(f"a LOGIN {alice.address} pw")
    size = len(message("one")) + len(message("two"))
    assert await t.lines("b STATUS Drafts (MESSAGES SIZE)") == [
        f"* STATUS Drafts (MESSAGES 2 SIZE {size})",
        "b OK STATUS completed",
    ]


async def test_appendlimit_is_announced_and_in_status(conn: Conn, alice: Account) -> None:
    t = Transcript(conn)
    t.session.append_limit = 1000
    assert "APPENDLIMIT=1000" in (await t.lines("a CAPABILITY"))[0].split()
    await t.send(f"b LOGIN {alice.address} pw")
    assert await t.lines("c STATUS INBOX (APPENDLIMIT)") == [
        "* STATUS INBOX (APPENDLIMIT 1000)",
        "c OK STATUS completed",
    ]


# --- RFC 6154 §3 CREATE-SPECIAL-USE -----------------------------------------------------------


async def test_create_with_a_special_use_lists_it(conn: Conn, alice: Account) -> None:
    t = Transcript(conn)
    await t.send(f"a LOGIN {alice.address} pw")
    assert await t.lines("b CREATE Old/Sent (USE (\\Archive))") == ["b OK CREATE completed"]
    assert await t.lines('c LIST "" Old/Sent') == [
        '* LIST (\\HasNoChildren \\Archive) "/" Old/Sent',
        "c OK LIST completed",
    ]


@pytest.mark.parametrize("use", ["\\Important", "\\Archive \\Junk"], ids=["unknown", "two"])
async def test_create_with_an_unsupported_use_is_no_useattr(
    conn: Conn, alice: Account, use: str
) -> None:
    t = Transcript(conn)
    await t.send(f"a LOGIN {alice.address} pw")
    assert await t.lines(f"b CREATE Other (USE ({use}))") == [
        "b NO [USEATTR] Unsupported special use"
    ]
    assert await t.lines('c LIST "" Other') == ["c OK LIST completed"]
