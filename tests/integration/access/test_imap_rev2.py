"""ENABLE IMAP4rev2 (RFC 9051 §6.3.1) and what changes with it (Appendix E), by transcript:
no RECENT responses, no \\Recent flag, SEARCH answered by ESEARCH, UTF-8 mailbox names, the
LIST response of SELECT, LSUB and CHECK gone; rev2's response codes."""

from __future__ import annotations

import pytest

from postroom import store
from postroom.db import Conn
from postroom.store.types import Account, Mailbox
from tests.integration.access.imap_support import Transcript, message
from tests.support import Tenant


@pytest.fixture
async def alice(tenant: Tenant) -> Account:
    return await tenant.account("alice", "pw")


async def inbox(conn: Conn, account: Account) -> Mailbox:
    box = await store.get_mailbox(conn, account.id, "INBOX")
    assert box is not None
    return box


@pytest.fixture
async def t(conn: Conn, alice: Account) -> Transcript:
    box = await inbox(conn, alice)
    for subject in ("one", "two"):
        await store.append_message(conn, box.id, message(subject))
    transcript = Transcript(conn)
    await transcript.send(f"a LOGIN {alice.address} pw")
    assert await transcript.lines("b ENABLE IMAP4rev2") == [
        "* ENABLED IMAP4rev2",
        "b OK ENABLE completed",
    ]
    return transcript


async def test_capability_lists_both_revisions_and_stays_the_same_after_enable(
    conn: Conn, alice: Account, t: Transcript
) -> None:
    # RFC 9051 Appendix A: both advertised; §6.3.1: ENABLE does not change CAPABILITY.
    before = Transcript(conn)
    await before.send(f"a LOGIN {alice.address} pw")
    caps = (await before.lines("b CAPABILITY"))[0]
    assert caps.split()[2:4] == ["IMAP4rev1", "IMAP4rev2"]
    assert (await t.lines("c CAPABILITY"))[0] == caps


async def test_select_says_no_recent(t: Transcript) -> None:
    # RFC 9051 Appendix E item 7: RECENT responses are gone.
    lines = await t.lines("c SELECT INBOX")
    assert "* 2 EXISTS" in lines
    assert not [line for line in lines if line.endswith(" RECENT")]


async def test_new_messages_are_announced_without_recent(
    conn: Conn, alice: Account, t: Transcript
) -> None:
    await t.send("c SELECT INBOX")
    await store.append_message(conn, (await inbox(conn, alice)).id, message("three"))
    assert await t.lines("d NOOP") == ["* 3 EXISTS", "d OK NOOP completed"]


async def test_flags_never_show_recent(t: Transcript) -> None:
    await t.send("c SELECT INBOX")
    assert await t.lines("d FETCH 1:2 FLAGS") == [
        "* 1 FETCH (FLAGS ())",
        "* 2 FETCH (FLAGS ())",
        "d OK FETCH completed",
    ]


async def test_search_is_answered_by_esearch(t: Transcript) -> None:
    # RFC 9051 §6.4.4: SEARCH without RETURN is RETURN (ALL).
    await t.send("c SELECT INBOX")
    assert await t.lines("d SEARCH ALL") == ['* ESEARCH (TAG "d") ALL 1:2', "d OK SEARCH completed"]
    assert await t.lines("e UID SEARCH SUBJECT nothing") == [
        '* ESEARCH (TAG "e") UID',
        "e OK SEARCH completed",
    ]


async def test_without_enable_rev1_behaviour_stays(conn: Conn, alice: Account) -> None:
    await store.append_message(conn, (await inbox(conn, alice)).id, message("one"))
    t = Transcript(conn)
    await t.send(f"a LOGIN {alice.address} pw")
    assert "* 1 RECENT" in await t.lines("b SELECT INBOX")
    assert await t.lines("c SEARCH ALL") == ["* SEARCH 1", "c OK SEARCH completed"]


# RFC 9051 §5.1 and Appendix E item 16: mailbox names are UTF-8 once IMAP4rev2 is enabled.


