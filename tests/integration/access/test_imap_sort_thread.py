"""SORT and THREAD (RFC 5256) and SEARCHRES (RFC 5182), by transcript on the real store,
and SORT and THREAD from imaplib over a real socket."""

from __future__ import annotations

import imaplib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from postroom import store
from postroom.db import Conn
from postroom.store.types import Account, Mailbox
from tests.integration.access.imap_support import (
    ImapEndpoint,
    Transcript,
    message,
)
from tests.integration.access.pop3_support import in_thread
from tests.support import Tenant

ARRIVED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# (subject, From, Cc, Date, size padding, Message-ID, References) of messages 1..5.
MESSAGES = [
    ("hello", "carol@example.test", "zed@example.test", "Mon, 2 Mar 2026 10:00:00 +0000", 500,
     "<1@x>", ""),
    ("Re: hello", "Alice <alice@example.test>", "", "Mon, 2 Mar 2026 09:00:00 -0300", 100,
     "<2@x>", "<1@x>"),
    ("[list] other", "bob@example.test", "amy@example.test", "not a date", 300, "<3@x>", ""),
    ("Fwd: hello (fwd)", "BOB@example.test", "", "Mon, 2 Mar 2026 08:00:00 +0000", 200,
     "<4@x>", "<1@x> <2@x>"),
    ("other", "dave@example.test", "", "Sun, 1 Mar 2026 08:00:00 +0000", 400, "<5@x>", ""),
]  # fmt: skip


async def expunge(conn: Conn, account: Account, uid: int) -> None:
    box = await inbox(conn, account)
    await store.store_flags(conn, box.id, [uid], ["\\Deleted"], "add")
    await store.expunge(conn, box.id, [uid])


async def inbox(conn: Conn, account: Account) -> Mailbox:
    found = await store.get_mailbox(conn, account.id, "INBOX")
    assert found is not None
    return found


async def fill(conn: Conn, box: Mailbox) -> None:
    for n, (subject, sender, cc, date, pad, mid, refs) in enumerate(MESSAGES):
        headers = {"From": sender, "Date": date, "Message-ID": mid}
        if cc:
            headers["Cc"] = cc
        if refs:
            headers["References"] = refs
        await store.append_message(
            conn,
            box.id,
            message(subject, body="x" * pad + "\r\n", **headers),
            # Arrival order differs from UID order: message 3 arrived first.
            internal_date=ARRIVED + timedelta(hours=(n + 3) % 5),
        )


@pytest.fixture
async def alice(tenant: Tenant) -> Account:
    return await tenant.account("alice", "pw-1")


@pytest.fixture
async def t(conn: Conn, alice: Account) -> Transcript:
    await fill(conn, await inbox(conn, alice))
    transcript = Transcript(conn)
    assert (await transcript.lines(f"a LOGIN {alice.address} pw-1"))[-1].startswith("a OK")
    assert (await transcript.lines("s SELECT INBOX"))[-1].startswith("s OK")
    return transcript


# --- SORT (RFC 5256 §3) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        # Arrival: 3 arrived first (hour 0), then 4, 5, 1, 2.
        ("ARRIVAL", "3 4 5 1 2"),
        ("REVERSE ARRIVAL", "2 1 5 4 3"),
        ("SIZE", "2 4 3 5 1"),
        ("REVERSE SIZE", "1 5 3 4 2"),
        # The Date: in UTC (2 is 12:00 UTC); 3's is invalid, so its arrival counts.
        ("DATE", "5 3 4 1 2"),
        # Base subjects: hello ×3 (1, 2, 4), other ×2 (3, 5).
        ("SUBJECT", "1 2 4 3 5"),
        ("SUBJECT REVERSE DATE", "2 1 4 3 5"),
        # addr-mailbox, case-insensitively: alice, bob, BOB, carol, dave.
        ("FROM", "2 3 4 1 5"),
        # No Cc is the empty string, first.
        ("CC", "2 4 5 3 1"),
        ("TO", "1 2 3 4 5"),
    ],
)
async def test_sort_orders_by_each_key(t: Transcript, criteria: str, expected: str) -> None:
    assert await t.lines(f"a SORT ({criteria}) UTF-8 ALL") == [
        f"* SORT {expected}",
        "a OK SORT completed",
    ]


async def test_sort_only_sorts_the_messages_the_search_finds(t: Transcript) -> None:
    assert await t.lines("a SORT (SIZE) US-ASCII SUBJECT hello NOT 4") == [
        "* SORT 2 1",
        "a OK SORT completed",
    ]


async def test_sort_that_finds_nothing_says_an_empty_sort(t: Transcript) -> None:
    assert await t.lines("a SORT (SIZE) UTF-8 SUBJECT nothing-like-it") == [
        "* SORT",
        "a OK SORT completed",
    ]


