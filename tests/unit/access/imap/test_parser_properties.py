"""Properties of the IMAP reader that must hold for any input, checked with hypothesis."""

from __future__ import annotations

import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postroom.access.imap import wire
from postroom.access.imap.parser import (
    Append,
    Command,
    CommandReader,
    Event,
    Fetch,
    FetchItem,
    Line,
    ListMailboxes,
    Login,
    MailboxArgument,
    NeedContinuation,
    ParseError,
    SequenceSet,
    TooBig,
)

MAX_NUMBER = 4_294_967_295

bounds = st.one_of(st.none(), st.integers(min_value=1, max_value=MAX_NUMBER))
ranges = st.tuples(bounds, bounds)
sequence_sets = st.lists(ranges, min_size=1, max_size=8).map(lambda r: SequenceSet(tuple(r)))


def drain(reader: CommandReader) -> list[Event]:
    events: list[Event] = []
    while (event := reader.next_event()) is not None:
        events.append(event)
    return events


def only_command(data: bytes) -> Command:
    reader = CommandReader()
    reader.feed(data)
    events = [event for event in drain(reader) if not isinstance(event, NeedContinuation)]
    assert len(events) == 1, events
    assert isinstance(events[0], Command), events[0]
    return events[0]


@given(sequence_sets)
def test_sequence_set_round_trips_through_its_wire_form(sequence_set: SequenceSet) -> None:
    assert SequenceSet.parse(str(sequence_set)) == sequence_set


@given(sequence_sets)
def test_sequence_set_round_trips_through_a_command(sequence_set: SequenceSet) -> None:
    command = only_command(f"A1 FETCH {sequence_set} FLAGS\r\n".encode())
    assert command.args == Fetch(sequence_set, (FetchItem("FLAGS"),))


@given(sequence_sets, st.integers(min_value=0, max_value=200))
def test_resolved_sequence_set_holds_exactly_the_contained_numbers(
    sequence_set: SequenceSet, max_value: int
) -> None:
    resolved = set(sequence_set.numbers(max_value))
    expected = {n for n in range(1, max_value + 1) if sequence_set.contains(n, max_value)}
    assert resolved == expected
    assert all(1 <= n <= max_value for n in resolved)


# Any text but NUL, which no IMAP string carries, and lone surrogates, which are not text.
strings = st.text(st.characters(codec="utf-8", exclude_characters="\x00"))


@given(strings, strings)
def test_quoted_strings_round_trip_through_the_parser(username: str, password: str) -> None:
    line = b"A1 LOGIN " + wire.astring(username) + b" " + wire.quote(password) + b"\r\n"
    assert only_command(line).args == Login(username, password)


@given(st.text().filter(lambda name: name.upper() != "INBOX"))
def test_mailbox_names_round_trip_through_the_parser(name: str) -> None:
    line = b"A1 SELECT " + wire.encode_mailbox(name) + b"\r\n"
    sent = only_command(line).args
    assert isinstance(sent, MailboxArgument)
    assert wire.decode_mailbox(sent.mailbox, utf8=False) == name


def _net_unicode(name: str) -> bool:
    return unicodedata.normalize("NFC", name) == name and not any(
        ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F for char in name
    )


@given(st.text().filter(lambda name: name.upper() != "INBOX" and _net_unicode(name)))
def test_utf8_mailbox_names_round_trip_through_the_parser(name: str) -> None:
    # RFC 9051 §5.1: after ENABLE IMAP4rev2, names are UTF-8 both ways.
    line = b"A1 SELECT " + wire.encode_mailbox(name, utf8=True) + b"\r\n"
    sent = only_command(line).args
    assert isinstance(sent, MailboxArgument)
    assert wire.decode_mailbox(sent.mailbox, utf8=True) == name