async def test_mailbox_names_are_utf8_once_enabled(t: Transcript) -> None:
    assert await t.lines('c CREATE "Entwürfe"') == ["c OK CREATE completed"]
    assert await t.lines('d LIST "" "Entw*"') == [
        '* LIST (\\HasNoChildren) "/" "Entwürfe"',
        "d OK LIST completed",
    ]
    assert await t.lines('e STATUS "Entwürfe" (MESSAGES)') == [
        '* STATUS "Entwürfe" (MESSAGES 0)',
        "e OK STATUS completed",
    ]


async def test_utf8_name_is_the_mailbox_a_rev1_client_names_in_modified_utf7(
    conn: Conn, alice: Account, t: Transcript
) -> None:
    await t.send('c CREATE "Entwürfe"')
    rev1 = Transcript(conn)
    await rev1.send(f"a LOGIN {alice.address} pw")
    assert await rev1.lines('b LIST "" "Entw*"') == [
        '* LIST (\\HasNoChildren) "/" Entw&APw-rfe',
        "b OK LIST completed",
    ]


async def test_ampersand_is_not_modified_utf7_once_enabled(
    conn: Conn, alice: Account, t: Transcript
) -> None:
    assert await t.lines("c CREATE Entw&APw-rfe") == ["c OK CREATE completed"]
    assert await store.get_mailbox(conn, alice.id, "Entw&APw-rfe") is not None
    assert await store.get_mailbox(conn, alice.id, "Entwürfe") is None


async def test_name_not_in_normalization_form_c_is_refused(t: Transcript) -> None:
    # RFC 9051 §5.1: the server MUST prohibit 8-bit names that are not Net-Unicode.
    assert await t.lines('c CREATE "Entwu\u0308rfe"') == [
        "c NO [CANNOT] Mailbox name is not Net-Unicode"
    ]


async def test_without_enable_utf8_name_is_refused(conn: Conn, alice: Account) -> None:
    # RFC 9051 Appendix A: until ENABLE IMAP4rev2, names are modified UTF-7.
    rev1 = Transcript(conn)
    await rev1.send(f"a LOGIN {alice.address} pw")
    assert await rev1.lines('b CREATE "Entwürfe"') == [
        "b NO [CANNOT] Mailbox name is not valid modified UTF-7"
    ]


# RFC 9051 §6.3.2, §6.3.3 and Appendix E items 9 to 11: what SELECT and EXAMINE say.


async def test_select_answers_list_with_the_canonical_name_and_no_unseen(
    conn: Conn, alice: Account, t: Transcript
) -> None:
    box = await inbox(conn, alice)
    assert await t.lines("c SELECT inbox") == [
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted",
        "* 2 EXISTS",
        '* LIST (\\HasNoChildren) "/" INBOX',
        f"* OK [UIDVALIDITY {box.uid_validity}] UIDs valid",
        "* OK [UIDNEXT 3] Predicted next UID",
        f"* OK [HIGHESTMODSEQ {box.highest_modseq}] Highest",
        "c OK [READ-WRITE] SELECT completed",
    ]


async def test_examine_answers_list_with_the_special_use(t: Transcript) -> None:
    lines = await t.lines("c EXAMINE Sent")
    assert '* LIST (\\HasNoChildren \\Sent) "/" Sent' in lines
    assert lines[-1] == "c OK [READ-ONLY] EXAMINE completed"


async def test_select_list_says_when_the_mailbox_has_children(t: Transcript) -> None:
    await t.send("c CREATE Work/Job")
    assert '* LIST (\\HasChildren) "/" Work' in await t.lines("d SELECT Work")


async def test_select_while_selected_says_closed_first(t: Transcript) -> None:
    await t.send("c SELECT INBOX")
    assert (await t.lines("d SELECT Sent"))[0] == "* OK [CLOSED] Previous mailbox closed"


# RFC 9051 Appendix E items 17 and 19: CHECK and LSUB are gone.


