"""The IMAP session per RFC 3501 section, driven without sockets on the real store."""

from __future__ import annotations

import pytest

from postroom import store
from postroom.access.imap import protocol, wire
from postroom.db import Conn
from postroom.store.types import Account, Mailbox
from tests.integration.access.imap_support import Transcript, message
from tests.support import Tenant

CAPS = (
    "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR IDLE UIDPLUS MOVE NAMESPACE ID ENABLE UNSELECT"
    " CHILDREN SPECIAL-USE"
    " QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE CONDSTORE QRESYNC ESEARCH STATUS=SIZE"
    " CREATE-SPECIAL-USE LIST-EXTENDED LIST-STATUS MULTIAPPEND BINARY COMPRESS=DEFLATE"
    " SORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES SEARCHRES"
)
MULTIPART = (
    b"From: a@example.test\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    b"preamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nfirst part\r\n"
    b"--b1\r\nContent-Type: application/octet-stream\r\n"
    b'Content-Disposition: attachment; filename="x.bin"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b1--\r\n"
)


async def inbox(conn: Conn, account: Account) -> Mailbox:
    found = await store.get_mailbox(conn, account.id, "INBOX")
    assert found is not None
    return found


@pytest.fixture
async def alice(tenant: Tenant) -> Account:
    return await tenant.account("alice", "pw")


@pytest.fixture
async def logged_in(conn: Conn, alice: Account) -> Transcript:
    t = Transcript(conn)
    assert (await t.lines(f"a LOGIN {alice.address} pw"))[-1].startswith("a OK")
    return t


@pytest.fixture
async def selected(conn: Conn, alice: Account, logged_in: Transcript) -> Transcript:
    box = await inbox(conn, alice)
    for subject, flags in (("one", ["\\Seen"]), ("two", []), ("three", ["\\Flagged"])):
        await store.append_message(conn, box.id, message(subject), flags=flags)
    await logged_in.send("s SELECT INBOX")
    return logged_in


# --- §6.1 any state ---------------------------------------------------------------------


async def test_capability_before_login_offers_plain_and_starttls(conn: Conn) -> None:
    t = Transcript(conn)
    assert await t.lines("a CAPABILITY") == [
        f"* CAPABILITY {CAPS} STARTTLS AUTH=PLAIN",
        "a OK CAPABILITY completed",
    ]


async def test_capability_says_logindisabled_when_passwords_need_tls(conn: Conn) -> None:
    t = Transcript(conn, plaintext_allowed=False)
    assert (await t.lines("a CAPABILITY"))[0] == f"* CAPABILITY {CAPS} STARTTLS LOGINDISABLED"


async def test_login_refused_before_tls_with_privacyrequired(conn: Conn, alice: Account) -> None:
    t = Transcript(conn, plaintext_allowed=False)
    assert await t.lines(f"a LOGIN {alice.address} pw") == [
        "a NO [PRIVACYREQUIRED] Use STARTTLS first"
    ]


async def test_logout_says_bye_then_ok(conn: Conn) -> None:
    assert await Transcript(conn).lines("a LOGOUT") == [
        "* BYE Logging out",
        "a OK LOGOUT completed",
    ]


async def test_noop_and_id(conn: Conn) -> None:
    t = Transcript(conn)
    assert await t.lines("a NOOP") == ["a OK NOOP completed"]
    assert await t.lines('b ID ("name" "test")') == [
        '* ID ("name" "Postroom")',
        "b OK ID completed",
    ]


@pytest.mark.parametrize(
    ("command", "state"),
    [
        ("SELECT INBOX", "not authenticated"),
        ("FETCH 1 FLAGS", "not authenticated"),
        ('LIST "" *', "not authenticated"),
    ],
    ids=["select", "fetch", "list"],
)
async def test_commands_of_later_states_are_bad_before_login(
    conn: Conn, command: str, state: str
) -> None:
    name = command.split()[0]
    assert await Transcript(conn).lines(f"a {command}") == [f"a BAD {name} not allowed in {state}"]


@pytest.mark.parametrize(
    "command", ["FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)", "EXPUNGE", "CLOSE", "SEARCH ALL"]
)
async def test_selected_commands_are_bad_when_only_authenticated(
    logged_in: Transcript, command: str
) -> None:
    name = command.split()[0]
    assert await logged_in.lines(f"a {command}") == [f"a BAD {name} not allowed in authenticated"]


# --- §6.2 not authenticated --------------------------------------------------------------


async def test_login_answers_ok_with_the_new_capabilities(conn: Conn, alice: Account) -> None:
    assert await Transcript(conn).lines(f"a LOGIN {alice.address} pw") == [
        f"a OK [CAPABILITY {CAPS}] Logged in"
    ]


