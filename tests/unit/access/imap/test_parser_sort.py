"""The RFC 5256 (SORT, THREAD) and RFC 5182 (SEARCHRES) additions to the command grammar."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from postroom.access.imap.parser import (
    SORT_KEYS,
    All,
    And,
    Command,
    CommandReader,
    CopyMessages,
    ErrorKind,
    Fetch,
    FlagKey,
    ParseError,
    Search,
    SequenceKey,
    SequenceSet,
    Sort,
    SortCriterion,
    Thread,
    UidExpunge,
)


def command(line: str) -> Command:
    reader = CommandReader()
    reader.feed(line.encode() + b"\r\n")
    event = reader.next_event()
    assert isinstance(event, Command), event
    return event


def refused(line: str) -> ParseError:
    reader = CommandReader()
    reader.feed(line.encode() + b"\r\n")
    event = reader.next_event()
    assert isinstance(event, ParseError), event
    return event


SAVED = SequenceSet((), saved=True)

# --- SORT (RFC 5256 §3, §5) ---------------------------------------------------------------


def test_sort_parses_criteria_charset_and_search_keys() -> None:
    # The RFC's example: A282 SORT (SUBJECT) UTF-8 SINCE 1-Feb-1994
    parsed = command("A282 SORT (SUBJECT REVERSE DATE) UTF-8 ALL")
    assert parsed.name == "SORT"
    assert not parsed.uid
    assert parsed.args == Sort(
        (SortCriterion("SUBJECT"), SortCriterion("DATE", reverse=True)), "UTF-8", All()
    )


def test_uid_sort_is_sort_with_uid() -> None:
    parsed = command("a UID SORT (arrival) us-ascii seen unseen")
    assert parsed.uid
    assert parsed.name == "SORT"
    assert parsed.args == Sort(
        (SortCriterion("ARRIVAL"),),
        "US-ASCII",
        And((FlagKey("\\Seen", True), FlagKey("\\Seen", False))),
    )


def test_sort_charset_may_be_quoted() -> None:
    assert isinstance(command('a SORT (SIZE) "UTF-8" ALL').args, Sort)


def test_sort_needs_a_charset() -> None:
    assert refused("a SORT (SIZE) ALL").kind is ErrorKind.BAD_CHARSET


def test_sort_unknown_charset_is_badcharset() -> None:
    error = refused("a SORT (SIZE) KOI8-R ALL")
    assert error.response() == (
        b"a NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset KOI8-R\r\n"
    )


def test_sort_unknown_key_is_bad() -> None:
    assert refused("a SORT (COLOUR) UTF-8 ALL").response() == b"a BAD Invalid sort key COLOUR\r\n"


def test_sort_empty_criteria_are_bad() -> None:
    assert refused("a SORT () UTF-8 ALL").kind is ErrorKind.SYNTAX


def test_sort_reverse_alone_is_bad() -> None:
    assert refused("a SORT (REVERSE) UTF-8 ALL").kind is ErrorKind.SYNTAX


def test_sort_without_search_keys_is_bad() -> None:
    assert refused("a SORT (DATE) UTF-8").kind is ErrorKind.SYNTAX


criteria = st.lists(st.tuples(st.sampled_from(sorted(SORT_KEYS)), st.booleans()), min_size=1)


@given(criteria, st.sampled_from(["UTF-8", "us-ascii", '"US-ASCII"']))
def test_any_sort_criteria_parse_back(items: list[tuple[str, bool]], charset: str) -> None:
    written = " ".join(("REVERSE " if rev else "") + key.lower() for key, rev in items)
    parsed = command(f"t SORT ({written}) {charset} ALL").args
    assert isinstance(parsed, Sort)
    assert parsed.criteria == tuple(SortCriterion(key, rev) for key, rev in items)
    assert parsed.charset == charset.strip('"').upper()


@given(st.text(alphabet=st.sampled_from(list("() REVERSDATE-UTF8*$1:")), max_size=30))
def test_any_sort_line_parses_or_is_refused(text: str) -> None:
    reader = CommandReader()
    reader.feed(f"t SORT {text}\r\n".encode())
    assert isinstance(reader.next_event(), Command | ParseError)


# --- THREAD (RFC 5256 §3, §5) -------------------------------------------------------------


def test_thread_parses_algorithm_and_search() -> None:
    assert command("a THREAD REFERENCES UTF-8 ALL").args == Thread("REFERENCES", "UTF-8", All())
    parsed = command("a UID THREAD orderedsubject US-ASCII 1:*")
    assert parsed.uid
    assert parsed.args == Thread(
        "ORDEREDSUBJECT", "US-ASCII", SequenceKey(SequenceSet(((1, None),)))
    )


def test_thread_unknown_algorithm_is_bad() -> None:
    assert refused("a THREAD X-JWZ UTF-8 ALL").response() == (
        b"a BAD Unsupported threading algorithm X-JWZ\r\n"
    )


# --- SEARCHRES (RFC 5182) -----------------------------------------------------------------


def test_search_return_save_is_accepted() -> None:
    parsed = command("a SEARCH RETURN (SAVE) FLAGGED").args
    assert isinstance(parsed, Search)
    assert parsed.returns == ("SAVE",)
    parsed = command("a SEARCH RETURN (MIN SAVE) FLAGGED").args
    assert isinstance(parsed, Search)
    assert parsed.returns == ("MIN", "SAVE")


def test_dollar_is_the_saved_result_in_fetch_copy_and_uid_expunge() -> None:
    fetched = command("a FETCH $ FLAGS").args
    assert isinstance(fetched, Fetch)
    assert fetched.sequence_set == SAVED
    copied = command("a UID COPY $ Trash").args
    assert isinstance(copied, CopyMessages)
    assert copied.sequence_set == SAVED
    assert command("a UID EXPUNGE $").args == UidExpunge(SAVED)


def test_dollar_is_a_search_key_alone_and_after_uid() -> None:
    parsed = command("a SEARCH $ UID $").args
    assert isinstance(parsed, Search)
    assert parsed.criteria == And((SequenceKey(SAVED), SequenceKey(SAVED, uid=True)))


def test_dollar_inside_a_set_is_bad() -> None:
    assert refused("a FETCH 1,$ FLAGS").response() == b"a BAD Invalid sequence set\r\n"


def test_saved_set_names_nothing_by_itself() -> None:
    assert str(SAVED) == "$"
    assert SAVED.resolve(10) == ()
    assert SAVED.largest_explicit() is None
