"""CONDSTORE and QRESYNC (RFC 7162), transcript by transcript on the real store."""

from __future__ import annotations

import pytest

from postroom import store
from postroom.db import Conn
from postroom.store.types import Account, Mailbox
from tests.integration.access.imap_support import Transcript, message
from tests.support import Tenant


async def inbox(conn: Conn, account: Account) -> Mailbox:
    found = await store.get_mailbox(conn, account.id, "INBOX")
    assert found is not None
    return found


@pytest.fixture
async def alice(tenant: Tenant) -> Account:
    return await tenant.account("alice", "pw")


async def login(conn: Conn, alice: Account) -> Transcript:
    t = Transcript(conn)
    assert (await t.lines(f"a LOGIN {alice.address} pw"))[-1].startswith("a OK")
    return t


@pytest.fixture
async def box(conn: Conn, alice: Account) -> Mailbox:
    mailbox = await inbox(conn, alice)
    for subject in ("one", "two", "three"):
        await store.append_message(conn, mailbox.id, message(subject))
    # Modseqs 2, 3, 4 for the three appends (the mailbox itself began at 1).
    return mailbox


@pytest.fixture
async def selected(conn: Conn, alice: Account, box: Mailbox) -> Transcript:
    t = await login(conn, alice)
    await t.send("s SELECT INBOX (CONDSTORE)")
    return t


async def test_select_reports_highestmodseq(conn: Conn, alice: Account, box: Mailbox) -> None:
    t = await login(conn, alice)
    # §3.1.2.1: with every SELECT and EXAMINE.
    assert "* OK [HIGHESTMODSEQ 4] Highest" in await t.lines("a EXAMINE INBOX")
    # §3.2.11: selecting again closes the first with CLOSED before the new responses.
    assert (await t.lines("b SELECT INBOX"))[0] == "* OK [CLOSED] Previous mailbox closed"


async def test_status_highestmodseq(conn: Conn, alice: Account, box: Mailbox) -> None:
    t = await login(conn, alice)
    assert await t.lines("a STATUS INBOX (MESSAGES HIGHESTMODSEQ)") == [
        "* STATUS INBOX (MESSAGES 3 HIGHESTMODSEQ 4)",
        "a OK STATUS completed",
    ]


async def test_fetch_modseq(selected: Transcript) -> None:
    assert await selected.lines("a FETCH 2 (MODSEQ)") == [
        "* 2 FETCH (MODSEQ (3))",
        "a OK FETCH completed",
    ]


async def test_store_answers_with_modseq_once_condstore_is_on(selected: Transcript) -> None:
    assert await selected.lines("a STORE 1 +FLAGS (\\Seen)") == [
        "* 1 FETCH (FLAGS (\\Seen \\Recent) MODSEQ (5))",
        "a OK STORE completed",
    ]


async def test_fetch_changedsince_gives_only_later_changes_with_modseq(
    selected: Transcript,
) -> None:
    await selected.send("a STORE 3 +FLAGS.SILENT (\\Answered)")
    assert await selected.lines("b FETCH 1:* (FLAGS) (CHANGEDSINCE 4)") == [
        "* 3 FETCH (FLAGS (\\Answered \\Recent) MODSEQ (5))",
        "b OK FETCH completed",
    ]


async def test_store_unchangedsince_leaves_later_changes_and_names_them_modified(
    selected: Transcript,
) -> None:
    # §3.1.3: message 3 (modseq 4) changed after 3: left alone, named in MODIFIED.
    assert await selected.lines("a STORE 1:3 (UNCHANGEDSINCE 3) +FLAGS (\\Flagged)") == [
        "* 1 FETCH (FLAGS (\\Flagged \\Recent) MODSEQ (5))",
        "* 2 FETCH (FLAGS (\\Flagged \\Recent) MODSEQ (5))",
        "a OK [MODIFIED 3] Conditional STORE failed",
    ]
    assert await selected.lines("b FETCH 3 (FLAGS)") == [
        "* 3 FETCH (FLAGS (\\Recent))",
        "b OK FETCH completed",
    ]


async def test_search_modseq_says_the_highest_found(selected: Transcript) -> None:
    assert await selected.lines("a SEARCH MODSEQ 3") == [
        "* SEARCH 2 3 (MODSEQ 4)",
        "a OK SEARCH completed",
    ]
    assert await selected.lines('b SEARCH MODSEQ "/flags/\\\\draft" all 9') == [
        "* SEARCH",
        "b OK SEARCH completed",
    ]