async def test_login_with_a_wrong_password_is_no(conn: Conn, alice: Account) -> None:
    t = Transcript(conn)
    assert await t.lines(f"a LOGIN {alice.address} wrong") == [
        "a NO [AUTHENTICATIONFAILED] Authentication failed"
    ]
    assert await t.lines("b SELECT INBOX") == ["b BAD SELECT not allowed in not authenticated"]


async def test_authenticate_plain_with_initial_response(conn: Conn, alice: Account) -> None:
    import base64

    token = base64.b64encode(f"\0{alice.address}\0pw".encode()).decode()
    assert await Transcript(conn).lines(f"a AUTHENTICATE PLAIN {token}") == [
        f"a OK [CAPABILITY {CAPS}] Logged in"
    ]


async def test_authenticate_plain_after_a_continuation(conn: Conn, alice: Account) -> None:
    import base64

    t = Transcript(conn)
    assert await t.lines("a AUTHENTICATE PLAIN") == ["+ "]
    token = base64.b64encode(f"\0{alice.address}\0pw".encode()).decode()
    assert await t.lines(token) == [f"a OK [CAPABILITY {CAPS}] Logged in"]


async def test_authenticate_cancelled_with_star(conn: Conn) -> None:
    t = Transcript(conn)
    await t.send("a AUTHENTICATE PLAIN")
    assert await t.lines("*") == ["a BAD AUTHENTICATE cancelled"]
    assert await t.lines("b NOOP") == ["b OK NOOP completed"]


async def test_authenticate_other_mechanisms_are_no(conn: Conn) -> None:
    assert await Transcript(conn).lines("a AUTHENTICATE CRAM-MD5") == [
        "a NO Unsupported authentication mechanism"
    ]


# --- §6.3 authenticated ------------------------------------------------------------------


async def test_select_reports_the_mailbox(
    conn: Conn, alice: Account, logged_in: Transcript
) -> None:
    box = await inbox(conn, alice)
    await store.append_message(conn, box.id, message("one"), flags=["\\Seen"])
    await store.append_message(conn, box.id, message("two"))
    assert await logged_in.lines("a SELECT inbox") == [
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted",
        "* 2 EXISTS",
        "* 2 RECENT",
        "* OK [UNSEEN 2] First unseen",
        f"* OK [UIDVALIDITY {box.uid_validity}] UIDs valid",
        "* OK [UIDNEXT 3] Predicted next UID",
        "* OK [HIGHESTMODSEQ 3] Highest",
        "a OK [READ-WRITE] SELECT completed",
    ]


async def test_recent_belongs_to_the_first_session_only(
    conn: Conn, alice: Account, selected: Transcript
) -> None:
    other = Transcript(conn)
    await other.send(f"a LOGIN {alice.address} pw")
    assert "* 0 RECENT" in await other.lines("b SELECT INBOX")


async def test_new_mail_is_recent_for_the_session_that_sees_it_first(
    conn: Conn, alice: Account, selected: Transcript
) -> None:
    box = await inbox(conn, alice)
    await store.append_message(conn, box.id, message("four"))
    await store.append_message(conn, box.id, message("five"))
    assert await selected.lines("a NOOP") == ["* 5 EXISTS", "* 5 RECENT", "a OK NOOP completed"]
    assert await selected.lines("b SEARCH RECENT") == [
        "* SEARCH 1 2 3 4 5",
        "b OK SEARCH completed",
    ]


async def test_examine_is_read_only(conn: Conn, alice: Account, selected: Transcript) -> None:
    lines = await selected.lines("a EXAMINE INBOX")
    assert "* OK [PERMANENTFLAGS ()] Flags permitted" in lines
    assert lines[-1] == "a OK [READ-ONLY] EXAMINE completed"
    assert await selected.lines("b STORE 1 +FLAGS (\\Deleted)") == [
        "b NO [READ-ONLY] The mailbox is selected read-only"
    ]
    assert await selected.lines("c FETCH 2 BODY[TEXT]") == [
        "* 2 FETCH (BODY[TEXT] {11}",
        "Hi there.",
        ")",
        "c OK FETCH completed",
    ]


async def test_select_of_a_missing_mailbox_is_no(logged_in: Transcript) -> None:
    assert await logged_in.lines("a SELECT Nowhere") == ["a NO [NONEXISTENT] No such mailbox"]