FRAGMENTS = [
    b"A1 NOOP\r\n",
    b"A1 LOGIN {3}\r\n",
    b"A1 LOGIN {4+}\r\n",
    b"A1 APPEND INBOX {20}\r\n",
    b"A1 APPEND INBOX (\\Seen) {100+}\r\n",
    b"A1 APPEND INBOX {200+}\r\n",
    b"A1 SEARCH TEXT {10+}\r\n",
    b"A1 FROB {6+}\r\n",
    b"A1 ",
    b"a2 UID ",
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"{5}\r\n",
    b"{3+}\r\n",
    b"{0}\r\n",
    b"{40}\r\n",
    b"{4294967296+}\r\n",
    b"{99999999999999999999}\r\n",
    b"APPEND INBOX (\\Seen) ",
    b"LOGIN ",
    b"SEARCH CHARSET UTF-8 ",
    b"OR NOT (",
    b"FETCH 1:*,5:2 (BODY.PEEK[1.HEADER.FIELDS (A B)]<0.10> ",
    b"STORE 1 +FLAGS.SILENT ",
    b"ID (",
    b"(",
    b")",
    b'"',
    b"\\",
    b"*",
    b"NIL",
    b"\x00",
    b"\xff",
]
chunks = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=40)), max_size=60).map(
    b"".join
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(chunks, st.lists(st.integers(min_value=1, max_value=64), min_size=1), st.data())
def test_reader_never_raises_and_never_holds_more_than_its_limits(
    data: bytes, sizes: list[int], choices: st.DataObject
) -> None:
    max_line, max_literal, max_append = 64, 32, 128
    reader = CommandReader(
        max_line_length=max_line, max_literal_size=max_literal, max_append_size=max_append
    )
    # One command of lines (and a CR) plus the literals of an APPEND.
    bound = max_line + 1 + max_append + max_literal
    offset = 0
    index = 0
    while offset < len(data):
        size = sizes[index % len(sizes)]
        index += 1
        reader.feed(data[offset : offset + size])
        offset += size
        while (event := reader.next_event()) is not None:
            assert isinstance(event, Command | NeedContinuation | ParseError | TooBig | Line)
            if isinstance(event, NeedContinuation) and choices.draw(st.booleans()):
                reader.refuse_literal()
            elif isinstance(event, Command) and choices.draw(st.booleans()):
                reader.expect_line()
        assert reader.buffered <= bound


list_select = st.sets(st.sampled_from(["SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"]))
list_returns = st.sets(st.sampled_from(["SUBSCRIBED", "CHILDREN", "SPECIAL-USE"]))
list_patterns = st.lists(
    st.text(st.characters(blacklist_categories=("Cs", "Cc"))), min_size=1, max_size=4
)


@given(list_select, list_patterns, list_returns)
def test_list_extended_arguments_round_trip_through_the_parser(
    select: set[str], patterns: list[str], returns: set[str]
) -> None:
    # RFC 5258 §6: whatever options and patterns a client writes come back as written.
    if "RECURSIVEMATCH" in select and not select & {"SUBSCRIBED", "SPECIAL-USE"}:
        select.discard("RECURSIVEMATCH")
    line = b"A1 LIST (" + " ".join(sorted(select)).encode() + b') "" ('
    line += b" ".join(wire.encode_mailbox(p) for p in patterns)
    line += b") RETURN (" + " ".join(sorted(returns)).encode() + b")\r\n"
    listed = only_command(line).args
    assert isinstance(listed, ListMailboxes)
    decoded = tuple(wire.decode_pattern(raw, utf8=False) for raw in listed.patterns())
    assert decoded == tuple(patterns)
    assert listed.select == select
    assert listed.returns == returns


append_messages = st.lists(
    st.tuples(
        st.sets(st.sampled_from(["\\Seen", "\\Flagged", "$Label", "Work"])),
        st.binary(min_size=1, max_size=200),
    ),
    min_size=1,
    max_size=5,
)


@given(append_messages)
def test_multiappend_messages_round_trip_through_the_reader(
    messages: list[tuple[set[str], bytes]],
) -> None:
    # RFC 3502 §6.3.11: each message keeps its flags and its octets, in order.
    line = b"A1 APPEND Drafts"
    for flags, data in messages:
        line += b" (" + " ".join(sorted(flags)).encode() + b") {%d+}\r\n" % len(data) + data
    appended = only_command(line + b"\r\n").args
    assert isinstance(appended, Append)
    assert [(set(m.flags), m.message) for m in appended.messages()] == messages