async def test_enable_qresync_enables_condstore_too(conn: Conn, alice: Account) -> None:
    t = await login(conn, alice)
    assert await t.lines("a ENABLE QRESYNC CONDSTORE") == [
        "* ENABLED QRESYNC",
        "a OK ENABLE completed",
    ]


async def test_select_qresync_needs_enable(conn: Conn, alice: Account, box: Mailbox) -> None:
    t = await login(conn, alice)
    assert await t.lines(f"a SELECT INBOX (QRESYNC ({box.uid_validity} 1))") == [
        "a BAD QRESYNC is not enabled"
    ]


async def test_expunge_is_vanished_once_qresync_is_on(
    conn: Conn, alice: Account, box: Mailbox
) -> None:
    t = await login(conn, alice)
    await t.send("a ENABLE QRESYNC")
    await t.send("b SELECT INBOX")
    await t.send("c STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    assert await t.lines("d EXPUNGE") == ["* VANISHED 1,3", "d OK EXPUNGE completed"]


async def test_select_qresync_reports_vanished_earlier_and_changed_flags(
    conn: Conn, alice: Account, box: Mailbox
) -> None:
    other = await login(conn, alice)
    await other.send("a SELECT INBOX")
    await other.send("b STORE 2 +FLAGS.SILENT (\\Flagged)")
    await other.send("c STORE 3 +FLAGS.SILENT (\\Deleted)")
    await other.send("d EXPUNGE")
    t = await login(conn, alice)
    await t.send("e ENABLE QRESYNC")
    lines = await t.lines(f"f SELECT INBOX (QRESYNC ({box.uid_validity} 4 1:3))")
    # §3.2.5.2: after the usual responses, before the tagged OK.
    assert lines[-3:] == [
        "* VANISHED (EARLIER) 3",
        "* 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ (5))",
        "f OK [READ-WRITE] SELECT completed",
    ]


async def test_select_qresync_with_another_uidvalidity_reports_nothing_more(
    conn: Conn, alice: Account, box: Mailbox
) -> None:
    t = await login(conn, alice)
    await t.send("a ENABLE QRESYNC")
    lines = await t.lines(f"b SELECT INBOX (QRESYNC ({box.uid_validity + 1} 1))")
    assert not any("VANISHED" in line or "FETCH" in line for line in lines)


async def test_uid_fetch_vanished_names_expunged_uids_of_the_set(
    conn: Conn, alice: Account, box: Mailbox
) -> None:
    t = await login(conn, alice)
    await t.send("a ENABLE QRESYNC")
    await t.send("b SELECT INBOX")
    await t.send("c STORE 3 +FLAGS.SILENT (\\Deleted)")
    await t.send("d EXPUNGE")
    assert await t.lines("e UID FETCH 1:* (FLAGS) (CHANGEDSINCE 4 VANISHED)") == [
        "* VANISHED (EARLIER) 3",
        "e OK FETCH completed",
    ]
    # §3.2.6: VANISHED only with UID FETCH.
    assert await t.lines("f FETCH 1:* (FLAGS) (CHANGEDSINCE 3 VANISHED)") == [
        "f BAD VANISHED needs UID FETCH and QRESYNC"
    ]


async def test_the_first_condstore_enabling_command_says_highestmodseq(
    conn: Conn, alice: Account, box: Mailbox
) -> None:
    t = await login(conn, alice)
    await t.send("a SELECT INBOX")
    assert await t.lines("b FETCH 1 (MODSEQ)") == [
        "* OK [HIGHESTMODSEQ 4] Highest",
        "* 1 FETCH (MODSEQ (2))",
        "b OK FETCH completed",
    ]
    assert await t.lines("c FETCH 1 (MODSEQ)") == ["* 1 FETCH (MODSEQ (2))", "c OK FETCH completed"]


@pytest.mark.parametrize(
    ("returns", "response"),
    [
        ("MIN", "MIN 1 MODSEQ 2"),
        ("MAX", "MAX 3 MODSEQ 4"),
        ("MIN MAX", "MIN 1 MAX 3 MODSEQ 4"),
        ("", "ALL 1:3 MODSEQ 4"),
    ],
    ids=["min", "max", "min-max", "all"],
)
async def test_esearch_modseq_is_that_of_the_messages_named(
    selected: Transcript, returns: str, response: str
) -> None:
    # RFC 4731 §3.2 with RFC 7162 §3.1.5.
    assert await selected.lines(f"t SEARCH RETURN ({returns}) MODSEQ 1") == [
        f'* ESEARCH (TAG "t") {response}',
        "t OK SEARCH completed",
    ]