async def test_list_shows_special_use_and_children(logged_in: Transcript) -> None:
    assert (await logged_in.lines("a CREATE Projects/2024/"))[-1] == "a OK CREATE completed"
    assert await logged_in.lines('b LIST "" %') == [
        '* LIST (\\HasNoChildren \\Archive) "/" Archive',
        '* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
        '* LIST (\\HasNoChildren) "/" INBOX',
        '* LIST (\\HasNoChildren \\Junk) "/" Junk',
        '* LIST (\\HasChildren) "/" Projects',
        '* LIST (\\HasNoChildren \\Sent) "/" Sent',
        '* LIST (\\HasNoChildren \\Trash) "/" Trash',
        "b OK LIST completed",
    ]
    assert await logged_in.lines("c LIST Projects/ *") == [
        '* LIST (\\HasNoChildren) "/" Projects/2024',
        "c OK LIST completed",
    ]


async def test_list_with_an_empty_pattern_gives_the_delimiter(logged_in: Transcript) -> None:
    assert await logged_in.lines('a LIST "" ""') == [
        '* LIST (\\Noselect) "/" ""',
        "a OK LIST completed",
    ]


async def test_list_matches_inbox_case_insensitively(logged_in: Transcript) -> None:
    assert await logged_in.lines('a LIST "" inBox') == [
        '* LIST (\\HasNoChildren) "/" INBOX',
        "a OK LIST completed",
    ]


async def test_mailbox_names_travel_in_modified_utf7(logged_in: Transcript) -> None:
    await logged_in.send("a CREATE &ZeVnLIqe-")
    assert await logged_in.lines('b LIST "" &ZeVnLIqe-') == [
        '* LIST (\\HasNoChildren) "/" &ZeVnLIqe-',
        "b OK LIST completed",
    ]


async def test_create_an_existing_mailbox_is_no(logged_in: Transcript) -> None:
    assert await logged_in.lines("a CREATE Sent") == [
        "a NO [ALREADYEXISTS] mailbox Sent already exists"
    ]
    assert await logged_in.lines("b CREATE inbox") == ["b NO [ALREADYEXISTS] INBOX always exists"]


async def test_delete_inbox_is_no(logged_in: Transcript) -> None:
    assert await logged_in.lines("a DELETE INBOX") == ["a NO INBOX cannot be deleted"]


async def test_delete_with_children_leaves_noselect(logged_in: Transcript) -> None:
    await logged_in.send("a CREATE Work/Old")
    assert await logged_in.lines("b DELETE Work") == ["b OK DELETE completed"]
    assert await logged_in.lines('c LIST "" Work*') == [
        '* LIST (\\Noselect \\HasChildren) "/" Work',
        '* LIST (\\HasNoChildren) "/" Work/Old',
        "c OK LIST completed",
    ]


async def test_rename_moves_children(logged_in: Transcript) -> None:
    await logged_in.send("a CREATE Work/Old")
    assert await logged_in.lines("b RENAME Work Job") == ["b OK RENAME completed"]
    assert await logged_in.lines('c LIST "" Job*') == [
        '* LIST (\\HasChildren) "/" Job',
        '* LIST (\\HasNoChildren) "/" Job/Old',
        "c OK LIST completed",
    ]


async def test_rename_inbox_moves_its_messages_and_leaves_it_empty(
    conn: Conn, alice: Account, logged_in: Transcript
) -> None:
    await store.append_message(conn, (await inbox(conn, alice)).id, message("one"))
    assert await logged_in.lines("a RENAME INBOX Saved") == ["a OK RENAME completed"]
    assert await logged_in.lines("b STATUS INBOX (MESSAGES)") == [
        "* STATUS INBOX (MESSAGES 0)",
        "b OK STATUS completed",
    ]
    assert (await logged_in.lines("c STATUS Saved (MESSAGES)"))[0] == "* STATUS Saved (MESSAGES 1)"


async def test_subscribe_and_lsub(logged_in: Transcript) -> None:
    await logged_in.send("a CREATE Lists")
    assert await logged_in.lines("b UNSUBSCRIBE Lists") == ["b OK UNSUBSCRIBE completed"]
    assert await logged_in.lines('c LSUB "" L*') == ["c OK LSUB completed"]
    assert await logged_in.lines("d SUBSCRIBE Lists") == ["d OK SUBSCRIBE completed"]
    assert await logged_in.lines('e LSUB "" L*') == [
        '* LSUB (\\HasNoChildren) "/" Lists',
        "e OK LSUB completed",
    ]


async def test_status_counts(conn: Conn, alice: Account, logged_in: Transcript) -> None:
    box = await inbox(conn, alice)
    await store.append_message(conn, box.id, message("one"), flags=["\\Seen"])
    await store.append_message(conn, box.id, message("two"))
    assert await logged_in.lines("a STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)") == [
        f"* STATUS INBOX (MESSAGES 2 RECENT 2 UIDNEXT 3 UIDVALIDITY {box.uid_validity} UNSEEN 1)",
        "a OK STATUS completed",
    ]


