"""LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819) and the SPECIAL-USE options of LIST
(RFC 6154 §5), by transcript on the real store."""

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
async def t(conn: Conn, alice: Account) -> Transcript:
    """Logged in, with Fruit/Apple (subscribed), Fruit/Banana, Fruit (not subscribed) and
    Veg (subscribed, then deleted)."""
    transcript = Transcript(conn)
    await transcript.send(f"a LOGIN {alice.address} pw")
    for command in (
        "b CREATE Fruit/Apple",
        "c CREATE Fruit/Banana",
        "d SUBSCRIBE Fruit/Apple",
        "e CREATE Veg",
        "f SUBSCRIBE Veg",
        "g DELETE Veg",
    ):
        assert (await transcript.lines(command))[-1].split()[1] == "OK", command
    return transcript


async def test_capabilities_name_list_extended_and_list_status(t: Transcript) -> None:
    words = (await t.lines("a CAPABILITY"))[0].split()
    assert {"LIST-EXTENDED", "LIST-STATUS", "SPECIAL-USE"} <= set(words)


async def test_several_patterns_list_each_mailbox_once(t: Transcript) -> None:
    # RFC 5258 §3: mbox-or-pat = "(" list-mailbox *(SP list-mailbox) ")".
    assert await t.lines('a LIST "" (Fruit/* Fruit/A* INBOX)') == [
        '* LIST (\\HasNoChildren) "/" Fruit/Apple',
        '* LIST (\\HasNoChildren) "/" Fruit/Banana',
        '* LIST (\\HasNoChildren) "/" INBOX',
        "a OK LIST completed",
    ]


async def test_selection_subscribed_lists_subscriptions_with_nonexistent(t: Transcript) -> None:
    # RFC 5258 §3.1, §3.4: a subscription whose mailbox is gone is \NonExistent.
    assert await t.lines('a LIST (SUBSCRIBED) "" "*"') == [
        '* LIST (\\HasNoChildren \\Subscribed \\Archive) "/" Archive',
        '* LIST (\\HasNoChildren \\Subscribed \\Drafts) "/" Drafts',
        '* LIST (\\HasNoChildren \\Subscribed) "/" Fruit/Apple',
        '* LIST (\\HasNoChildren \\Subscribed) "/" INBOX',
        '* LIST (\\HasNoChildren \\Subscribed \\Junk) "/" Junk',
        '* LIST (\\HasNoChildren \\Subscribed \\Sent) "/" Sent',
        '* LIST (\\HasNoChildren \\Subscribed \\Trash) "/" Trash',
        '* LIST (\\NonExistent \\Subscribed) "/" Veg',
        "a OK LIST completed",
    ]


async def test_recursivematch_returns_the_parent_with_childinfo(t: Transcript) -> None:
    # RFC 5258 §3.5: Fruit is not subscribed, its child Fruit/Apple is and "%" does not
    # match it.
    assert await t.lines('a LIST (SUBSCRIBED RECURSIVEMATCH) "" F%') == [
        '* LIST (\\HasChildren) "/" Fruit ("CHILDINFO" ("SUBSCRIBED"))',
        "a OK LIST completed",
    ]


async def test_recursivematch_gives_no_childinfo_for_a_child_that_is_listed(
    t: Transcript,
) -> None:
    assert await t.lines('a LIST (SUBSCRIBED RECURSIVEMATCH) "" (Fruit Fruit/Apple)') == [
        '* LIST (\\HasNoChildren \\Subscribed) "/" Fruit/Apple',
        "a OK LIST completed",
    ]


async def test_return_subscribed_marks_the_subscribed_among_all(t: Transcript) -> None:
    assert await t.lines('a LIST "" Fruit* RETURN (SUBSCRIBED CHILDREN)') == [
        '* LIST (\\HasChildren) "/" Fruit',
        '* LIST (\\HasNoChildren \\Subscribed) "/" Fruit/Apple',
        '* LIST (\\HasNoChildren) "/" Fruit/Banana',
        "a OK LIST completed",
    ]


