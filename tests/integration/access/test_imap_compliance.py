"""IMAP details that Dovecot's compliance tests check: flags announced, SEARCH semantics,
ENVELOPE source routes, names that cannot be mailboxes, LSUB placeholders, EXAMINE's RECENT."""

from __future__ import annotations

import pytest

from postroom import store
from postroom.db import Conn
from postroom.store.types import Account, Mailbox
from tests.integration.access.imap_support import Transcript, message
from tests.support import Tenant

SYSTEM = "\\Answered \\Flagged \\Deleted \\Seen \\Draft"


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
async def logged_in(conn: Conn, alice: Account) -> Transcript:
    return await login(conn, alice)


@pytest.fixture
async def selected(conn: Conn, alice: Account, logged_in: Transcript) -> Transcript:
    box = await inbox(conn, alice)
    for subject in ("one", "two"):
        await store.append_message(conn, box.id, message(subject))
    await logged_in.send("s SELECT INBOX")
    return logged_in


# --- RFC 3501 §7.2.6: keywords announced in FLAGS before they are used ----------------------


async def test_a_new_keyword_is_announced_in_flags_and_permanentflags_first(
    selected: Transcript,
) -> None:
    assert await selected.lines("a STORE 2 +FLAGS ($Work)") == [
        f"* FLAGS ({SYSTEM} $Work)",
        f"* OK [PERMANENTFLAGS ({SYSTEM} $Work \\*)] Flags permitted",
        "* 2 FETCH (FLAGS (\\Recent $Work))",
        "a OK STORE completed",
    ]
    # Announced once: the next use needs no new FLAGS.
    assert await selected.lines("b STORE 1 +FLAGS ($Work)") == [
        "* 1 FETCH (FLAGS (\\Recent $Work))",
        "b OK STORE completed",
    ]


async def test_a_keyword_set_by_another_session_is_announced_before_its_fetch(
    conn: Conn, alice: Account, selected: Transcript
) -> None:
    other = await login(conn, alice)
    await other.send("b SELECT INBOX")
    await other.send("c STORE 1 +FLAGS.SILENT (Urgent)")
    assert await selected.lines("d NOOP") == [
        f"* FLAGS ({SYSTEM} Urgent)",
        f"* OK [PERMANENTFLAGS ({SYSTEM} Urgent \\*)] Flags permitted",
        "* 1 FETCH (UID 1 FLAGS (\\Recent Urgent))",
        "d OK NOOP completed",
    ]


async def test_fetch_flags_announces_keywords_of_messages_appended_with_them(
    conn: Conn, alice: Account, logged_in: Transcript
) -> None:
    box = await inbox(conn, alice)
    await store.append_message(conn, box.id, message("one"), flags=["$Label1"])
    await logged_in.send("a EXAMINE INBOX")
    assert await logged_in.lines("b FETCH 1 (FLAGS)") == [
        f"* FLAGS ({SYSTEM} $Label1)",
        "* OK [PERMANENTFLAGS ()] Flags permitted",
        "* 1 FETCH (FLAGS (\\Recent $Label1))",
        "b OK FETCH completed",
    ]


async def test_fetch_with_other_items_announces_keywords_too(
    conn: Conn, alice: Account, logged_in: Transcript
) -> None:
    box = await inbox(conn, alice)
    await store.append_message(conn, box.id, message("one"), flags=["$Label2"])
    await logged_in.send("a SELECT INBOX")
    lines = await logged_in.lines("b FETCH 1 (FLAGS RFC822.SIZE)")
    assert lines[0] == f"* FLAGS ({SYSTEM} $Label2)"
    assert lines[2].startswith("* 1 FETCH (FLAGS (\\Recent $Label2) RFC822.SIZE ")


# --- RFC 3501 §6.4.4 SEARCH -----------------------------------------------------------------


@pytest.fixture
async def dated(conn: Conn, alice: Account, logged_in: Transcript) -> Transcript:
    box = await inbox(conn, alice)
    # The same instant, 2007-03-25 21:00 UTC, written in two zones: the written day counts.
    for subject, date in (
        ("east", "Mon, 26 Mar 2007 00:00:00 +0300"),
        ("west", "Sun, 25 Mar 2007 23:00:00 +0200"),
    ):
        await store.append_message(conn, box.id, message(subject, **{"Date": date}))
    await logged_in.send("s SELECT INBOX")
    return logged_in


@pytest.mark.parametrize(
    ("criteria", "result"),
    [
        ("SENTON 26-Mar-2007", "1"),
        ("SENTON 25-Mar-2007", "2"),
        ("SENTBEFORE 26-Mar-2007", "2"),
        ("SENTSINCE 26-Mar-2007", "1"),
        ("NOT SENTON 25-Mar-2007", "1"),
    ],
    ids=lambda value: value,
)
async def test_sent_dates_are_the_date_headers_own_day(
    dated: Transcript, criteria: str, result: str
) -> None:
    assert await dated.lines(f"a SEARCH {criteria}") == [
        f"* SEARCH {result}",
        "a OK SEARCH completed",
    ]