async def test_append_answers_appenduid(conn: Conn, alice: Account, logged_in: Transcript) -> None:
    box = await inbox(conn, alice)
    raw = message("appended")
    lines = await logged_in.lines(
        f'a APPEND INBOX (\\Seen $Label) " 7-Feb-1994 21:52:25 -0800" {{{len(raw)}}}\r\n'.encode()
        + raw
        + b"\r\n"
    )
    assert lines == [
        "+ Ready for literal data",
        f"a OK [APPENDUID {box.uid_validity} 1] APPEND completed",
    ]
    [stored] = await store.list_messages(conn, box.id)
    assert stored.flags == {"\\Seen", "$Label"}
    assert stored.internal_date.isoformat() == "1994-02-08T05:52:25+00:00"


async def test_append_with_literal_plus_needs_no_continuation(logged_in: Transcript) -> None:
    lines = await logged_in.lines(b"a APPEND Drafts {5+}\r\nhello\r\n")
    assert lines[0].startswith("a OK [APPENDUID ")


async def test_append_to_a_missing_mailbox_says_trycreate(logged_in: Transcript) -> None:
    assert await logged_in.lines(b"a APPEND Nowhere {5+}\r\nhello\r\n") == [
        "a NO [TRYCREATE] No such mailbox"
    ]


async def test_namespace_and_enable(logged_in: Transcript) -> None:
    assert await logged_in.lines("a NAMESPACE") == [
        '* NAMESPACE (("" "/")) NIL NIL',
        "a OK NAMESPACE completed",
    ]
    assert await logged_in.lines("b ENABLE CONDSTORE X-UNKNOWN") == [
        "* ENABLED CONDSTORE",
        "b OK ENABLE completed",
    ]
    assert await logged_in.lines("c ENABLE CONDSTORE") == ["* ENABLED", "c OK ENABLE completed"]


# --- §6.4 selected -----------------------------------------------------------------------


async def test_fetch_fast_items(conn: Conn, selected: Transcript) -> None:
    one, two = len(message("one")), len(message("two"))
    lines = await selected.lines("a FETCH 1:2 (FLAGS UID RFC822.SIZE)")
    assert lines == [
        f"* 1 FETCH (FLAGS (\\Seen \\Recent) UID 1 RFC822.SIZE {one})",
        f"* 2 FETCH (FLAGS (\\Recent) UID 2 RFC822.SIZE {two})",
        "a OK FETCH completed",
    ]


async def test_fetch_envelope_and_bodystructure(selected: Transcript) -> None:
    lines = await selected.lines("a FETCH 2 (ENVELOPE BODYSTRUCTURE BODY)")
    assert lines[0] == (
        '* 2 FETCH (ENVELOPE ("Mon, 7 Feb 1994 21:52:25 +0000" "two" '
        '(("Alice" NIL "alice" "example.test")) (("Alice" NIL "alice" "example.test")) '
        '(("Alice" NIL "alice" "example.test")) ((NIL NIL "bob" "example.test")) NIL NIL NIL '
        '"<two@example.test>") '
        'BODYSTRUCTURE ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 11 1 NIL NIL NIL NIL) '
        'BODY ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 11 1))'
    )


async def test_fetch_of_a_message_list_gives_each_item_as_asked(
    conn: Conn, alice: Account, selected: Transcript
) -> None:
    box = await inbox(conn, alice)
    found = await store.get_message(conn, box.id, 3)
    assert found is not None
    date = wire.format_internal_date(found.internal_date)
    lines = await selected.lines("a FETCH 3 (RFC822.SIZE INTERNALDATE FLAGS ENVELOPE UID)")
    assert lines == [
        f'* 3 FETCH (RFC822.SIZE {found.size} INTERNALDATE "{date}" '
        "FLAGS (\\Flagged \\Recent) ENVELOPE "
        '("Mon, 7 Feb 1994 21:52:25 +0000" "three" '
        '(("Alice" NIL "alice" "example.test")) (("Alice" NIL "alice" "example.test")) '
        '(("Alice" NIL "alice" "example.test")) ((NIL NIL "bob" "example.test")) NIL NIL NIL '
        '"<three@example.test>") UID 3)',
        "a OK FETCH completed",
    ]


async def test_structure_of_content_parsed_before_it_was_kept_is_the_same(
    conn: Conn, selected: Transcript
) -> None:
    kept = await selected.lines("a FETCH 2 (ENVELOPE BODYSTRUCTURE)")
    await conn.execute("UPDATE blobs SET imap_envelope = NULL, imap_bodystructure = NULL")
    assert await selected.lines("a FETCH 2 (ENVELOPE BODYSTRUCTURE)") == kept
    # The item-by-item path (a body section asked too) formats the same octets.
    with_body = await selected.lines("b FETCH 2 (ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER])")
    assert with_body[0].startswith(kept[0].removesuffix(")"))