async def test_remote_selects_nothing_more(t: Transcript) -> None:
    assert await t.lines('a LIST (REMOTE) "" Fruit') == [
        '* LIST (\\HasChildren) "/" Fruit',
        "a OK LIST completed",
    ]


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        ('a LIST (IMAPTEST) "" ""', "a BAD Unknown LIST selection option IMAPTEST"),
        ('a LIST (RECURSIVEMATCH) "" ""', "a BAD RECURSIVEMATCH needs another selection option"),
        (
            'a LIST (RECURSIVEMATCH REMOTE) "" ""',
            "a BAD RECURSIVEMATCH needs another selection option",
        ),
        ('a LIST "" "" RETURN (IMAPTEST)', "a BAD Unknown LIST return option IMAPTEST"),
        ('a LIST "" "" RETURN', "a BAD Missing argument"),
    ],
    ids=["unknown-selection", "recursivematch-alone", "recursivematch-remote", "unknown-return",
         "return-without-list"],
)  # fmt: skip
async def test_bad_options_are_bad(t: Transcript, command: str, reply: str) -> None:
    assert await t.lines(command) == [reply]


async def test_unsubscribe_forgets_a_nonexistent_subscription(t: Transcript) -> None:
    assert await t.lines("a UNSUBSCRIBE Veg") == ["a OK UNSUBSCRIBE completed"]
    assert await t.lines('b LIST (SUBSCRIBED) "" V*') == ["b OK LIST completed"]


async def test_recreating_a_mailbox_keeps_its_subscription(t: Transcript) -> None:
    assert await t.lines("a CREATE Veg") == ["a OK CREATE completed"]
    assert await t.lines('b LIST (SUBSCRIBED) "" V*') == [
        '* LIST (\\HasNoChildren \\Subscribed) "/" Veg',
        "b OK LIST completed",
    ]


async def test_lsub_still_names_a_deleted_subscribed_mailbox(t: Transcript) -> None:
    # RFC 3501 §6.3.6: the server does not remove it from the subscriptions.
    assert await t.lines('a LSUB "" V*') == ['* LSUB (\\Noselect) "/" Veg', "a OK LSUB completed"]


async def test_list_status_follows_each_selectable_mailbox(
    conn: Conn, alice: Account, t: Transcript
) -> None:
    # RFC 5819 §2: a STATUS response after the LIST response of each mailbox.
    box = await store.get_mailbox(conn, alice.id, "Fruit/Apple")
    assert box is not None
    await store.append_message(conn, box.id, message("one"))
    assert await t.lines('a LIST "" (Fruit/Apple Veg) RETURN (STATUS (MESSAGES UNSEEN))') == [
        '* LIST (\\HasNoChildren) "/" Fruit/Apple',
        "* STATUS Fruit/Apple (MESSAGES 1 UNSEEN 1)",
        "a OK LIST completed",
    ]


async def test_list_status_says_nothing_for_a_noselect_mailbox(t: Transcript) -> None:
    await t.send("a DELETE Fruit")
    assert await t.lines('b LIST "" Fruit RETURN (STATUS (MESSAGES))') == [
        '* LIST (\\Noselect \\HasChildren) "/" Fruit',
        "b OK LIST completed",
    ]


async def test_special_use_selection_lists_only_special_mailboxes(t: Transcript) -> None:
    # RFC 6154 §5.3: the SPECIAL-USE selection option.
    assert await t.lines('a LIST (SPECIAL-USE) "" * RETURN (SPECIAL-USE)') == [
        '* LIST (\\HasNoChildren \\Archive) "/" Archive',
        '* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
        '* LIST (\\HasNoChildren \\Junk) "/" Junk',
        '* LIST (\\HasNoChildren \\Sent) "/" Sent',
        '* LIST (\\HasNoChildren \\Trash) "/" Trash',
        "a OK LIST completed",
    ]


async def test_special_use_return_option_names_the_use(t: Transcript) -> None:
    # RFC 6154 §5.1.
    assert await t.lines('a LIST "" Sent RETURN (SPECIAL-USE)') == [
        '* LIST (\\HasNoChildren \\Sent) "/" Sent',
        "a OK LIST completed",
    ]


async def test_the_empty_pattern_still_gives_the_delimiter(t: Transcript) -> None:
    assert await t.lines('a LIST () "" ""') == ['* LIST (\\Noselect) "/" ""', "a OK LIST completed"]
