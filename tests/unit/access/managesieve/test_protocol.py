"""ManageSieve (RFC 5804) sessions without sockets: bytes in, exact responses out."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.access.managesieve.protocol import (
    MAX_LINE,
    Atom,
    Close,
    CommandReader,
    Done,
    Event,
    FatalProtocolError,
    Listing,
    Login,
    ManageSieveSession,
    Operation,
    ProtocolError,
    Refused,
    ScriptText,
    Send,
    StartTls,
    State,
    Unauthenticated,
    string,
)


def sent(events: list[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Send))


def session(*, loopback: bool = True, tls: bool = True) -> ManageSieveSession:
    return ManageSieveSession(
        tls_available=tls,
        plaintext_allowed_without_tls=loopback,
        max_script_size=1000,
        max_redirects=4,
    )


def plain(user: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


def logged_in() -> ManageSieveSession:
    s = session()
    [login] = [
        e
        for e in s.receive(f'AUTHENTICATE "PLAIN" "{plain("a@x.test", "pw")}"\r\n'.encode())
        if isinstance(e, Login)
    ]
    assert login == Login("a@x.test", "pw")
    s.login_succeeded("a@x.test")
    return s


# -- the reader (RFC 5804 §4) --------------------------------------------------------------------


def test_reader_reads_atoms_quoted_strings_and_literals() -> None:
    reader = CommandReader(max_literal=100)
    reader.feed(b'PUTSCRIPT "my \\"x\\"" {5+}\r\nkeep;\r\n')
    assert reader.next_line() == [Atom("PUTSCRIPT"), b'my "x"', b"keep;"]


def test_reader_waits_for_the_whole_literal() -> None:
    reader = CommandReader(max_literal=100)
    reader.feed(b"CHECKSCRIPT {9}\r\nkeep;")
    assert reader.next_line() is None
    reader.feed(b"\r\nab\r\n")
    assert reader.next_line() == [Atom("CHECKSCRIPT"), b"keep;\r\nab"]


def test_reader_refuses_a_literal_past_the_limit() -> None:
    reader = CommandReader(max_literal=10)
    reader.feed(b'PUTSCRIPT "a" {11+}\r\n')
    with pytest.raises(FatalProtocolError, match="Literal too large"):
        reader.next_line()


def test_reader_refuses_an_endless_line() -> None:
    reader = CommandReader(max_literal=10)
    reader.feed(b"X" * (MAX_LINE + 10))
    with pytest.raises(FatalProtocolError, match="Line too long"):
        reader.next_line()


def test_reader_skips_a_bad_command_and_reads_the_next() -> None:
    reader = CommandReader(max_literal=10)
    reader.feed(b'NOOP "a\\b"\r\nNOOP\r\n')
    with pytest.raises(ProtocolError):
        reader.next_line()
    assert reader.next_line() == [Atom("NOOP")]


@given(st.text(max_size=300))
def test_string_encoding_reads_back(value: str) -> None:
    reader = CommandReader(max_literal=10_000)
    reader.feed(b"NOOP " + string(value) + b"\r\n")
    assert reader.next_line() == [Atom("NOOP"), value.encode()]


@given(st.binary(max_size=200), st.integers(1, 17))
def test_reader_in_any_chunks_never_crashes(data: bytes, chunk: int) -> None:
    reader = CommandReader(max_literal=64)
    for i in range(0, len(data), chunk):
        reader.feed(data[i : i + chunk])
        try:
            while reader.next_line() is not None:
                pass
        except FatalProtocolError:
            return
        except ProtocolError:
            continue


# -- the session ---------------------------------------------------------------------------------


def test_greeting_lists_capabilities_then_ok() -> None:  # RFC 5804 §1.7
    greeting = sent(session().greeting())
    assert greeting.startswith(b'"IMPLEMENTATION" "Postroom"\r\n"SIEVE" "fileinto reject ')
    assert b'"SASL" "PLAIN"\r\n' in greeting
    assert b'"STARTTLS"\r\n' in greeting
    assert b'"VERSION" "1.0"\r\n' in greeting
    assert greeting.endswith(b'OK "Postroom ManageSieve ready."\r\n')


def test_sasl_is_empty_before_tls_from_a_stranger() -> None:  # RFC 5804 §1.7
    assert b'"SASL" ""\r\n' in sent(session(loopback=False).greeting())


def test_authenticate_without_tls_from_a_stranger_needs_encryption() -> None:  # §1.3
    s = session(loopback=False)
    events = s.receive(f'AUTHENTICATE "PLAIN" "{plain("a", "b")}"\r\n'.encode())
    assert (
        sent(events)
        == b'NO (ENCRYPT-NEEDED) "Plaintext authentication needs TLS; use STARTTLS."\r\n'
    )


def test_starttls_then_capabilities_again() -> None:  # RFC 5804 §2.2
    s = session(loopback=False)
    events = s.receive(b"STARTTLS\r\n")
    assert events == [Send(b'OK "Begin TLS negotiation now."\r\n'), StartTls()]
    again = sent(s.tls_started())
    assert b'"SASL" "PLAIN"\r\n' in again
    assert b"STARTTLS" not in again
    assert again.endswith(b'OK "TLS negotiation successful."\r\n')


def test_authenticate_with_a_continuation() -> None:  # RFC 5804 §2.1
    s = session()
    assert s.receive(b'AUTHENTICATE "PLAIN"\r\n') == [Send(b'""\r\n')]
    response = plain("a@x.test", "pw").encode()
    events = s.receive(b"{%d+}\r\n" % len(response) + response + b"\r\n")
    assert events == [Login("a@x.test", "pw")]


def test_authenticate_cancelled() -> None:  # RFC 5804 §2.1
    s = session()
    s.receive(b'AUTHENTICATE "PLAIN"\r\n')
    assert sent(s.receive(b'"*"\r\n')) == b'NO "Authentication cancelled."\r\n'


def test_failed_login() -> None:
    s = session()
    s.receive(f'AUTHENTICATE "PLAIN" "{plain("a", "b")}"\r\n'.encode())
    assert sent(s.login_failed("auth")) == b'NO "Authentication failed."\r\n'
    assert s.state is State.NONAUTH


def test_acting_as_another_user_is_refused() -> None:  # RFC 4616 §2
    s = session()
    events = s.receive(f'AUTHENTICATE "PLAIN" "{plain("a", "b", "root")}"\r\n'.encode())
    assert sent(events) == b'NO "Acting as another user is not allowed."\r\n'


def test_commands_need_authentication() -> None:
    assert sent(session().receive(b"LISTSCRIPTS\r\n")) == (
        b'NO "LISTSCRIPTS is not allowed in the non-authenticated state."\r\n'
    )


def test_unknown_command() -> None:
    assert sent(session().receive(b"FROB\r\n")) == b'NO "Unknown command."\r\n'


def test_noop_with_tag() -> None:  # RFC 5804 §2.11
    assert sent(session().receive(b'NOOP "STARTTLS-SYNC-42"\r\n')) == (
        b'OK (TAG "STARTTLS-SYNC-42") "Done"\r\n'
    )


def test_logout() -> None:  # RFC 5804 §2.3
    assert session().receive(b"LOGOUT\r\n") == [Send(b'OK "Logout completed."\r\n'), Close()]


def test_checkscript_reports_the_line() -> None:  # RFC 5804 §2.12
    s = logged_in()
    script = b"keep;\r\nfrob;\r\n"
    events = s.receive(b"CHECKSCRIPT {%d+}\r\n" % len(script) + script + b"\r\n")
    assert sent(events) == b"NO \"line 2: 'frob' is an unknown command, not a command\"\r\n"
    assert sent(s.receive(b'CHECKSCRIPT "keep;"\r\n')) == b'OK "Script is valid."\r\n'


def test_putscript_past_the_size_limit() -> None:  # RFC 5804 §1.3 QUOTA/MAXSIZE
    s = logged_in()
    script = b"keep;" * 201
    events = s.receive(b'PUTSCRIPT "big" {%d+}\r\n' % len(script) + script + b"\r\n")
    assert sent(events) == b'NO (QUOTA/MAXSIZE) "Scripts are at most 1000 octets."\r\n'


def test_putscript_asks_the_server_then_answers() -> None:  # RFC 5804 §2.6
    s = logged_in()
    assert s.receive(b'PUTSCRIPT "main" "keep;"\r\n') == [Operation("PUTSCRIPT", ("main", "keep;"))]
    # A second command waits until the first is done.
    assert s.receive(b"LISTSCRIPTS\r\n") == []
    assert sent(s.operation_done(Done("Putscript completed."))) == b'OK "Putscript completed."\r\n'
    assert s.receive(b"") == [Operation("LISTSCRIPTS", ())]


def test_listscripts_marks_the_active_one() -> None:  # RFC 5804 §2.7
    s = logged_in()
    s.receive(b"LISTSCRIPTS\r\n")
    assert sent(s.operation_done(Listing([("a", False), ("main", True)]))) == (
        b'"a"\r\n"main" ACTIVE\r\nOK "Listscripts completed."\r\n'
    )


def test_getscript_answers_with_a_literal() -> None:  # RFC 5804 §2.9
    s = logged_in()
    s.receive(b'GETSCRIPT "main"\r\n')
    assert sent(s.operation_done(ScriptText("keep;\r\n"))) == (
        b'{7}\r\nkeep;\r\n\r\nOK "Getscript completed."\r\n'
    )


def test_refusals_carry_their_response_code() -> None:  # RFC 5804 §1.3
    s = logged_in()
    s.receive(b'DELETESCRIPT "main"\r\n')
    assert sent(s.operation_done(Refused("script 'main' is active", "ACTIVE"))) == (
        b"NO (ACTIVE) \"script 'main' is active\"\r\n"
    )


def test_havespace_over_the_limit() -> None:  # RFC 5804 §2.5
    s = logged_in()
    assert sent(s.receive(b'HAVESPACE "x" 5000\r\n')) == (
        b'NO (QUOTA/MAXSIZE) "Scripts are at most 1000 octets."\r\n'
    )
    assert s.receive(b'HAVESPACE "x" 10\r\n') == [Operation("HAVESPACE", ("x", 10))]


def test_unauthenticate_returns_to_the_first_state() -> None:  # RFC 5804 §2.14
    s = logged_in()
    assert s.receive(b"UNAUTHENTICATE\r\n") == [
        Unauthenticated(),
        Send(b'OK "Unauthenticate completed."\r\n'),
    ]
    assert s.state is State.NONAUTH


def test_a_literal_too_large_ends_the_session_with_bye() -> None:
    s = logged_in()
    events = s.receive(b'PUTSCRIPT "x" {999999+}\r\n')
    assert events == [Send(b'BYE "Literal too large"\r\n'), Close()]