async def test_select_again_after_changes_elsewhere_counts_them(
    conn: Conn, alice: Account, selected: Transcript
) -> None:
    box = await inbox(conn, alice)
    await store.store_flags(conn, box.id, [2], ["\\Deleted"], "add")
    await store.expunge(conn, box.id)
    assert "* 2 EXISTS" in await selected.lines("a SELECT INBOX")
    await store.append_message(conn, box.id, message("four"))
    assert "* 3 EXISTS" in await selected.lines("b SELECT INBOX")
    assert await selected.lines("c FETCH 1:* (UID)") == [
        "* 1 FETCH (UID 1)",
        "* 2 FETCH (UID 3)",
        "* 3 FETCH (UID 4)",
        "c OK FETCH completed",
    ]


async def test_flags_of_the_whole_mailbox_kept_by_the_process_follow_changes_elsewhere(
    conn: Conn, alice: Account, selected: Transcript, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protocol, "FLAGS_KEPT_FROM", 1)
    expected = [
        "* 1 FETCH (FLAGS (\\Seen \\Recent))",
        "* 2 FETCH (FLAGS (\\Recent))",
        "* 3 FETCH (FLAGS (\\Flagged \\Recent))",
        "a OK FETCH completed",
    ]
    assert await selected.lines("a FETCH 1:* (FLAGS)") == expected
    assert await selected.lines("a FETCH 1:* (FLAGS)") == expected
    # Another client flags message 2: the session hears of it, and the next FETCH shows it.
    await store.store_flags(conn, (await inbox(conn, alice)).id, [2], ["\\Answered"], "add")
    await selected.lines("b NOOP")
    assert await selected.lines("c FETCH 2:3 (FLAGS)") == [
        "* 2 FETCH (FLAGS (\\Answered \\Recent))",
        "* 3 FETCH (FLAGS (\\Flagged \\Recent))",
        "c OK FETCH completed",
    ]


async def test_flags_response_kept_as_sent_follows_changes_elsewhere(
    conn: Conn, alice: Account, selected: Transcript, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protocol, "FLAGS_KEPT_FROM", 1)
    await selected.send("s SELECT INBOX")  # the first SELECT claimed \Recent: none now
    expected = [
        "* 1 FETCH (FLAGS (\\Seen))",
        "* 2 FETCH (FLAGS ())",
        "* 3 FETCH (FLAGS (\\Flagged))",
        "a OK FETCH completed",
    ]
    assert await selected.lines("a FETCH 1:* (FLAGS)") == expected
    assert await selected.lines("a FETCH 1:* (FLAGS)") == expected
    await store.store_flags(conn, (await inbox(conn, alice)).id, [2], ["\\Answered"], "add")
    assert await selected.lines("b FETCH 1:* (FLAGS)") == [
        "* 1 FETCH (FLAGS (\\Seen))",
        "* 2 FETCH (FLAGS (\\Answered))",
        "* 3 FETCH (FLAGS (\\Flagged))",
        "* 2 FETCH (UID 2 FLAGS (\\Answered))",
        "b OK FETCH completed",
    ]


async def test_flags_response_kept_as_sent_is_not_given_for_another_form(
    selected: Transcript, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protocol, "FLAGS_KEPT_FROM", 1)
    await selected.send("s SELECT INBOX")
    await selected.lines("a FETCH 1:* (FLAGS)")
    assert await selected.lines("b FETCH 1:* (UID FLAGS)") == [
        "* 1 FETCH (UID 1 FLAGS (\\Seen))",
        "* 2 FETCH (UID 2 FLAGS ())",
        "* 3 FETCH (UID 3 FLAGS (\\Flagged))",
        "b OK FETCH completed",
    ]


async def test_flags_response_kept_as_sent_announces_its_keywords_to_another_session(
    conn: Conn, alice: Account, selected: Transcript, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protocol, "FLAGS_KEPT_FROM", 1)
    await store.store_flags(conn, (await inbox(conn, alice)).id, [2], ["$Work"], "add")
    await selected.send("s SELECT INBOX")
    await selected.lines("a FETCH 1:* (FLAGS)")
    other = Transcript(conn)
    await other.send(f"a LOGIN {alice.address} pw")
    await other.send("s SELECT INBOX")
    # RFC 3501 §7.2.6: the keyword is in FLAGS before a FETCH shows it.
    assert await other.lines("b FETCH 1:* (FLAGS)") == [
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)",
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)]"
        " Flags permitted",
        "* 1 FETCH (FLAGS (\\Seen))",
        "* 2 FETCH (FLAGS ($Work))",
        "* 3 FETCH (FLAGS (\\Flagged))",
        "b OK FETCH completed",
    ]


