"""Properties of the POP3 command-line parser, for any input."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from postroom.access.pop3.protocol import (
    MAX_LINE,
    CommandError,
    Pop3Session,
    Send,
    parse_command,
)

keywords = st.sampled_from(["USER", "PASS", "STAT", "LIST", "RETR", "DELE", "TOP", "UIDL"])
words = st.text(
    alphabet=st.characters(
        min_codepoint=0x21, max_codepoint=0x2FFF, exclude_categories=["Cs", "Cc"]
    ),
    min_size=1,
    max_size=30,
)


@given(st.binary(max_size=MAX_LINE + 10))
def test_any_bytes_parse_or_raise_command_error(line: bytes) -> None:
    try:
        command = parse_command(line)
    except CommandError as exc:
        reason = str(exc)
        assert reason
        return
    assert 3 <= len(command.name) <= 4
    assert command.name == command.name.upper()


@given(keywords, st.lists(words, max_size=4), st.sampled_from(["\r\n", "\n", ""]))
def test_commands_round_trip(keyword: str, args: list[str], ending: str) -> None:
    line = " ".join([keyword.lower(), *args]) + ending
    command = parse_command(line.encode())
    assert command.name == keyword
    assert list(command.args) == args
    assert command.rest == " ".join(args)


@given(st.binary(max_size=300))
def test_a_session_answers_every_line_with_one_reply(line: bytes) -> None:
    session = Pop3Session(hostname="h.test", tls_available=True)
    events = session.receive_line(line.replace(b"\n", b"") + b"\r\n")
    sent = b"".join(e.data for e in events if isinstance(e, Send))
    # Either a reply line, or a request the server carries out (STLS, a login) first.
    assert sent == b"" or sent.startswith((b"+OK", b"-ERR", b"+ \r\n"))
    assert sent.endswith(b"\r\n") or not sent