async def test_search_body_does_not_match_header_text(
    conn: Conn, alice: Account, logged_in: Transcript
) -> None:
    box = await inbox(conn, alice)
    await store.append_message(conn, box.id, message("qwertyuiop", "Nothing to see.\r\n"))
    await store.append_message(conn, box.id, message("other", "Say qwertyuiop here.\r\n"))
    await logged_in.send("s SELECT INBOX")
    assert await logged_in.lines("a SEARCH BODY wertyuio") == [
        "* SEARCH 2",
        "a OK SEARCH completed",
    ]
    assert await logged_in.lines("b SEARCH TEXT wertyuio") == [
        "* SEARCH 1 2",
        "b OK SEARCH completed",
    ]


@pytest.mark.parametrize(
    ("criteria", "result"),
    [
        ("TO groupname", "1 2"),
        ("TO groupname2", "1"),
        ("TO groupuser3", "1"),
        ("TO groupuser4", ""),
        ("FROM user-from@domain.org", "1 2 3"),
        ("FROM realfrom", "1 2"),
        ("BCC secret", "3"),
        ("CC ser-c", "3"),
    ],
    ids=lambda value: value,
)
async def test_address_searches(
    conn: Conn, alice: Account, logged_in: Transcript, criteria: str, result: str
) -> None:
    box = await inbox(conn, alice)
    headers = [
        {
            "From": "RealFrom <user-from@domain.org>",
            "To": "groupname: groupuser1@domain.org, groupuser2@domain.org;,\r\n"
            "  groupname2: groupuser3@domain.org;",
        },
        {"From": "RealFrom <user-from@domain.org>", "To": "groupname:;"},
        {
            "From": "<user-from (comment)@ (comment) domain.org>",
            "Cc": "<user-cc@domain.org>",
            "Bcc": "secret@domain.org",
        },
    ]
    for n, fields in enumerate(headers):
        await store.append_message(conn, box.id, message(f"m{n}", **fields))
    await logged_in.send("s SELECT INBOX")
    expected = f"* SEARCH {result}" if result else "* SEARCH"
    assert await logged_in.lines(f"a SEARCH {criteria}") == [expected, "a OK SEARCH completed"]


# --- RFC 3501 §7.4.2 ENVELOPE ----------------------------------------------------------------


async def test_envelope_keeps_the_source_route(
    conn: Conn, alice: Account, logged_in: Transcript
) -> None:
    box = await inbox(conn, alice)
    raw = b"Date: Thu, 15 Feb 2007 01:02:03 +0200\r\nFrom: <@route:user@domain>\r\n\r\nbody\r\n"
    await store.append_message(conn, box.id, raw)
    await logged_in.send("s SELECT INBOX")
    route = '((NIL "@route" "user" "domain"))'
    assert await logged_in.lines("a FETCH 1 ENVELOPE") == [
        f'* 1 FETCH (ENVELOPE ("Thu, 15 Feb 2007 01:02:03 +0200" NIL {route} {route} {route}'
        " NIL NIL NIL NIL NIL))",
        "a OK FETCH completed",
    ]


# --- mailbox names, LSUB, EXAMINE ------------------------------------------------------------


async def test_a_name_that_is_not_modified_utf7_is_no_and_the_session_goes_on(
    logged_in: Transcript,
) -> None:
    assert await logged_in.lines("a SELECT !#$&'+,-.0123456789:;<=>?@^_`|[}") == [
        "a NO [CANNOT] Mailbox name is not valid modified UTF-7"
    ]
    assert await logged_in.lines('b LIST "" !#$&\'+,-.0123456789:;<=>?@^_`|[}%*') == [
        "b OK LIST completed"
    ]
    assert await logged_in.lines("c NOOP") == ["c OK NOOP completed"]


async def test_create_does_not_subscribe(logged_in: Transcript) -> None:
    await logged_in.send("a CREATE Lists")
    assert await logged_in.lines('b LSUB "" Lists') == ["b OK LSUB completed"]


async def test_lsub_percent_shows_an_unsubscribed_parent_of_subscribed_children(
    logged_in: Transcript,
) -> None:
    # RFC 3501 §6.3.9: the parent is listed \Noselect so that the client can descend.
    await logged_in.send("a CREATE Xtop/Sub")
    await logged_in.send("b SUBSCRIBE Xtop/Sub")
    assert await logged_in.lines('c LSUB "" X%') == [
        '* LSUB (\\Noselect \\HasChildren) "/" Xtop',
        "c OK LSUB completed",
    ]
    assert await logged_in.lines('d LSUB "" X*') == [
        '* LSUB (\\HasNoChildren) "/" Xtop/Sub',
        "d OK LSUB completed",
    ]


async def test_examine_reports_recent_without_claiming_it(
    conn: Conn, alice: Account, logged_in: Transcript
) -> None:
    box = await inbox(conn, alice)
    for subject in ("one", "two"):
        await store.append_message(conn, box.id, message(subject))
    assert "* 2 RECENT" in await logged_in.lines("a EXAMINE INBOX")
    assert "* 2 RECENT" in await logged_in.lines("b SELECT INBOX")
    assert "* 0 RECENT" in await logged_in.lines("c EXAMINE INBOX")


# --- RFC 2177 §3 IDLE -------------------------------------------------------------------------


async def test_idle_sends_the_continuation_before_pending_updates(
    conn: Conn, alice: Account, selected: Transcript
) -> None:
    other = await login(conn, alice)
    await other.send("b SELECT INBOX")
    await other.send("c STORE 1 +FLAGS.SILENT (\\Flagged)")
    assert await selected.lines("d IDLE") == [
        "+ idling",
        "* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))",
    ]
    assert await selected.lines("DONE") == ["d OK IDLE terminated"]
