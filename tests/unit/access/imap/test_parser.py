"""The IMAP command reader and grammar: RFC 3501 §9 and the extensions the server announces."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.access.imap.parser import (
    All,
    And,
    Append,
    Arguments,
    Authenticate,
    BodyKey,
    Command,
    CommandReader,
    Compress,
    CopyMessages,
    DateKey,
    Enable,
    ErrorKind,
    Event,
    Fetch,
    FetchBody,
    FetchItem,
    FlagKey,
    HeaderKey,
    Id,
    ImapSyntaxError,
    Line,
    ListMailboxes,
    Login,
    MailboxArgument,
    NeedContinuation,
    NoArguments,
    Not,
    Or,
    ParseError,
    Partial,
    Rename,
    Search,
    SearchKey,
    Section,
    SequenceKey,
    SequenceSet,
    SizeKey,
    Status,
    Store,
    TextKey,
    TooBig,
    UidExpunge,
    parse_auth_response,
    parse_date_time,
    parse_idle_done,
)

# --- helpers ------------------------------------------------------------------------------


def drain(reader: CommandReader) -> list[Event]:
    events: list[Event] = []
    while (event := reader.next_event()) is not None:
        events.append(event)
    return events


def read(data: bytes, reader: CommandReader | None = None) -> list[Event]:
    reader = reader or CommandReader()
    reader.feed(data)
    return drain(reader)


def parse(line: str | bytes) -> Command:
    """The command one client command parses to (CRLF added, literals accepted)."""
    data = line.encode() if isinstance(line, str) else line
    events = [event for event in read(data + b"\r\n") if not isinstance(event, NeedContinuation)]
    assert len(events) == 1, events
    assert isinstance(events[0], Command), events[0]
    return events[0]


def args(line: str | bytes) -> Arguments:
    return parse(line).args


def refuse(line: str | bytes) -> ParseError:
    """The error one client command is refused with."""
    data = line.encode() if isinstance(line, str) else line
    events = [event for event in read(data + b"\r\n") if not isinstance(event, NeedContinuation)]
    assert len(events) == 1, events
    assert isinstance(events[0], ParseError), events[0]
    return events[0]


def seq(text: str) -> SequenceSet:
    return SequenceSet.parse(text)


PDT = timezone(timedelta(hours=-7))


# --- framing: lines ----------------------------------------------------------------------


def test_command_ends_at_crlf() -> None:
    assert read(b"A1 NOOP\r\n") == [Command("A1", "NOOP")]


def test_incomplete_line_needs_more_bytes() -> None:
    assert read(b"A1 NOO") == []


def test_command_fed_one_byte_at_a_time_is_assembled() -> None:
    reader = CommandReader()
    events: list[Event] = []
    for octet in b"A1 LOGIN fred {4}\r\nsecr\r\n":
        reader.feed(bytes([octet]))
        events += drain(reader)
    assert events == [
        NeedContinuation("A1", "LOGIN"),
        Command("A1", "LOGIN", Login("fred", "secr")),
    ]


def test_bare_lf_also_ends_a_line() -> None:
    assert read(b"A1 NOOP\n") == [Command("A1", "NOOP")]


def test_an_empty_line_gets_an_untagged_bad() -> None:
    events = read(b"\r\nA1 NOOP\r\n")
    assert events == [ParseError(None, "Empty command line"), Command("A1", "NOOP")]
    assert events[0].response() == b"* BAD Empty command line\r\n"


def test_pipelined_commands_come_out_in_order() -> None:
    assert read(b"A1 NOOP\r\nA2 CHECK\r\nA3 LOGOUT\r\n") == [
        Command("A1", "NOOP"),
        Command("A2", "CHECK"),
        Command("A3", "LOGOUT"),
    ]


def test_reader_parses_only_when_asked() -> None:
    reader = CommandReader()
    reader.feed(b"A1 AUTHENTICATE PLAIN\r\nAGZyZWQAc2VjcmV0\r\n")
    assert reader.next_event() == Command("A1", "AUTHENTICATE", Authenticate("PLAIN"))
    reader.expect_line()
    assert reader.next_event() == Line(b"AGZyZWQAc2VjcmV0")


# --- framing: literals (RFC 3501 §4.3, §7.5; RFC 7888) -------------------------------------


def test_synchronizing_literal_requests_continuation() -> None:
    assert read(b"A1 LOGIN fred {6}\r\n") == [NeedContinuation("A1", "LOGIN")]


def test_continuation_is_answered_with_a_plus_line() -> None:
    assert NeedContinuation("A1", "LOGIN").response() == b"+ Ready for literal data\r\n"


def test_command_continues_after_the_literal() -> None:
    reader = CommandReader()
    assert read(b"A001 LOGIN {11}\r\n", reader) == [NeedContinuation("A001", "LOGIN")]
    assert read(b"FRED FOOBAR {7}\r\n", reader) == [NeedContinuation("A001", "LOGIN")]
    assert read(b"fat man\r\n", reader) == [
        Command("A001", "LOGIN", Login("FRED FOOBAR", "fat man"))
    ]


def test_literal_plus_needs_no_continuation() -> None:
    # RFC 7888 §3, the example of the RFC.
    assert read(b"A001 LOGIN {11+}\r\nFRED FOOBAR {7+}\r\nfat man\r\n") == [
        Command("A001", "LOGIN", Login("FRED FOOBAR", "fat man"))
    ]


def test_literal_carries_crlf_and_8_bit_octets() -> None:
    assert args(b"A1 LOGIN {6+}\r\na\r\n\xc3\xa9b x") == Login("a\r\néb", "x")


def test_literal_arriving_in_pieces_is_joined() -> None:
    reader = CommandReader()
    events = read(b"A1 APPEND INBOX {10}\r\n", reader)
    assert events == [NeedContinuation("A1", "APPEND")]
    for piece in (b"0123", b"45", b"6789", b"\r\n"):
        events = read(piece, reader)
    assert events == [Command("A1", "APPEND", Append(b"INBOX", (), None, b"0123456789"))]


def test_zero_length_literal_is_an_empty_string() -> None:
    assert args(b"A1 LOGIN {0+}\r\n pw") == Login("", "pw")


def test_message_literal_keeps_every_octet() -> None:
    message = b"From: a@b\r\n\r\n" + bytes(range(1, 256)) * 100
    command = parse(b"A1 APPEND INBOX {%d}\r\n" % len(message) + message)
    assert isinstance(command.args, Append)
    assert command.args.message == message


def test_brace_inside_a_quoted_string_is_not_a_literal() -> None:
    assert args('A1 LOGIN "{5}" pw') == Login("{5}", "pw")


def test_memory_is_released_once_a_command_is_read() -> None:
    reader = CommandReader()
    read(b"A1 APPEND INBOX {100000+}\r\n" + b"x" * 100_000 + b"\r\n", reader)
    assert reader.buffered == 0


def test_unknown_command_is_refused_before_its_literal_is_sent() -> None:
    # RFC 3501 §7.5: a tagged response instead of "+", and the client sends no literal.
    assert read(b"A1 FROB {5}\r\nA2 NOOP\r\n") == [
        ParseError("A1", "Unknown command FROB", ErrorKind.UNKNOWN_COMMAND),
        Command("A2", "NOOP"),
    ]


def test_bad_append_arguments_are_refused_before_the_message() -> None:
    assert read(b"A1 APPEND INBOX (\\Bogus) {5}\r\n") == [
        ParseError("A1", "Invalid system flag \\Bogus")
    ]


def test_refused_literal_plus_is_read_and_discarded() -> None:
    # RFC 7888 §4: the client does not wait, so the server reads and discards the octets.
    assert read(b"A1 FROB {7+}\r\nA9 NOOP\r\nA2 NOOP\r\n") == [
        ParseError("A1", "Unknown command FROB", ErrorKind.UNKNOWN_COMMAND),
        Command("A2", "NOOP"),
    ]


def test_discarding_a_literal_plus_takes_the_rest_of_its_command() -> None:
    data = b"A1 FROB {3+}\r\nabc {4+}\r\nwxyz more\r\nA2 NOOP\r\n"
    assert read(data) == [
        ParseError("A1", "Unknown command FROB", ErrorKind.UNKNOWN_COMMAND),
        Command("A2", "NOOP"),
    ]


def test_literal_over_the_limit_is_too_big() -> None:
    reader = CommandReader(max_literal_size=10)
    assert read(b"A1 LOGIN {11}\r\nA2 NOOP\r\n", reader) == [
        TooBig("A1", "Literal too big", "NO"),
        Command("A2", "NOOP"),
    ]


def test_too_big_literal_is_answered_no_toobig() -> None:
    assert TooBig("A1", "Literal too big", "NO").response() == b"A1 NO [TOOBIG] Literal too big\r\n"


def test_too_big_literal_plus_is_discarded() -> None:
    reader = CommandReader(max_literal_size=10)
    data = b"A1 LOGIN {11+}\r\nA9 NOOP xx pw\r\nA2 NOOP\r\n"
    assert read(data, reader) == [TooBig("A1", "Literal too big", "NO"), Command("A2", "NOOP")]


def test_literal_at_the_limit_is_accepted() -> None:
    reader = CommandReader(max_literal_size=10)
    assert read(b"A1 LOGIN {10+}\r\n0123456789 pw\r\n", reader) == [
        Command("A1", "LOGIN", Login("0123456789", "pw"))
    ]


def test_literals_of_one_command_share_the_limit() -> None:
    reader = CommandReader(max_literal_size=10)
    assert read(b"A1 LOGIN {6+}\r\n012345 {5}\r\n", reader) == [
        TooBig("A1", "Literal too big", "NO")
    ]


def test_append_message_may_be_as_large_as_a_message() -> None:
    reader = CommandReader(max_literal_size=10, max_append_size=100)
    message = b"x" * 100
    assert read(b"A1 APPEND INBOX {100+}\r\n" + message + b"\r\n", reader) == [
        Command("A1", "APPEND", Append(b"INBOX", (), None, message))
    ]


def test_append_message_over_the_message_size_is_too_big() -> None:
    reader = CommandReader(max_literal_size=10, max_append_size=100)
    assert read(b"A1 APPEND INBOX {101}\r\n", reader) == [TooBig("A1", "Literal too big", "NO")]


def test_uid_command_literal_is_limited_like_its_command() -> None:
    reader = CommandReader(max_literal_size=10, max_append_size=100)
    assert read(b"A1 UID COPY 1 {11}\r\n", reader) == [TooBig("A1", "Literal too big", "NO")]


def test_refused_literal_abandons_the_command() -> None:
    reader = CommandReader()
    assert read(b"A1 APPEND INBOX {5}\r\n", reader) == [NeedContinuation("A1", "APPEND")]
    reader.refuse_literal()
    assert read(b"A2 NOOP\r\n", reader) == [Command("A2", "NOOP")]


def test_refuse_literal_without_a_pending_literal_is_a_bug() -> None:
    with pytest.raises(RuntimeError, match="pending literal"):
        CommandReader().refuse_literal()


# --- framing: line limit -----------------------------------------------------------------


def test_line_at_the_limit_is_accepted() -> None:
    line = b"A1 LOGIN " + b"u" * 20 + b" pw"
    reader = CommandReader(max_line_length=len(line))
    assert read(line + b"\r\n", reader) == [Command("A1", "LOGIN", Login("u" * 20, "pw"))]


def test_line_over_the_limit_is_too_big() -> None:
    line = b"A1 LOGIN " + b"u" * 20 + b" pw"
    reader = CommandReader(max_line_length=len(line) - 1)
    assert read(line + b"\r\nA2 NOOP\r\n", reader) == [
        TooBig("A1", "Command line too long", "BAD"),
        Command("A2", "NOOP"),
    ]


def test_too_long_line_is_answered_bad() -> None:
    event = TooBig("A1", "Command line too long", "BAD")
    assert event.response() == b"A1 BAD Command line too long\r\n"


def test_overlong_line_is_refused_before_it_ends_and_then_skipped() -> None:
    reader = CommandReader(max_line_length=32)
    assert read(b"A1 SEARCH " + b"x" * 40, reader) == [TooBig("A1", "Command line too long", "BAD")]
    assert reader.buffered <= 32
    assert read(b"y" * 1000, reader) == []
    assert reader.buffered <= 32
    assert read(b"zzz\r\nA2 NOOP\r\n", reader) == [Command("A2", "NOOP")]


def test_line_limit_counts_every_line_of_a_command() -> None:
    reader = CommandReader(max_line_length=30)
    data = b"A1 LOGIN {2+}\r\nab " + b"p" * 20 + b"\r\nA2 NOOP\r\n"
    assert read(data, reader) == [
        TooBig("A1", "Command line too long", "BAD"),
        Command("A2", "NOOP"),
    ]


def test_overlong_line_ending_in_literal_plus_drops_that_literal() -> None:
    reader = CommandReader(max_line_length=20)
    data = b"A1 LOGIN " + b"u" * 20 + b" {5+}\r\nA9 NOOP\r\nA2 NOOP\r\n"
    assert read(data, reader) == [
        TooBig("A1", "Command line too long", "BAD"),
        Command("A2", "NOOP"),
    ]


def test_overlong_line_without_a_tag_is_answered_untagged() -> None:
    reader = CommandReader(max_line_length=8)
    (event,) = read(b"(((((((((((((\r\n", reader)
    assert event == TooBig(None, "Command line too long", "BAD")
    assert isinstance(event, TooBig)
    assert event.response() == b"* BAD Command line too long\r\n"


# --- raw lines: AUTHENTICATE continuations and IDLE ----------------------------------------


def test_expected_line_is_returned_raw() -> None:
    reader = CommandReader()
    reader.expect_line()
    assert read(b"dGVzdA==\r\nA2 NOOP\r\n", reader) == [Line(b"dGVzdA=="), Command("A2", "NOOP")]


def test_expected_line_over_the_limit_is_too_big_and_untagged() -> None:
    reader = CommandReader(max_line_length=8)
    reader.expect_line()
    assert read(b"123456789\r\nA2 NOOP\r\n", reader) == [
        TooBig(None, "Line too long", "BAD"),
        Command("A2", "NOOP"),
    ]


def test_expect_line_in_the_middle_of_a_command_is_a_bug() -> None:
    reader = CommandReader()
    read(b"A1 LOGIN {3}\r\n", reader)
    with pytest.raises(RuntimeError, match="middle of a command"):
        reader.expect_line()


def test_idle_ends_with_done() -> None:
    reader = CommandReader()
    assert read(b"A1 IDLE\r\n", reader) == [Command("A1", "IDLE")]
    reader.expect_line()
    (line,) = read(b"done\r\n", reader)
    assert isinstance(line, Line)
    assert parse_idle_done(line.data)


def test_idle_is_not_ended_by_another_line() -> None:
    assert not parse_idle_done(b"A2 NOOP")


@pytest.mark.parametrize(
    ("line", "response"),
    [
        (b"AGZyZWQAc2VjcmV0", b"\x00fred\x00secret"),
        (b"", b""),
        (b"*", None),
    ],
    ids=["base64", "empty-response", "cancel"],
)
def test_authenticate_continuation_line(line: bytes, response: bytes | None) -> None:
    # RFC 3501 §6.2.2: each response is a BASE64 line; "*" cancels the exchange.
    assert parse_auth_response(line) == response


@pytest.mark.parametrize("line", [b"AGZy!", b"AGZ", b"=", b"AG==ZQ=="], ids=str)
def test_authenticate_continuation_that_is_not_base64_is_refused(line: bytes) -> None:
    with pytest.raises(ImapSyntaxError, match="Invalid base64"):
        parse_auth_response(line)


# --- tags and command names ----------------------------------------------------------------


SAMPLE_SESSION = [
    # RFC 3501 §8, every command of the sample connection.
    ("a001 login mrc secret", Command("a001", "LOGIN", Login("mrc", "secret"))),
    ("a002 select inbox", Command("a002", "SELECT", MailboxArgument(b"inbox"))),
    (
        "a003 fetch 12 full",
        Command(
            "a003",
            "FETCH",
            Fetch(
                seq("12"),
                tuple(
                    FetchItem(name)
                    for name in ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY")
                ),
            ),
        ),
    ),
    (
        "a004 fetch 12 body[header]",
        Command("a004", "FETCH", Fetch(seq("12"), (FetchBody(Section(text="HEADER")),))),
    ),
    (
        "a005 store 12 +flags \\deleted",
        Command("a005", "STORE", Store(seq("12"), "add", False, ("\\Deleted",))),
    ),
    ("a006 logout", Command("a006", "LOGOUT")),
]


@pytest.mark.parametrize(
    ("line", "command"), SAMPLE_SESSION, ids=[line for line, _ in SAMPLE_SESSION]
)
def test_sample_session_command(line: str, command: Command) -> None:
    assert parse(line) == command


@pytest.mark.parametrize(
    "name",
    [
        "CAPABILITY",
        "NOOP",
        "LOGOUT",
        "STARTTLS",
        "CHECK",
        "CLOSE",
        "EXPUNGE",
        "NAMESPACE",
        "UNSELECT",
        "IDLE",
    ],
)
def test_command_without_arguments(name: str) -> None:
    assert parse(f"T1 {name}") == Command("T1", name, NoArguments())


@pytest.mark.parametrize("name", ["noop", "Noop", "nOOP"])
def test_command_names_are_case_insensitive(name: str) -> None:
    assert parse(f"A1 {name}").name == "NOOP"


def test_tag_may_hold_any_astring_char_but_plus() -> None:
    assert parse("a.b-c]1!$ NOOP").tag == "a.b-c]1!$"


def test_unknown_command_is_refused() -> None:
    assert refuse("A1 FROB x") == ParseError(
        "A1", "Unknown command FROB", ErrorKind.UNKNOWN_COMMAND
    )


def test_unknown_command_is_answered_bad() -> None:
    assert refuse("A1 FROB").response() == b"A1 BAD Unknown command FROB\r\n"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("+A1 NOOP", ParseError(None, "Invalid tag")),
        ("(A1) NOOP", ParseError(None, "Invalid tag")),
        ("A1+ NOOP", ParseError(None, "Invalid tag")),
        ("A1", ParseError(None, "Missing command")),
        ("A1 ", ParseError("A1", "Missing command")),
        ("A1 (NOOP)", ParseError("A1", "Invalid command")),
        ("A1 NOOP now", ParseError("A1", "Unexpected extra arguments")),
        ("A1 NOOP ", ParseError("A1", "Unexpected extra arguments")),
        ("A1  NOOP", ParseError("A1", "Invalid command")),
    ],
    ids=[
        "plus-first",
        "parenthesis",
        "plus-in-tag",
        "tag-alone",
        "tag-and-space",
        "not-an-atom",
        "extra-argument",
        "trailing-space",
        "two-spaces",
    ],
)
def test_malformed_command_line(line: str, error: ParseError) -> None:
    assert refuse(line) == error


def test_error_without_a_tag_is_answered_untagged() -> None:
    assert refuse("+A1 NOOP").response() == b"* BAD Invalid tag\r\n"


def test_reader_goes_on_after_a_bad_command() -> None:
    assert read(b"A1 FETCH x\r\nA2 NOOP\r\n") == [
        ParseError("A1", "Invalid sequence set"),
        Command("A2", "NOOP"),
    ]


# --- not authenticated state: LOGIN, AUTHENTICATE ------------------------------------------


@pytest.mark.parametrize(
    ("line", "login"),
    [
        ("A1 LOGIN fred secret", Login("fred", "secret")),
        ('A1 LOGIN "fred smith" "se cret"', Login("fred smith", "se cret")),
        ('A1 LOGIN "a\\"b" "c\\\\d"', Login('a"b', "c\\d")),
        ('A1 LOGIN "" ""', Login("", "")),
        ("A1 LOGIN alice@example.test p]w", Login("alice@example.test", "p]w")),
        (b'A1 LOGIN "ren\xc3\xa9" pw', Login("rené", "pw")),
        (b'A1 LOGIN fred {6+}\r\nse cr"', Login("fred", 'se cr"')),
    ],
    ids=["atoms", "quoted", "escapes", "empty", "resp-special", "utf-8-quoted", "literal"],
)
def test_login_takes_two_astrings(line: str | bytes, login: Login) -> None:
    assert args(line) == login


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("A1 LOGIN", "Missing argument"),
        ("A1 LOGIN fred", "Missing argument"),
        ("A1 LOGIN fred ", "Missing argument"),
        ("A1 LOGIN fred (pw)", "Expected string"),
        ('A1 LOGIN fred "pw', "Unterminated quoted string"),
        ('A1 LOGIN fred "p\\w"', "Invalid escape in quoted string"),
        ('A1 LOGIN fred "a\\"b\\q"', "Invalid escape in quoted string"),
        (b'A1 LOGIN fred "a\x00b"', "NUL in quoted string"),
        (b"A1 LOGIN fred \xff", "Expected string"),
        (b'A1 LOGIN fred "\xff"', "Invalid UTF-8 in string"),
        ("A1 LOGIN fred {3}x", "Invalid literal"),
        ("A1 LOGIN fred pw extra", "Unexpected extra arguments"),
    ],
    ids=[
        "no-arguments",
        "no-password",
        "empty-password",
        "list",
        "unterminated",
        "bad-escape",
        "bad-escape-after-escaped-quote",
        "nul",
        "8-bit-atom",
        "bad-utf-8",
        "literal-not-at-end",
        "extra",
    ],
)
def test_malformed_login(line: str | bytes, message: str) -> None:
    assert refuse(line) == ParseError("A1", message)


@pytest.mark.parametrize(
    ("line", "authenticate"),
    [
        ("A1 AUTHENTICATE plain", Authenticate("PLAIN")),
        ("A1 AUTHENTICATE PLAIN AGZyZWQAc2VjcmV0", Authenticate("PLAIN", b"\x00fred\x00secret")),
        ("A1 AUTHENTICATE PLAIN =", Authenticate("PLAIN", b"")),
        ("A1 AUTHENTICATE XOAUTH2 dXNlcj1h", Authenticate("XOAUTH2", b"user=a")),
    ],
    ids=["no-initial-response", "sasl-ir", "empty-initial-response", "other-mechanism"],
)
def test_authenticate_with_optional_initial_response(line: str, authenticate: Authenticate) -> None:
    # RFC 4959 §3: initial-response = base64 / "=" (an empty response).
    assert args(line) == authenticate


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("A1 AUTHENTICATE", "Missing argument"),
        ("A1 AUTHENTICATE PLAIN ", "Missing argument"),
        ("A1 AUTHENTICATE PLAIN AGZ", "Invalid initial response"),
        ("A1 AUTHENTICATE PLAIN (x)", "Invalid initial response"),
        ("A1 AUTHENTICATE PLAIN AGZy!", "Unexpected extra arguments"),
    ],
    ids=["no-mechanism", "empty-response", "partial-quantum", "not-base64", "trailing-junk"],
)
def test_malformed_authenticate(line: str, message: str) -> None:
    assert refuse(line) == ParseError("A1", message)


def test_login_password_is_kept_out_of_repr() -> None:
    assert "secret" not in repr(parse("A1 LOGIN fred secret"))


# --- mailbox names (RFC 3501 §5.1, RFC 9051 §5.1) -----------------------------------------


@pytest.mark.parametrize(
    ("wire_name", "raw"),
    [
        ("inbox", b"inbox"),
        ('"InBoX"', b"InBoX"),
        ("Entw&APw-rfe", b"Entw&APw-rfe"),
        ('"Entw\xc3\xbcrfe"', b"Entw\xc3\xbcrfe"),
        ("&Jjo", b"&Jjo"),
        ("{4+}\r\nJunk", b"Junk"),
    ],
    ids=["atom", "quoted", "modified-utf7", "utf-8", "invalid-modified-utf7", "literal"],
)
def test_mailbox_name_is_kept_as_sent_for_the_session_to_decode(wire_name: str, raw: bytes) -> None:
    # Modified UTF-7 or UTF-8 depends on ENABLE IMAP4rev2 (RFC 9051 §5.1): the session's call.
    assert args((f"A1 SELECT {wire_name}").encode("latin-1")) == MailboxArgument(raw)


@pytest.mark.parametrize(
    "name", ["SELECT", "EXAMINE", "CREATE", "DELETE", "SUBSCRIBE", "UNSUBSCRIBE"]
)
def test_command_with_one_mailbox(name: str) -> None:
    assert parse(f"A1 {name} Archive/2024") == Command("A1", name, MailboxArgument(b"Archive/2024"))


def test_mailbox_command_needs_its_mailbox() -> None:
    assert refuse("A1 SELECT") == ParseError("A1", "Missing argument")


def test_rename_takes_two_mailboxes() -> None:
    assert args('A1 RENAME inbox "Old Mail"') == Rename(b"inbox", b"Old Mail")


@pytest.mark.parametrize(
    ("line", "list_args"),
    [
        ('A1 LIST "" *', ListMailboxes(b"", b"*")),
        ('A1 LIST "" ""', ListMailboxes(b"", b"")),
        ("A1 LIST ~/Mail/ %", ListMailboxes(b"~/Mail/", b"%")),
        ('A1 LIST "" Work/%/Pro]j*', ListMailboxes(b"", b"Work/%/Pro]j*")),
        ('A1 LIST "" "&ZeVnLIqe-/*"', ListMailboxes(b"", b"&ZeVnLIqe-/*")),
        ("A1 LIST inbox inbox", ListMailboxes(b"inbox", b"inbox")),
    ],
    ids=["everything", "delimiter-query", "reference", "wildcards", "modified-utf7", "inbox"],
)
def test_list_takes_reference_and_pattern(line: str, list_args: ListMailboxes) -> None:
    assert args(line) == list_args


def test_lsub_has_the_arguments_of_list() -> None:
    assert parse('A1 LSUB "#news." "comp.mail.*"') == Command(
        "A1", "LSUB", ListMailboxes(b"#news.", b"comp.mail.*")
    )


def test_status_items_are_upper_cased() -> None:
    assert args("A1 STATUS blurdybloop (uidnext MESSAGES Unseen RECENT UIDVALIDITY)") == Status(
        b"blurdybloop", ("UIDNEXT", "MESSAGES", "UNSEEN", "RECENT", "UIDVALIDITY")
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("A1 STATUS INBOX (FROB)", "Invalid STATUS item FROB"),
        ("A1 STATUS INBOX ()", "Expected atom"),
        ("A1 STATUS INBOX MESSAGES", "Expected STATUS item list"),
        ("A1 STATUS INBOX (MESSAGES", "Missing ')'"),
    ],
    ids=["unknown-item", "empty-list", "not-a-list", "unclosed"],
)
def test_malformed_status(line: str, message: str) -> None:
    assert refuse(line) == ParseError("A1", message)


# --- APPEND (RFC 3501 §6.3.11) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "append"),
    [
        (b"A1 APPEND saved-messages {5+}\r\nhello", Append(b"saved-messages", (), None, b"hello")),
        (
            b"A1 APPEND INBOX (\\Seen \\flagged $Label1) {2+}\r\nhi",
            Append(b"INBOX", ("\\Seen", "\\Flagged", "$Label1"), None, b"hi"),
        ),
        (b"A1 APPEND INBOX () {2+}\r\nhi", Append(b"INBOX", (), None, b"hi")),
        (
            b'A1 APPEND INBOX "17-Jul-1996 02:44:25 -0700" {2+}\r\nhi',
            Append(b"INBOX", (), datetime(1996, 7, 17, 2, 44, 25, tzinfo=PDT), b"hi"),
        ),
        (
            b'A1 APPEND Drafts (\\Draft) " 7-Feb-1994 21:52:25 -0800" {2+}\r\nhi',
            Append(
                b"Drafts",
                ("\\Draft",),
                datetime(1994, 2, 7, 21, 52, 25, tzinfo=timezone(timedelta(hours=-8))),
                b"hi",
            ),
        ),
        (b"A1 APPEND {5+}\r\nDraft {2+}\r\nhi", Append(b"Draft", (), None, b"hi")),
    ],
    ids=[
        "message-only",
        "flags",
        "empty-flags",
        "date-time",
        "flags-and-date-time",
        "literal-mailbox",
    ],
)
def test_append(line: bytes, append: Append) -> None:
    assert args(line) == append


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"A1 APPEND INBOX", "Missing argument"),
        (b"A1 APPEND INBOX hello", "Expected message literal"),
        (b'A1 APPEND INBOX "hello"', "Invalid date-time"),
        (b'A1 APPEND INBOX "31-Feb-2024 00:00:00 +0000" {2+}\r\nhi', "Invalid date-time"),
        (b'A1 APPEND INBOX "17-Jul-1996 02:44:25" {2+}\r\nhi', "Invalid date-time"),
        (b"A1 APPEND INBOX (\\Recent) {2+}\r\nhi", "Invalid system flag \\Recent"),
        (b"A1 APPEND INBOX (\\Seen {2+}\r\nhi", "Invalid flag"),
        # RFC 3502: what follows a message is another message.
        (b"A1 APPEND INBOX {2+}\r\nhi extra", "Expected message literal"),
    ],
    ids=[
        "no-message",
        "message-not-a-literal",
        "message-quoted",
        "impossible-date",
        "date-without-zone",
        "recent-flag",
        "unclosed-flags",
        "extra",
    ],
)
def test_malformed_append(line: bytes, message: str) -> None:
    assert refuse(line) == ParseError("A1", message)


# --- SEARCH (RFC 3501 §6.4.4) --------------------------------------------------------------


SEARCH_KEYS: list[tuple[str, SearchKey]] = [
    ("ALL", All()),
    ("ANSWERED", FlagKey("\\Answered", True)),
    ("DELETED", FlagKey("\\Deleted", True)),
    ("DRAFT", FlagKey("\\Draft", True)),
    ("FLAGGED", FlagKey("\\Flagged", True)),
    ("RECENT", FlagKey("\\Recent", True)),
    ("SEEN", FlagKey("\\Seen", True)),
    ("UNANSWERED", FlagKey("\\Answered", False)),
    ("UNDELETED", FlagKey("\\Deleted", False)),
    ("UNDRAFT", FlagKey("\\Draft", False)),
    ("UNFLAGGED", FlagKey("\\Flagged", False)),
    ("UNSEEN", FlagKey("\\Seen", False)),
    ("NEW", And((FlagKey("\\Recent", True), FlagKey("\\Seen", False)))),
    ("OLD", FlagKey("\\Recent", False)),
    ("KEYWORD $Forwarded", FlagKey("$Forwarded", True)),
    ("UNKEYWORD Junk", FlagKey("Junk", False)),
    ("BCC bob", HeaderKey("Bcc", "bob")),
    ("CC bob", HeaderKey("Cc", "bob")),
    ('FROM "Smith"', HeaderKey("From", "Smith")),
    ('SUBJECT "status report"', HeaderKey("Subject", "status report")),
    ("TO alice@example.test", HeaderKey("To", "alice@example.test")),
    ('HEADER Message-ID "<x@y>"', HeaderKey("Message-ID", "<x@y>")),
    ('HEADER X-Spam ""', HeaderKey("X-Spam", "")),
    ("BODY invoice", BodyKey("invoice")),
    ('TEXT "a b"', TextKey("a b")),
    ("BEFORE 1-Feb-1994", DateKey("internal", "before", date(1994, 2, 1))),
    ("ON 01-feb-1994", DateKey("internal", "on", date(1994, 2, 1))),
    ("SINCE 31-Dec-2023", DateKey("internal", "since", date(2023, 12, 31))),
    ('SENTBEFORE "1-Feb-1994"', DateKey("sent", "before", date(1994, 2, 1))),
    ("SENTON 1-Feb-1994", DateKey("sent", "on", date(1994, 2, 1))),
    ("SENTSINCE 1-Feb-1994", DateKey("sent", "since", date(1994, 2, 1))),
    ("LARGER 1000", SizeKey("larger", 1000)),
    ("SMALLER 0", SizeKey("smaller", 0)),
    ("UID 1:100,200", SequenceKey(seq("1:100,200"), uid=True)),
    ("2:4,*", SequenceKey(seq("2:4,*"))),
    ("NOT SEEN", Not(FlagKey("\\Seen", True))),
    ("OR SEEN FLAGGED", Or(FlagKey("\\Seen", True), FlagKey("\\Flagged", True))),
    ("(SEEN)", FlagKey("\\Seen", True)),
    ("(SEEN FLAGGED)", And((FlagKey("\\Seen", True), FlagKey("\\Flagged", True)))),
    ("seen", FlagKey("\\Seen", True)),
]


@pytest.mark.parametrize(("criteria", "key"), SEARCH_KEYS, ids=[c for c, _ in SEARCH_KEYS])
def test_search_key(criteria: str, key: SearchKey) -> None:
    assert args(f"A1 SEARCH {criteria}") == Search(None, key)


def test_search_keys_side_by_side_must_all_match() -> None:
    # RFC 3501 §6.4.4 example: FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith".
    assert args('A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"') == Search(
        None,
        And(
            (
                FlagKey("\\Flagged", True),
                DateKey("internal", "since", date(1994, 2, 1)),
                Not(HeaderKey("From", "Smith")),
            )
        ),
    )


def test_search_or_not_nesting() -> None:
    assert args("A1 SEARCH OR NOT (SEEN DELETED) OR UID 5 NOT 1:3") == Search(
        None,
        Or(
            Not(And((FlagKey("\\Seen", True), FlagKey("\\Deleted", True)))),
            Or(SequenceKey(seq("5"), uid=True), Not(SequenceKey(seq("1:3")))),
        ),
    )


def test_search_string_may_be_a_literal() -> None:
    # RFC 3501 §6.4.4 example: a CHARSET search with a literal string.
    line = b"A284 SEARCH CHARSET UTF-8 TEXT {6}\r\nXXXXXX"
    assert args(line) == Search("UTF-8", TextKey("XXXXXX"))


def test_search_utf8_string() -> None:
    line = b"A1 SEARCH CHARSET utf-8 SUBJECT {8+}\r\nr\xc3\xa9sum\xc3\xa9"
    assert args(line) == Search("UTF-8", HeaderKey("Subject", "résumé"))


def test_search_charset_us_ascii_is_accepted() -> None:
    assert args("A1 SEARCH CHARSET US-ASCII ALL") == Search("US-ASCII", All())


def test_unsupported_charset_is_refused_with_badcharset() -> None:
    error = refuse("A1 SEARCH CHARSET ISO-8859-1 ALL")
    assert error == ParseError("A1", "Unsupported charset ISO-8859-1", ErrorKind.BAD_CHARSET)
    # RFC 3501 §6.4.4: a tagged NO, not a BAD, with the BADCHARSET response code.
    assert error.response() == (
        b"A1 NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset ISO-8859-1\r\n"
    )


def test_uid_search() -> None:
    assert parse("A1 UID SEARCH UID 1:*") == Command(
        "A1", "SEARCH", Search(None, SequenceKey(seq("1:*"), uid=True)), uid=True
    )


@pytest.mark.parametrize(
    ("criteria", "message"),
    [
        ("", "Missing argument"),
        ("FROBNICATE", "Unknown search key FROBNICATE"),
        ("FROM", "Missing argument"),
        ("OR SEEN", "Missing argument"),
        ("BEFORE 31-Feb-2024", "Invalid date"),
        ("BEFORE 2024-02-01", "Invalid date"),
        ("BEFORE 1-Foo-2024", "Invalid date"),
        ("LARGER big", "Expected number"),
        ("LARGER 99999999999", "Number out of range"),
        ("UID x", "Invalid sequence set"),
        ("0", "Invalid sequence set"),
        ("(SEEN", "Missing ')'"),
        ("()", "Invalid search key"),
        ("SEEN  FLAGGED", "Invalid search key"),
        ("KEYWORD \\Seen", "Expected atom"),
        ("CHARSET UTF-8", "Missing argument"),
        ("(" * 70 + "SEEN" + ")" * 70, "Search criteria nested too deeply"),
        ("NOT " * 70 + "SEEN", "Search criteria nested too deeply"),
    ],
    ids=[
        "no-key",
        "unknown-key",
        "missing-string",
        "or-with-one-key",
        "impossible-date",
        "iso-date",
        "unknown-month",
        "size-not-a-number",
        "size-too-large",
        "bad-uid-set",
        "zero",
        "unclosed",
        "empty-parentheses",
        "two-spaces",
        "keyword-system-flag",
        "charset-without-keys",
        "deep-parentheses",
        "deep-not",
    ],
)
def test_malformed_search(criteria: str, message: str) -> None:
    assert refuse(f"A1 SEARCH {criteria}".rstrip()) == ParseError("A1", message)


# --- FETCH (RFC 3501 §6.4.5) ---------------------------------------------------------------


FLAGS = FetchItem("FLAGS")


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ("ALL", ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE")),
        ("fast", ("FLAGS", "INTERNALDATE", "RFC822.SIZE")),
        ("FULL", ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY")),
    ],
    ids=["all", "fast", "full"],
)
def test_fetch_macro_is_expanded(items: str, expected: tuple[str, ...]) -> None:
    assert args(f"A1 FETCH 1 {items}") == Fetch(
        seq("1"), tuple(FetchItem(name) for name in expected)
    )


@pytest.mark.parametrize(
    "name",
    [
        "ENVELOPE",
        "FLAGS",
        "INTERNALDATE",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.SIZE",
        "RFC822.TEXT",
        "BODY",
        "BODYSTRUCTURE",
        "UID",
    ],
)
def test_fetch_attribute(name: str) -> None:
    assert args(f"A1 FETCH 1 {name.lower()}") == Fetch(seq("1"), (FetchItem(name),))


def test_fetch_attribute_list() -> None:
    assert args("A1 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])") == Fetch(
        seq("2:4"),
        (FLAGS, FetchBody(Section(text="HEADER.FIELDS", fields=("DATE", "FROM")))),
    )


@pytest.mark.parametrize(
    ("item", "body"),
    [
        ("BODY[]", FetchBody(Section())),
        ("BODY.PEEK[]", FetchBody(Section(), peek=True)),
        ("BODY[HEADER]", FetchBody(Section(text="HEADER"))),
        ("body.peek[header]", FetchBody(Section(text="HEADER"), peek=True)),
        ("BODY[TEXT]", FetchBody(Section(text="TEXT"))),
        ("BODY[1]", FetchBody(Section((1,)))),
        ("BODY[4.2.2.1]", FetchBody(Section((4, 2, 2, 1)))),
        ("BODY[3.HEADER]", FetchBody(Section((3,), "HEADER"))),
        ("BODY[3.TEXT]", FetchBody(Section((3,), "TEXT"))),
        ("BODY[1.MIME]", FetchBody(Section((1,), "MIME"))),
        (
            "BODY[HEADER.FIELDS (From To Message-ID)]",
            FetchBody(Section(text="HEADER.FIELDS", fields=("From", "To", "Message-ID"))),
        ),
        (
            'BODY.PEEK[2.HEADER.FIELDS.NOT ("X-Spam")]',
            FetchBody(Section((2,), "HEADER.FIELDS.NOT", ("X-Spam",)), peek=True),
        ),
        ("BODY[]<0.1024>", FetchBody(Section(), partial=Partial(0, 1024))),
        ("BODY.PEEK[TEXT]<500.100>", FetchBody(Section(text="TEXT"), True, Partial(500, 100))),
        # RFC 9051 §9: partial = "<" number64 "." nz-number64 ">".
        ("BODY[]<5000000000.1>", FetchBody(Section(), partial=Partial(5_000_000_000, 1))),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_fetch_body_section(item: str, body: FetchBody) -> None:
    assert args(f"A1 FETCH 1 {item}") == Fetch(seq("1"), (body,))


@pytest.mark.parametrize(
    ("body", "label"),
    [
        (FetchBody(Section()), "BODY[]"),
        (FetchBody(Section(text="HEADER"), peek=True), "BODY[HEADER]"),
        (FetchBody(Section((1, 2), "MIME")), "BODY[1.2.MIME]"),
        (
            FetchBody(Section(text="HEADER.FIELDS", fields=("From", "X Y"))),
            'BODY[HEADER.FIELDS (From "X Y")]',
        ),
        (FetchBody(Section(), partial=Partial(0, 1024)), "BODY[]<0>"),
    ],
    ids=["whole", "peek-answered-as-body", "mime", "fields", "partial-names-its-origin"],
)
def test_fetch_body_response_label(body: FetchBody, label: str) -> None:
    # RFC 3501 §7.4.2.
    assert body.label() == label


def test_uid_fetch() -> None:
    assert parse("A999 UID FETCH 4827313:4828442 FLAGS") == Command(
        "A999", "FETCH", Fetch(seq("4827313:4828442"), (FLAGS,)), uid=True
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("A1 FETCH", "Missing argument"),
        ("A1 FETCH 1", "Missing argument"),
        ("A1 FETCH 1:x FLAGS", "Invalid sequence set"),
        ("A1 FETCH 1 BINARY.FOO[]", "Invalid FETCH attribute BINARY.FOO"),
        ("A1 FETCH 1 BODY.PEEK", "Invalid FETCH attribute BODY.PEEK"),
        ("A1 FETCH 1 (ALL)", "Invalid FETCH attribute ALL"),
        ("A1 FETCH 1 ()", "Invalid FETCH attribute )"),
        ("A1 FETCH 1 (FLAGS", "Missing ')'"),
        ("A1 FETCH 1 ALL FLAGS", "Unexpected extra arguments"),
        ("A1 FETCH 1 BODY[MIME]", "Invalid section"),
        ("A1 FETCH 1 BODY[0]", "Invalid section"),
        ("A1 FETCH 1 BODY[1.]", "Invalid section"),
        ("A1 FETCH 1 BODY[FOO]", "Invalid section"),
        ("A1 FETCH 1 BODY[HEADER", "Invalid section"),
        ("A1 FETCH 1 BODY[HEADER.FIELDS]", "Expected space"),
        ("A1 FETCH 1 BODY[HEADER.FIELDS ()]", "Expected string"),
        (b'A1 FETCH 1 BODY[HEADER.FIELDS ("Caf\xc3\xa9")]', "Invalid header field name"),
        ("A1 FETCH 1 BODY[]<0.0>", "Invalid partial"),
        ("A1 FETCH 1 BODY[]<5>", "Invalid partial"),
        ("A1 FETCH 1 BODY[]<0.10", "Invalid partial"),
        ("A1 FETCH 1 BODY[]<9223372036854775808.1>", "Invalid partial"),
    ],
    ids=[
        "no-set",
        "no-items",
        "bad-set",
        "unknown-binary-item",
        "peek-without-section",
        "macro-in-list",
        "empty-list",
        "unclosed",
        "macro-and-more",
        "mime-of-message",
        "part-zero",
        "dangling-dot",
        "unknown-text",
        "unclosed-section",
        "fields-without-list",
        "empty-field-list",
        "non-ascii-field-name",
        "zero-count",
        "no-count",
        "unclosed-partial",
        "partial-over-63-bits",
    ],
)
def test_malformed_fetch(line: str | bytes, message: str) -> None:
    assert refuse(line) == ParseError("A1", message)


# --- STORE (RFC 3501 §6.4.6) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "store"),
    [
        ("A1 STORE 2:4 FLAGS (\\Seen)", Store(seq("2:4"), "replace", False, ("\\Seen",))),
        ("A1 STORE 2:4 +FLAGS (\\Deleted)", Store(seq("2:4"), "add", False, ("\\Deleted",))),
        ("A1 STORE 2:4 -flags.silent \\seen", Store(seq("2:4"), "remove", True, ("\\Seen",))),
        ("A1 STORE 1 FLAGS.SILENT ()", Store(seq("1"), "replace", True, ())),
        (
            "A1 STORE 1 +FLAGS \\Answered $Forwarded",
            Store(seq("1"), "add", False, ("\\Answered", "$Forwarded")),
        ),
        (
            "A1 STORE * +FLAGS (\\draft \\FLAGGED NonJunk)",
            Store(seq("*"), "add", False, ("\\Draft", "\\Flagged", "NonJunk")),
        ),
    ],
    ids=["replace", "add", "remove-silent-single", "clear", "single-flags", "normalised"],
)
def test_store(line: str, store: Store) -> None:
    assert args(line) == store


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("A1 STORE 1 FLAGS", "Missing argument"),
        ("A1 STORE 1 LABELS (x)", "Invalid STORE item LABELS"),
        ("A1 STORE 1 *FLAGS (x)", "Expected atom"),
        ("A1 STORE 1 FLAGS (\\Recent)", "Invalid system flag \\Recent"),
        ("A1 STORE 1 FLAGS (\\Important)", "Invalid system flag \\Important"),
        ("A1 STORE 1 FLAGS (\\)", "Invalid flag"),
        ("A1 STORE 1 FLAGS (a b", "Missing ')'"),
        ("A1 STORE 1 FLAGS (a) b", "Unexpected extra arguments"),
    ],
    ids=[
        "no-flags",
        "unknown-item",
        "star-item",
        "recent",
        "unknown-system-flag",
        "bare-backslash",
        "unclosed",
        "after-list",
    ],
)
def test_malformed_store(line: str, message: str) -> None:
    assert refuse(line) == ParseError("A1", message)


def test_uid_store() -> None:
    assert parse("A1 UID STORE 7 +FLAGS.SILENT (\\Seen)") == Command(
        "A1", "STORE", Store(seq("7"), "add", True, ("\\Seen",)), uid=True
    )


# --- COPY, MOVE, UID EXPUNGE ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("A1 COPY 2:4 MEETING", Command("A1", "COPY", CopyMessages(seq("2:4"), b"MEETING"))),
        ("A1 UID COPY 1:* inbox", Command("A1", "COPY", CopyMessages(seq("1:*"), b"inbox"), True)),
        ('A1 MOVE 1,3 "Old Mail"', Command("A1", "MOVE", CopyMessages(seq("1,3"), b"Old Mail"))),
        ("A1 uid move 42 Trash", Command("A1", "MOVE", CopyMessages(seq("42"), b"Trash"), True)),
        ("A1 UID EXPUNGE 3000:3002", Command("A1", "EXPUNGE", UidExpunge(seq("3000:3002")), True)),
    ],
    ids=["copy", "uid-copy", "move", "uid-move", "uid-expunge"],
)
def test_message_transfer_commands(line: str, command: Command) -> None:
    assert parse(line) == command


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("A1 COPY 1", "Missing argument"),
        ("A1 UID", "Missing argument"),
        ("A1 UID NOOP", "Invalid UID command NOOP"),
        ("A1 UID EXPUNGE", "Missing argument"),
        ("A1 EXPUNGE 1:3", "Unexpected extra arguments"),
    ],
    ids=["copy-without-mailbox", "uid-alone", "uid-noop", "uid-expunge-without-set", "expunge-set"],
)
def test_malformed_transfer(line: str, message: str) -> None:
    assert refuse(line) == ParseError("A1", message)


# --- ID, ENABLE ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "id_args"),
    [
        ("A1 ID NIL", Id(None)),
        ("A1 ID ()", Id(())),
        (
            'A1 ID ("name" "sodr" "version" "19.34" "vendor" NIL)',
            Id((("name", "sodr"), ("version", "19.34"), ("vendor", None))),
        ),
        (b"A1 ID ({4+}\r\nname {2+}\r\nmu)", Id((("name", "mu"),))),
    ],
    ids=["nil", "empty", "pairs", "literals"],
)
def test_id(line: str | bytes, id_args: Id) -> None:
    # RFC 2971 §3.1.
    assert args(line) == id_args


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("A1 ID", "Missing argument"),
        ('A1 ID ("name")', "Expected space"),
        ("A1 ID (name x)", "Expected string"),
        ('A1 ID ("name" "x"', "Missing ')'"),
    ],
    ids=["missing", "key-without-value", "atom-key", "unclosed"],
)
def test_malformed_id(line: str, message: str) -> None:
    assert refuse(line) == ParseError("A1", message)


def test_enable_upper_cases_its_capabilities() -> None:
    # RFC 5161 §3.1.
    assert args("A1 ENABLE condstore Utf8=Accept") == Enable(("CONDSTORE", "UTF8=ACCEPT"))


def test_enable_needs_a_capability() -> None:
    assert refuse("A1 ENABLE") == ParseError("A1", "Missing argument")


# --- sequence sets (RFC 3501 §9) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ranges"),
    [
        ("1", ((1, 1),)),
        ("2:4", ((2, 4),)),
        ("*", ((None, None),)),
        ("3:*", ((3, None),)),
        ("*:3", ((3, None),)),
        ("1,3:5,9:*", ((1, 1), (3, 5), (9, None))),
        ("4294967295", ((4294967295, 4294967295),)),
    ],
    ids=["number", "range", "star", "to-star", "from-star", "list", "largest"],
)
def test_sequence_set_ranges(text: str, ranges: tuple[tuple[int | None, int | None], ...]) -> None:
    assert seq(text).ranges == ranges


def test_reversed_range_is_normalised() -> None:
    # RFC 3501 §9: "4:2" is equivalent to "2:4".
    assert seq("5:2") == seq("2:5")


@pytest.mark.parametrize(
    "text",
    ["", "0", "1:0", "01", "1:", ":1", "1,", ",1", "1,,2", "a", "1-3", "4294967296", "1:**"],
)
def test_invalid_sequence_set(text: str) -> None:
    with pytest.raises(ValueError, match="Invalid sequence set"):
        seq(text)


@pytest.mark.parametrize("text", ["1", "1:3", "3:*", "*", "1,3:5,9:*", "7,1:2,7"])
def test_sequence_set_prints_its_wire_form(text: str) -> None:
    assert str(seq(text)) == text


@pytest.mark.parametrize(
    ("text", "max_value", "resolved"),
    [
        ("1:3", 10, (range(1, 4),)),
        ("3:*", 10, (range(3, 11),)),
        ("*", 10, (range(10, 11),)),
        ("5:2", 10, (range(2, 6),)),
        ("1,2,3,7:8", 10, (range(1, 4), range(7, 9))),
        ("7:9,1:8", 10, (range(1, 10),)),
        ("8:20", 10, (range(8, 11),)),
        ("10:*", 5, (range(5, 6),)),
        ("20:30", 10, ()),
        ("*", 0, ()),
    ],
    ids=[
        "range",
        "to-star",
        "star",
        "reversed",
        "adjacent-merged",
        "overlap-merged",
        "clipped",
        "star-below-number",
        "beyond-the-end",
        "empty-mailbox",
    ],
)
def test_sequence_set_resolves_against_the_largest_number(
    text: str, max_value: int, resolved: tuple[range, ...]
) -> None:
    assert seq(text).resolve(max_value) == resolved


def test_uid_range_ending_in_star_includes_the_last_message() -> None:
    # RFC 3501 §6.4.8: "UID FETCH 10:*" in a mailbox whose largest UID is 5 returns UID 5.
    assert seq("10:*").contains(5, max_value=5)


@pytest.mark.parametrize(
    ("number", "contained"), [(1, True), (2, False), (4, True), (6, True), (11, False)]
)
def test_sequence_set_contains(number: int, contained: bool) -> None:
    assert seq("1,3:4,6:*").contains(number, max_value=10) is contained


def test_sequence_set_numbers_are_ascending_and_unique() -> None:
    assert list(seq("5,1:3,2,*").numbers(6)) == [1, 2, 3, 5, 6]


def test_sequence_set_of_numbers() -> None:
    assert SequenceSet.of(3, 1) == seq("3,1")


@pytest.mark.parametrize(("text", "largest"), [("1:3,7", 7), ("5:*", 5), ("*", None)])
def test_largest_explicit_number(text: str, largest: int | None) -> None:
    assert seq(text).largest_explicit() == largest


def test_sequence_set_is_never_empty() -> None:
    with pytest.raises(ValueError, match="at least one range"):
        SequenceSet(())


# --- date-time (RFC 3501 §9) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("17-Jul-1996 02:44:25 -0700", datetime(1996, 7, 17, 2, 44, 25, tzinfo=PDT)),
        (
            " 7-Feb-1994 21:52:25 -0800",
            datetime(1994, 2, 7, 21, 52, 25, tzinfo=timezone(timedelta(hours=-8))),
        ),
        ("07-feb-1994 21:52:25 +0000", datetime(1994, 2, 7, 21, 52, 25, tzinfo=UTC)),
        (
            "7-FEB-1994 21:52:25 +0530",
            datetime(1994, 2, 7, 21, 52, 25, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        ),
    ],
    ids=["rfc-example", "space-padded-day", "lower-case-month", "one-digit-day"],
)
def test_date_time(text: str, moment: datetime) -> None:
    parsed = parse_date_time(text)
    assert parsed == moment
    assert parsed.utcoffset() == moment.utcoffset()


@pytest.mark.parametrize(
    "text",
    [
        "17-Jul-1996 02:44:25",
        "17-Jul-1996 02:44:25 -07:00",
        "17-Jly-1996 02:44:25 -0700",
        "30-Feb-1996 02:44:25 -0700",
        "17-Jul-1996 24:00:00 -0700",
        "17-Jul-1996 02:44:25 +0060",
        "1996-07-17 02:44:25 -0700",
    ],
    ids=["no-zone", "colon-zone", "bad-month", "impossible-day", "hour-24", "zone-minutes", "iso"],
)
def test_invalid_date_time(text: str) -> None:
    with pytest.raises(ValueError, match="Invalid date-time"):
        parse_date_time(text)


@given(st.binary(max_size=200))
def test_authenticate_continuation_round_trips_any_response(response: bytes) -> None:
    # RFC 4648 §4: whatever the client encodes is what the session gets back.
    assert parse_auth_response(base64.b64encode(response)) == response


@pytest.mark.parametrize("line", [b" AGZy", b"AGZy ", b" * ", b"AGZy\n"], ids=str)
def test_authenticate_continuation_is_only_the_base64_line(line: bytes) -> None:
    with pytest.raises(ImapSyntaxError, match="Invalid base64"):
        parse_auth_response(line)


# --- RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 6154 §5 -----------------------------


def test_list_extended_takes_selection_patterns_and_return_options() -> None:
    line = 'A1 LIST (subscribed recursivematch) "" (INBOX "Fruit/*")'
    assert args(line + " RETURN (children STATUS (messages))") == ListMailboxes(
        b"",
        b"INBOX",
        more=(b"Fruit/*",),
        select=frozenset({"SUBSCRIBED", "RECURSIVEMATCH"}),
        returns=frozenset({"CHILDREN", "STATUS"}),
        status=("MESSAGES",),
        extended=True,
    )


def test_list_extended_keeps_every_pattern_as_sent() -> None:
    listed = args('A1 LIST "" (a&b Work)')
    assert isinstance(listed, ListMailboxes)
    assert listed.patterns() == (b"a&b", b"Work")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('A1 LIST (FOO) "" *', "Unknown LIST selection option FOO"),
        ('A1 LIST (RECURSIVEMATCH) "" *', "RECURSIVEMATCH needs another selection option"),
        ('A1 LIST "" * RETURN (FOO)', "Unknown LIST return option FOO"),
        ('A1 LIST "" * RETURN (STATUS (FOO))', "Invalid STATUS item FOO"),
        ('A1 LIST "" * EXTRA', "Unexpected extra arguments"),
        ('A1 LIST "" ()', "Expected string"),
    ],
    ids=["selection", "recursivematch", "return", "status-item", "extra", "no-pattern"],
)
def test_list_extended_refuses_what_it_does_not_know(line: str, message: str) -> None:
    assert refuse(line) == ParseError("A1", message)


# --- RFC 3502 MULTIAPPEND ---------------------------------------------------------------------


def test_multiappend_takes_several_messages_each_with_its_options() -> None:
    appended = args(b'A1 APPEND Drafts {1+}\r\na (\\Seen) " 7-Feb-1994 21:52:25 -0800" {1+}\r\nb')
    assert isinstance(appended, Append)
    assert [(m.flags, m.message) for m in appended.messages()] == [((), b"a"), (("\\Seen",), b"b")]
    assert appended.more[0].date_time is not None


def test_multiappend_needs_a_literal_after_each_space() -> None:
    assert refuse(b"A1 APPEND Drafts {1+}\r\na (\\Seen)") == ParseError("A1", "Missing argument")


# --- RFC 4978 COMPRESS ----------------------------------------------------------------------


def test_compress_takes_its_mechanism_upper_cased() -> None:
    assert parse("A1 COMPRESS deflate") == Command("A1", "COMPRESS", Compress("DEFLATE"))


def test_compress_needs_a_mechanism() -> None:
    assert refuse("A1 COMPRESS") == ParseError("A1", "Missing argument")


def test_the_input_after_a_command_can_be_taken_out() -> None:
    # RFC 4978 §3: what follows COMPRESS is compressed; the server decompresses it first.
    reader = CommandReader()
    reader.feed(b"A1 COMPRESS DEFLATE\r\n\x4b\x00")
    assert isinstance(reader.next_event(), Command)
    assert reader.take_input() == b"\x4b\x00"
    assert reader.next_event() is None
