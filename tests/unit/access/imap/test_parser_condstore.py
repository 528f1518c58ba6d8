"""The RFC 7162 (CONDSTORE, QRESYNC) additions to the command grammar."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.access.imap.parser import (
    Arguments,
    Command,
    CommandReader,
    Fetch,
    FetchItem,
    MailboxArgument,
    ModSeqKey,
    ParseError,
    Qresync,
    Search,
    SequenceSet,
    Status,
    Store,
)


def args(line: str) -> Arguments:
    reader = CommandReader()
    reader.feed(line.encode() + b"\r\n")
    event = reader.next_event()
    assert isinstance(event, Command), event
    return event.args


def refused(line: str) -> str:
    reader = CommandReader()
    reader.feed(line.encode() + b"\r\n")
    event = reader.next_event()
    assert isinstance(event, ParseError), event
    return event.message


def test_select_condstore_parameter() -> None:
    assert args("a SELECT INBOX (CONDSTORE)") == MailboxArgument(b"INBOX", condstore=True)


def test_select_qresync_parameter_with_known_uids_and_sequence_match() -> None:
    line = "a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211 (1:2 41,43)))"
    assert args(line) == MailboxArgument(
        b"INBOX",
        qresync=Qresync(67890007, 20050715194045000, SequenceSet(((41, 41), (43, 211)))),
    )


def test_examine_qresync_without_known_uids() -> None:
    assert args("a EXAMINE INBOX (QRESYNC (1 2))") == MailboxArgument(
        b"INBOX", qresync=Qresync(1, 2)
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("a SELECT INBOX (FROB)", "Invalid SELECT parameter FROB"),
        ("a SELECT INBOX (QRESYNC (0 1))", "Invalid QRESYNC parameter"),
        ("a FETCH 1 FLAGS (VANISHED)", "VANISHED needs CHANGEDSINCE"),
        ("a STORE 1 (UNCHANGEDSINCE x) +FLAGS \\Seen", "Expected number"),
        ("a FETCH 1 FLAGS (CHANGEDSINCE 99999999999999999999)", "Number out of range"),
    ],
    ids=["unknown", "uidvalidity-0", "vanished-alone", "not-a-number", "too-large"],
)
def test_bad_modifiers_are_refused(line: str, message: str) -> None:
    assert refused(line) == message


def test_fetch_changedsince_and_vanished() -> None:
    assert args("a FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)") == Fetch(
        SequenceSet(((1, None),)), (FetchItem("FLAGS"),), 12345, True
    )


def test_fetch_modseq_item() -> None:
    assert args("a FETCH 1 MODSEQ") == Fetch(SequenceSet(((1, 1),)), (FetchItem("MODSEQ"),))


def test_store_unchangedsince() -> None:
    assert args("a STORE 1:3 (UNCHANGEDSINCE 5) +FLAGS (\\Seen)") == Store(
        SequenceSet(((1, 3),)), "add", False, ("\\Seen",), 5
    )


def test_search_modseq_with_and_without_an_entry() -> None:
    assert args("a SEARCH MODSEQ 7") == Search(None, ModSeqKey(7))
    assert args('a SEARCH MODSEQ "/flags/\\\\draft" all 7') == Search(None, ModSeqKey(7))


def test_status_highestmodseq() -> None:
    assert args("a STATUS INBOX (HIGHESTMODSEQ)") == Status(b"INBOX", ("HIGHESTMODSEQ",))


@given(st.integers(min_value=0, max_value=(1 << 63) - 1))
def test_any_mod_sequence_value_round_trips(value: int) -> None:
    assert args(f"a FETCH 1 (FLAGS) (CHANGEDSINCE {value})") == Fetch(
        SequenceSet(((1, 1),)), (FetchItem("FLAGS"),), value
    )


# RFC 4731 ESEARCH: SEARCH RETURN (...)


def test_search_return_options() -> None:
    search = args("a SEARCH RETURN (MIN COUNT) CHARSET UTF-8 ALL")
    assert isinstance(search, Search)
    assert search.returns == ("MIN", "COUNT")
    assert search.charset == "UTF-8"


def test_search_return_empty_means_all() -> None:
    search = args("a SEARCH RETURN () ALL")
    assert isinstance(search, Search)
    assert search.returns == ("ALL",)


def test_search_return_unknown_option_is_refused() -> None:
    assert refused("a SEARCH RETURN (FROB) ALL") == "Invalid RETURN option FROB"


def test_status_size_and_appendlimit() -> None:
    assert args("a STATUS INBOX (SIZE APPENDLIMIT)") == Status(b"INBOX", ("SIZE", "APPENDLIMIT"))


# RFC 6154 §3 CREATE-SPECIAL-USE


def test_create_with_use_attributes() -> None:
    assert args("a CREATE Stuff (USE (\\Archive \\X-Mine))") == MailboxArgument(
        b"Stuff", use=("\\Archive", "\\X-Mine")
    )


def test_create_with_another_parameter_is_refused() -> None:
    assert refused("a CREATE Stuff (FROB (x))") == "Invalid CREATE parameter"