async def test_fetch_multipart_structure_and_parts(
    conn: Conn, alice: Account, logged_in: Transcript
) -> None:
    await store.append_message(conn, (await inbox(conn, alice)).id, MULTIPART)
    await logged_in.send("s SELECT INBOX")
    assert (await logged_in.lines("a FETCH 1 BODYSTRUCTURE"))[0] == (
        '* 1 FETCH (BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 10 1 '
        'NIL NIL NIL NIL)("APPLICATION" "OCTET-STREAM" NIL NIL NIL "BASE64" 4 NIL '
        '("ATTACHMENT" ("FILENAME" "x.bin")) NIL NIL) "MIXED" ("BOUNDARY" "b1") NIL NIL NIL))'
    )
    assert await logged_in.lines(
        "b FETCH 1 (BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[2]<1.2>)"
    ) == [
        "* 1 FETCH (BODY[1] {10}",
        "first part BODY[2.MIME] {128}",
        "Content-Type: application/octet-stream",
        'Content-Disposition: attachment; filename="x.bin"',
        "Content-Transfer-Encoding: base64",
        "",
        " BODY[2]<1> {2}",
        "AE)",
        "b OK FETCH completed",
    ]
    assert await logged_in.lines("c FETCH 1 BODY.PEEK[3]") == [
        "* 1 FETCH (BODY[3] NIL)",
        "c OK FETCH completed",
    ]


async def test_fetch_header_fields_and_not(selected: Transcript) -> None:
    assert await selected.lines("a FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT To)]") == [
        "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT To)] {38}",
        "To: bob@example.test",
        "Subject: one",
        "",
        ")",
        "a OK FETCH completed",
    ]
    lines = await selected.lines("b FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (From To Date Message-ID)]")
    assert lines[:4] == [
        "* 1 FETCH (BODY[HEADER.FIELDS.NOT (From To Date Message-ID)] {16}",
        "Subject: one",
        "",
        ")",
    ]


async def test_body_fetch_sets_seen_and_announces_it(selected: Transcript) -> None:
    assert await selected.lines("a FETCH 2 BODY[TEXT]") == [
        "* 2 FETCH (FLAGS (\\Seen \\Recent) BODY[TEXT] {11}",
        "Hi there.",
        ")",
        "a OK FETCH completed",
    ]
    # Announced once: the next command does not repeat it.
    assert await selected.lines("b NOOP") == ["b OK NOOP completed"]


async def test_peek_does_not_set_seen(selected: Transcript) -> None:
    await selected.send("a FETCH 2 (BODY.PEEK[] RFC822.HEADER)")
    assert (await selected.lines("b FETCH 2 FLAGS"))[0] == "* 2 FETCH (FLAGS (\\Recent))"


async def test_rfc822_items(selected: Transcript) -> None:
    raw = message("two").decode()
    lines = await selected.send("a FETCH 2 (RFC822)")
    flags = "FLAGS (\\Seen \\Recent)"
    assert (
        lines == f"* 2 FETCH ({flags} RFC822 {{{len(raw)}}}\r\n{raw})\r\na OK FETCH completed\r\n"
    )


async def test_uid_fetch_always_includes_uid(selected: Transcript) -> None:
    assert await selected.lines("a UID FETCH 2:* FLAGS") == [
        "* 2 FETCH (UID 2 FLAGS (\\Recent))",
        "* 3 FETCH (UID 3 FLAGS (\\Flagged \\Recent))",
        "a OK FETCH completed",
    ]


@pytest.mark.parametrize(
    ("command", "responses"),
    [
        (
            "FETCH 1,3 FLAGS",
            ["* 1 FETCH (FLAGS (\\Seen \\Recent))", "* 3 FETCH (FLAGS (\\Flagged \\Recent))"],
        ),
        (
            "FETCH 2:3 (UID FLAGS)",
            ["* 2 FETCH (UID 2 FLAGS (\\Recent))", "* 3 FETCH (UID 3 FLAGS (\\Flagged \\Recent))"],
        ),
        ("FETCH 3 (FLAGS UID)", ["* 3 FETCH (FLAGS (\\Flagged \\Recent) UID 3)"]),
        (
            "UID FETCH 1:2 (FLAGS)",
            ["* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))", "* 2 FETCH (UID 2 FLAGS (\\Recent))"],
        ),
    ],
    ids=["sparse", "uid-first", "uid-last", "uid-fetch"],
)
async def test_fetch_of_flags_alone(
    selected: Transcript, command: str, responses: list[str]
) -> None:
    assert await selected.lines(f"a {command}") == [*responses, "a OK FETCH completed"]