async def test_lsub_is_refused_and_list_subscribed_is_its_replacement(t: Transcript) -> None:
    await t.send("c SUBSCRIBE INBOX")
    assert await t.lines('d LSUB "" *') == [
        "d BAD LSUB is not part of IMAP4rev2, use LIST (SUBSCRIBED)"
    ]
    assert await t.lines('e LIST (SUBSCRIBED) "" INBOX') == [
        '* LIST (\\HasNoChildren \\Subscribed) "/" INBOX',
        "e OK LIST completed",
    ]


async def test_check_is_refused(t: Transcript) -> None:
    await t.send("c SELECT INBOX")
    assert await t.lines("d CHECK") == ["d BAD CHECK is not part of IMAP4rev2, use NOOP"]


# RFC 9051 §7.1: response codes.


async def test_delete_of_a_name_that_only_holds_children_says_haschildren(t: Transcript) -> None:
    # RFC 9051 §6.3.5: the NO SHOULD include the HASCHILDREN response code.
    await t.send("c CREATE Work/Job")
    assert await t.lines("d DELETE Work") == ["d OK DELETE completed"]  # now \Noselect
    assert await t.lines("e DELETE Work") == [
        "e NO [HASCHILDREN] mailbox Work has children and is already \\Noselect"
    ]


async def test_create_of_an_existing_name_says_alreadyexists(t: Transcript) -> None:
    await t.send("c CREATE Work")
    assert (await t.lines("d CREATE Work"))[0].startswith("d NO [ALREADYEXISTS] ")


async def test_delete_of_a_missing_name_says_nonexistent(t: Transcript) -> None:
    assert (await t.lines("c DELETE Nowhere"))[0].startswith("c NO [NONEXISTENT] ")


async def test_copy_to_a_missing_mailbox_says_trycreate(t: Transcript) -> None:
    # RFC 9051 §6.4.7 and Appendix E item 8.
    await t.send("c SELECT INBOX")
    assert await t.lines("d COPY 1 Nowhere") == ["d NO [TRYCREATE] No such mailbox"]
    assert await t.lines("e MOVE 1 Nowhere") == ["e NO [TRYCREATE] No such mailbox"]


async def test_partial_fetch_takes_a_63_bit_offset(t: Transcript) -> None:
    # RFC 9051 Appendix E item 1 and §9: partial = "<" number64 "." nz-number64 ">"; an
    # offset beyond the end gives the empty string (§6.4.5).
    await t.send("c SELECT INBOX")
    assert await t.lines("d FETCH 1 (BODY.PEEK[]<5000000000.9000000000>)") == [
        '* 1 FETCH (BODY[]<5000000000> "")',
        "d OK FETCH completed",
    ]


async def test_response_text_carries_utf8_only_once_enabled(
    conn: Conn, alice: Account, t: Transcript
) -> None:
    # RFC 9051 Appendix E item 24; RFC 3501 §9: TEXT-CHAR is 7-bit.
    assert await t.lines('c DELETE "Entwürfe"') == [
        "c NO [NONEXISTENT] mailbox Entwürfe does not exist"
    ]
    rev1 = Transcript(conn)
    await rev1.send(f"a LOGIN {alice.address} pw")
    assert await rev1.lines("b DELETE Entw&APw-rfe") == [
        "b NO [NONEXISTENT] mailbox Entw?rfe does not exist"
    ]


async def test_enable_pipelined_with_a_utf8_select_applies_to_it(
    conn: Conn, alice: Account
) -> None:
    # RFC 9051 §6.3.1: "it is possible to send ENABLE and then immediately SELECT"; the
    # name is decoded when the session answers the SELECT, not when the reader reads it.
    await store.create_mailbox(conn, alice.id, "Entwürfe")
    rev2 = Transcript(conn)
    await rev2.send(f"a LOGIN {alice.address} pw")
    lines = await rev2.lines('b ENABLE IMAP4rev2\r\nc SELECT "Entwürfe"\r\n'.encode())
    assert lines[:2] == ["* ENABLED IMAP4rev2", "b OK ENABLE completed"]
    assert '* LIST (\\HasNoChildren) "/" "Entwürfe"' in lines
    assert lines[-1] == "c OK [READ-WRITE] SELECT completed"