async def test_uid_sort_answers_with_uids(t: Transcript, conn: Conn, alice: Account) -> None:
    await expunge(conn, alice, 1)
    await t.lines("n NOOP")
    assert await t.lines("a UID SORT (REVERSE SIZE) UTF-8 ALL") == [
        "* SORT 5 3 4 2",
        "a OK SORT completed",
    ]
    assert await t.lines("b SORT (REVERSE SIZE) UTF-8 ALL") == [
        "* SORT 4 2 3 1",
        "b OK SORT completed",
    ]


async def test_sort_with_an_unknown_charset_is_no_badcharset(t: Transcript) -> None:
    assert await t.lines("a SORT (SIZE) ISO-2022-JP ALL") == [
        "a NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset ISO-2022-JP"
    ]


async def test_sort_before_select_is_refused(conn: Conn, alice: Account) -> None:
    transcript = Transcript(conn)
    await transcript.lines(f"a LOGIN {alice.address} pw-1")
    assert await transcript.lines("b SORT (SIZE) UTF-8 ALL") == [
        "b BAD SORT not allowed in authenticated"
    ]


async def test_sort_does_not_announce_an_expunge(t: Transcript, conn: Conn, alice: Account) -> None:
    # RFC 3501 §7.4.1 as for SEARCH: the numbers must stay those the client knows.
    await expunge(conn, alice, 5)
    assert await t.lines("a SORT (SIZE) UTF-8 ALL") == [
        "* SORT 2 4 3 1",
        "a OK SORT completed",
    ]
    assert await t.lines("b UID SORT (SIZE) UTF-8 ALL") == [
        "* SORT 2 4 3 1",
        "* 5 EXPUNGE",
        "b OK SORT completed",
    ]


# --- THREAD (RFC 5256 §3) -----------------------------------------------------------------


async def test_thread_orderedsubject(t: Transcript) -> None:
    # hello: 4 (08:00), 1 (10:00), 2 (12:00); other: 3 (arrival, 1 Mar 12:00), 5 (08:00).
    assert await t.lines("a THREAD ORDEREDSUBJECT UTF-8 ALL") == [
        "* THREAD (5 3)(4 (1)(2))",
        "a OK THREAD completed",
    ]


async def test_thread_references(t: Transcript) -> None:
    # 2 replies to 1, 4 to 2; 3 and 5 share a subject, neither a reply: a dummy parent.
    assert await t.lines("a THREAD REFERENCES UTF-8 ALL") == [
        "* THREAD ((5)(3))(1 2 4)",
        "a OK THREAD completed",
    ]


async def test_uid_thread_answers_with_uids(t: Transcript, conn: Conn, alice: Account) -> None:
    await expunge(conn, alice, 2)
    await t.lines("n NOOP")
    assert await t.lines("a UID THREAD REFERENCES UTF-8 ALL") == [
        "* THREAD ((5)(3))(1 4)",
        "a OK THREAD completed",
    ]
    assert await t.lines("b THREAD REFERENCES UTF-8 ALL") == [
        "* THREAD ((4)(2))(1 3)",
        "b OK THREAD completed",
    ]


async def test_thread_that_finds_nothing_says_an_empty_thread(t: Transcript) -> None:
    assert await t.lines("a THREAD REFERENCES UTF-8 SUBJECT nothing-like-it") == [
        "* THREAD",
        "a OK THREAD completed",
    ]


# --- SEARCHRES (RFC 5182) -----------------------------------------------------------------


async def test_search_return_save_alone_says_nothing_and_fetch_uses_it(t: Transcript) -> None:
    assert await t.lines("a SEARCH RETURN (SAVE) SUBJECT other") == ["a OK SEARCH completed"]
    assert await t.lines("b FETCH $ (UID)") == [
        "* 3 FETCH (UID 3)",
        "* 5 FETCH (UID 5)",
        "b OK FETCH completed",
    ]


async def test_search_return_save_with_other_options_answers_esearch(t: Transcript) -> None:
    assert await t.lines("a UID SEARCH RETURN (COUNT SAVE) SUBJECT hello") == [
        '* ESEARCH (TAG "a") UID COUNT 3',
        "a OK SEARCH completed",
    ]
    assert await t.lines("b SEARCH UID $") == ["* SEARCH 1 2 4", "b OK SEARCH completed"]


async def test_save_with_min_and_max_saves_only_those(t: Transcript) -> None:
    await t.lines("a SEARCH RETURN (MIN MAX SAVE) SUBJECT hello")
    assert await t.lines("b SEARCH $") == ["* SEARCH 1 4", "b OK SEARCH completed"]
    await t.lines("c SEARCH RETURN (MIN SAVE) SUBJECT hello")
    assert await t.lines("d SEARCH $") == ["* SEARCH 1", "d OK SEARCH completed"]