async def test_fetch_of_flags_after_expunges_and_without_recent(
    conn: Conn, alice: Account, selected: Transcript
) -> None:
    # A second session: nothing is recent for it, and UIDs have a gap after an expunge.
    await selected.send("x STORE 2 +FLAGS.SILENT (\\Deleted)")
    await selected.send("y EXPUNGE")
    other = Transcript(conn)
    await other.send(f"a LOGIN {alice.address} pw")
    await other.send("b SELECT INBOX")
    assert await other.lines("c FETCH 1:* FLAGS") == [
        "* 1 FETCH (FLAGS (\\Seen))",
        "* 2 FETCH (FLAGS (\\Flagged))",
        "c OK FETCH completed",
    ]
    assert await other.lines("d UID FETCH 1:* (FLAGS)") == [
        "* 1 FETCH (UID 1 FLAGS (\\Seen))",
        "* 2 FETCH (UID 3 FLAGS (\\Flagged))",
        "d OK FETCH completed",
    ]


async def test_uid_range_with_star_includes_the_last_message(selected: Transcript) -> None:
    # RFC 3501 §6.4.8: 10:* when the largest UID is 3 means 3:10.
    assert await selected.lines("a UID FETCH 10:* UID") == [
        "* 3 FETCH (UID 3)",
        "a OK FETCH completed",
    ]


async def test_sequence_number_beyond_exists_is_bad(selected: Transcript) -> None:
    assert await selected.lines("a FETCH 9 FLAGS") == ["a BAD Invalid message sequence number"]


async def test_parse_errors_are_bad_and_the_session_goes_on(selected: Transcript) -> None:
    assert await selected.lines("a FETCH 1 (FLAGS") == ["a BAD Missing ')'"]
    assert await selected.lines("b NOOP") == ["b OK NOOP completed"]


@pytest.mark.parametrize(
    ("command", "response"),
    [
        ("STORE 2 +FLAGS (\\Answered)", "* 2 FETCH (FLAGS (\\Answered \\Recent))"),
        ("STORE 1 -FLAGS (\\Seen)", "* 1 FETCH (FLAGS (\\Recent))"),
        ("UID STORE 3 +FLAGS \\Draft", "* 3 FETCH (UID 3 FLAGS (\\Flagged \\Draft \\Recent))"),
    ],
    ids=["add", "remove", "uid"],
)
async def test_store_answers_the_new_flags(
    selected: Transcript, command: str, response: str
) -> None:
    assert await selected.lines(f"a {command}") == [response, "a OK STORE completed"]


async def test_store_silent_answers_nothing(selected: Transcript) -> None:
    assert await selected.lines("a STORE 1:3 +FLAGS.SILENT (\\Deleted)") == ["a OK STORE completed"]
    assert await selected.lines("b NOOP") == ["b OK NOOP completed"]


async def test_expunge_numbers_descend(selected: Transcript) -> None:
    await selected.send("a STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    assert await selected.lines("b EXPUNGE") == [
        "* 2 EXPUNGE",
        "* 1 EXPUNGE",
        "b OK EXPUNGE completed",
    ]
    assert await selected.lines("c FETCH 1 UID") == ["* 1 FETCH (UID 3)", "c OK FETCH completed"]


async def test_uid_expunge_removes_only_the_given_uids(selected: Transcript) -> None:
    await selected.send("a STORE 1:3 +FLAGS.SILENT (\\Deleted)")
    assert await selected.lines("b UID EXPUNGE 2") == ["* 2 EXPUNGE", "b OK EXPUNGE completed"]


async def test_close_expunges_silently(conn: Conn, alice: Account, selected: Transcript) -> None:
    await selected.send("a STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert await selected.lines("b CLOSE") == ["b OK CLOSE completed"]
    assert len(await store.list_uids(conn, (await inbox(conn, alice)).id)) == 2


async def test_unselect_does_not_expunge(conn: Conn, alice: Account, selected: Transcript) -> None:
    await selected.send("a STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert await selected.lines("b UNSELECT") == ["b OK UNSELECT completed"]
    assert len(await store.list_uids(conn, (await inbox(conn, alice)).id)) == 3
    assert await selected.lines("c FETCH 1 UID") == ["c BAD FETCH not allowed in authenticated"]


@pytest.mark.parametrize(
    ("criteria", "result"),
    [
        ("ALL", "1 2 3"),
        ("SEEN", "1"),
        ("UNSEEN", "2 3"),
        ("FLAGGED", "3"),
        ("NOT FLAGGED", "1 2"),
        ("OR SEEN FLAGGED", "1 3"),
        ("SUBJECT tWo", "2"),
        ("FROM alice", "1 2 3"),
        ("HEADER Message-ID example.test", "1 2 3"),
        ("BODY there", "1 2 3"),
        ("TEXT nothing-like-this", ""),
        ("2:3 UNFLAGGED", "2"),
        ("UID 1,3", "1 3"),
        ("*", "3"),
        ("RECENT", "1 2 3"),
        ("NEW", "2 3"),
        ("OLD", ""),
        ("LARGER 100 SMALLER 1000", "1 2 3"),
        ("SENTON 7-Feb-1994", "1 2 3"),
        ("SENTBEFORE 7-Feb-1994", ""),
        ("SINCE 1-Jan-2000", "1 2 3"),
        ("BEFORE 1-Jan-2000", ""),
        ("CHARSET UTF-8 SUBJECT one", "1"),
        ("(SEEN) (OR UID 2 UID 3)", ""),
        ("KEYWORD $Work", ""),
    ],
    ids=lambda value: value,
)
async def test_search_keys(selected: Transcript, criteria: str, result: str) -> None:
    expected = f"* SEARCH {result}" if result else "* SEARCH"
    assert await selected.lines(f"a SEARCH {criteria}") == [expected, "a OK SEARCH completed"]


async def test_search_with_an_unknown_charset_is_no_badcharset(selected: Transcript) -> None:
    assert await selected.lines("a SEARCH CHARSET KOI8-R ALL") == [
        "a NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset KOI8-R"
    ]


async def test_uid_search_answers_uids(selected: Transcript) -> None:
    await selected.send("a STORE 1 +FLAGS.SILENT (\\Deleted)")
    await selected.send("b EXPUNGE")
    assert await selected.lines("c UID SEARCH ALL") == ["* SEARCH 2 3", "c OK SEARCH completed"]
    assert await selected.lines("d SEARCH ALL") == ["* SEARCH 1 2", "d OK SEARCH completed"]


async def test_copy_answers_copyuid(conn: Conn, alice: Account, selected: Transcript) -> None:
    archive = await store.get_mailbox(conn, alice.id, "Archive")
    assert archive is not None
    assert await selected.lines("a COPY 1,3 Archive") == [
        f"a OK [COPYUID {archive.uid_validity} 1,3 1:2] COPY completed"
    ]


async def test_copy_to_a_missing_mailbox_says_trycreate(selected: Transcript) -> None:
    assert await selected.lines("a COPY 1 Nowhere") == ["a NO [TRYCREATE] No such mailbox"]


async def test_move_answers_copyuid_then_expunges(
    conn: Conn, alice: Account, selected: Transcript
) -> None:
    trash = await store.get_mailbox(conn, alice.id, "Trash")
    assert trash is not None
    assert await selected.lines("a UID MOVE 2:3 Trash") == [
        f"* OK [COPYUID {trash.uid_validity} 2:3 1:2] Moved",
        "* 3 EXPUNGE",
        "* 2 EXPUNGE",
        "a OK MOVE completed",
    ]


async def test_idle_ends_with_done(selected: Transcript) -> None:
    assert await selected.lines("a IDLE") == ["+ idling"]
    assert await selected.lines("DONE") == ["a OK IDLE terminated"]
    assert await selected.lines("b NOOP") == ["b OK NOOP completed"]


# --- §7.4.1 several sessions on one mailbox ---------------------------------------------


async def test_other_sessions_see_exists_flags_and_expunge_at_allowed_points(
    conn: Conn, alice: Account, selected: Transcript
) -> None:
    other = Transcript(conn)
    await other.send(f"a LOGIN {alice.address} pw")
    await other.send("b SELECT INBOX")
    # New mail: EXISTS after any command.
    await store.append_message(conn, (await inbox(conn, alice)).id, message("four"))
    assert await other.lines("c NOOP") == ["* 4 EXISTS", "* 1 RECENT", "c OK NOOP completed"]
    # A flag change by one session reaches the other as FETCH FLAGS.
    await selected.send("d STORE 2 +FLAGS.SILENT (\\Answered)")
    assert await other.lines("e NOOP") == [
        "* 2 FETCH (UID 2 FLAGS (\\Answered))",
        "e OK NOOP completed",
    ]
    # An expunge is held back during FETCH, STORE and SEARCH...
    await selected.send("f STORE 1 +FLAGS.SILENT (\\Deleted)")
    await selected.send("g EXPUNGE")
    assert await other.lines("h FETCH 2 UID") == [
        "* 2 FETCH (UID 2)",
        "h OK FETCH completed",
    ]
    assert await other.lines("i SEARCH UID 2") == ["* SEARCH 2", "i OK SEARCH completed"]
    # ...and sent with the next command that allows it; numbers move down after it.
    assert await other.lines("j NOOP") == ["* 1 EXPUNGE", "j OK NOOP completed"]
    assert await other.lines("k FETCH 1 UID") == ["* 1 FETCH (UID 2)", "k OK FETCH completed"]