async def test_saved_result_works_in_store_copy_and_sort(t: Transcript) -> None:
    await t.lines("a SEARCH RETURN (SAVE) SUBJECT other")
    assert await t.lines("b STORE $ +FLAGS.SILENT (\\Flagged)") == ["b OK STORE completed"]
    assert await t.lines("c SEARCH FLAGGED") == ["* SEARCH 3 5", "c OK SEARCH completed"]
    assert (await t.lines("d COPY $ Trash"))[-1].startswith("d OK [COPYUID ")
    assert await t.lines("e SORT (REVERSE SIZE) UTF-8 $") == [
        "* SORT 5 3",
        "e OK SORT completed",
    ]


async def test_saved_result_is_empty_before_any_save_and_after_select(t: Transcript) -> None:
    assert await t.lines("a FETCH $ (UID)") == ["a OK FETCH completed"]
    await t.lines("b SEARCH RETURN (SAVE) ALL")
    await t.lines("c SELECT INBOX")
    assert await t.lines("d SEARCH $") == ["* SEARCH", "d OK SEARCH completed"]


async def test_saved_result_loses_expunged_messages(
    t: Transcript, conn: Conn, alice: Account
) -> None:
    await t.lines("a SEARCH RETURN (SAVE) SUBJECT hello")
    await expunge(conn, alice, 2)
    assert (await t.lines("n NOOP"))[0] == "* 2 EXPUNGE"
    assert await t.lines("b UID SEARCH $") == ["* SEARCH 1 4", "b OK SEARCH completed"]
    assert await t.lines("c SEARCH $") == ["* SEARCH 1 3", "c OK SEARCH completed"]


async def test_a_failed_save_leaves_the_result_empty(t: Transcript) -> None:
    await t.lines("a SEARCH RETURN (SAVE) ALL")
    # A BODY term shorter than the store's minimum fails the search.
    assert (await t.lines("b SEARCH RETURN (SAVE) BODY x"))[-1].startswith("b NO ")
    assert await t.lines("c SEARCH $") == ["* SEARCH", "c OK SEARCH completed"]


async def test_search_save_may_refine_the_saved_result(t: Transcript) -> None:
    await t.lines("a SEARCH RETURN (SAVE) SUBJECT hello")
    await t.lines("b SEARCH RETURN (SAVE) $ NOT 1")
    assert await t.lines("c UID FETCH $ (UID)") == [
        "* 2 FETCH (UID 2)",
        "* 4 FETCH (UID 4)",
        "c OK FETCH completed",
    ]


async def test_uid_expunge_of_the_saved_result(t: Transcript) -> None:
    await t.lines("a STORE 1:* +FLAGS.SILENT (\\Deleted)")
    await t.lines("a SEARCH RETURN (SAVE) SUBJECT other")
    assert await t.lines("b UID EXPUNGE $") == [
        "* 5 EXPUNGE",
        "* 3 EXPUNGE",
        "b OK EXPUNGE completed",
    ]


# --- over a real socket -------------------------------------------------------------------


def imaplib_sort_and_thread(endpoint: ImapEndpoint, account: Account) -> list[Any]:
    client = imaplib.IMAP4(endpoint.host, endpoint.port, timeout=30)
    try:
        client.login(account.address, "pw-1")
        client.select("INBOX")
        out: list[Any] = [client.capabilities]
        out.append(client.sort("(REVERSE DATE)", "UTF-8", "ALL"))
        out.append(client.uid("SORT", "(SUBJECT)", "UTF-8", "ALL"))
        out.append(client.thread("REFERENCES", "UTF-8", "ALL"))
        out.append(client.uid("THREAD", "ORDEREDSUBJECT", "UTF-8", "SUBJECT", "hello"))
        client.logout()
        return out
    except BaseException:
        client.shutdown()
        raise


async def test_imaplib_sorts_and_threads(imap: ImapEndpoint, conn: Conn, alice: Account) -> None:
    await fill(conn, await inbox(conn, alice))
    caps, by_date, by_subject, refs, ordered = await in_thread(imaplib_sort_and_thread, imap, alice)
    assert {"SORT", "THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT", "SEARCHRES"} <= set(caps)
    assert by_date == ("OK", [b"2 1 4 3 5"])
    assert by_subject == ("OK", [b"1 2 4 3 5"])
    assert refs == ("OK", [b"((5)(3))(1 2 4)"])
    assert ordered == ("OK", [b"(4 (1)(2))"])
