"""The POP3 session command by command (RFC 1939, 2449, 2595, 5034), without sockets."""

from __future__ import annotations

import base64

import pytest

from postroom.access.pop3.protocol import (
    Close,
    Entry,
    Event,
    Login,
    Pop3Session,
    Send,
    SendMessage,
    StartTls,
    State,
    Update,
)

ENTRIES = [Entry(uid=10, size=120), Entry(uid=11, size=200), Entry(uid=15, size=7)]


def replies(events: list[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Send))


class Transcript:
    def __init__(self, session: Pop3Session) -> None:
        self.session = session

    def send(self, line: str) -> list[Event]:
        return self.session.receive_line(line.encode() + b"\r\n")

    def reply(self, line: str) -> bytes:
        return replies(self.send(line))


def new_session(**kw: bool) -> Pop3Session:
    options = {"tls_available": True, "plaintext_allowed_without_tls": True, **kw}
    return Pop3Session(hostname="pop.example.test", **options)


@pytest.fixture
def auth() -> Transcript:
    return Transcript(new_session())


@pytest.fixture
def tx() -> Transcript:
    session = new_session()
    t = Transcript(session)
    t.send("USER alice@example.test")
    t.send("PASS secret")
    session.login_succeeded(ENTRIES, uid_validity=77)
    return t


# --- AUTHORIZATION ----------------------------------------------------------------------


def test_greeting_is_positive() -> None:
    assert new_session().greeting() == b"+OK pop.example.test POP3 server ready\r\n"


def test_user_then_pass_asks_for_a_login(auth: Transcript) -> None:
    assert auth.reply("USER alice@example.test") == b"+OK Send PASS\r\n"
    assert auth.send("PASS pass word with spaces") == [
        Login("alice@example.test", "pass word with spaces")
    ]


def test_keywords_are_case_insensitive(auth: Transcript) -> None:
    assert auth.reply("user alice") == b"+OK Send PASS\r\n"


def test_pass_before_user_is_refused(auth: Transcript) -> None:
    assert auth.reply("PASS secret") == b"-ERR Send USER first\r\n"


def test_user_without_name_is_refused(auth: Transcript) -> None:
    assert auth.reply("USER") == b"-ERR USER takes exactly one argument, the mailbox name\r\n"


def test_login_success_enters_transaction(auth: Transcript) -> None:
    auth.send("USER alice")
    auth.send("PASS pw")
    events = auth.session.login_succeeded(ENTRIES, uid_validity=77)
    assert replies(events) == b"+OK Logged in, maildrop has 3 messages (327 octets)\r\n"
    assert auth.session.state is State.TRANSACTION


@pytest.mark.parametrize(
    ("reason", "reply"),
    [
        ("auth", b"-ERR [AUTH] Authentication failed\r\n"),
        ("locked-out", b"-ERR [AUTH] Too many failed logins, try again later\r\n"),
        ("in-use", b"-ERR [IN-USE] The maildrop is in use by another session\r\n"),
        ("temp", b"-ERR [SYS/TEMP] The mail store is unavailable, try again later\r\n"),
    ],
    ids=["auth", "locked-out", "in-use", "sys-temp"],
)
def test_login_failure_replies_with_its_response_code(
    auth: Transcript, reason: str, reply: bytes
) -> None:
    auth.send("USER alice")
    auth.send("PASS pw")
    assert replies(auth.session.login_failed(reason)) == reply  # type: ignore[arg-type]
    assert auth.session.state is State.AUTHORIZATION


def test_after_a_failed_login_user_is_needed_again(auth: Transcript) -> None:
    auth.send("USER alice")
    auth.send("PASS pw")
    auth.session.login_failed("auth")
    assert auth.reply("PASS pw") == b"-ERR Send USER first\r\n"


def test_plaintext_login_is_refused_before_tls_from_afar() -> None:
    t = Transcript(new_session(plaintext_allowed_without_tls=False))
    assert t.reply("USER alice").startswith(b"-ERR [AUTH] Plaintext authentication disallowed")
    assert t.reply("AUTH PLAIN AGFsaWNlAHB3").startswith(b"-ERR [AUTH] Plaintext")


def test_plaintext_login_is_allowed_after_stls() -> None:
    t = Transcript(new_session(plaintext_allowed_without_tls=False))
    assert t.send("STLS") == [Send(b"+OK Begin TLS negotiation\r\n"), StartTls()]
    t.session.tls_started()
    assert t.reply("USER alice") == b"+OK Send PASS\r\n"


def test_stls_forgets_the_user_given_before(auth: Transcript) -> None:
    auth.send("USER alice")
    auth.send("STLS")
    auth.session.tls_started()
    assert auth.reply("PASS pw") == b"-ERR Send USER first\r\n"


def test_stls_twice_is_refused() -> None:
    t = Transcript(new_session(tls_active=True))
    assert t.reply("STLS") == b"-ERR TLS is already active\r\n"


def test_stls_without_tls_configured_is_refused() -> None:
    t = Transcript(new_session(tls_available=False))
    assert t.reply("STLS") == b"-ERR TLS is not available\r\n"


def test_capa_lists_the_capabilities_before_tls(auth: Transcript) -> None:
    assert auth.reply("CAPA") == (
        b"+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
        b"PIPELINING\r\nUSER\r\nSASL PLAIN\r\nSTLS\r\nIMPLEMENTATION Postroom\r\n.\r\n"
    )


def test_capa_hides_password_logins_where_they_are_refused() -> None:
    t = Transcript(new_session(plaintext_allowed_without_tls=False))
    capa = t.reply("CAPA")
    assert b"USER\r\n" not in capa
    assert b"SASL" not in capa
    assert b"STLS\r\n" in capa


def test_capa_after_tls_does_not_offer_stls() -> None:
    t = Transcript(new_session(tls_active=True))
    assert b"STLS" not in t.reply("CAPA")


def test_auth_plain_with_initial_response(auth: Transcript) -> None:
    token = base64.b64encode(b"\0alice@example.test\0pw 1").decode()
    assert auth.send(f"AUTH PLAIN {token}") == [Login("alice@example.test", "pw 1")]


def test_auth_plain_with_continuation(auth: Transcript) -> None:
    assert auth.reply("AUTH PLAIN") == b"+ \r\n"
    token = base64.b64encode(b"alice\0alice\0pw").decode()
    assert auth.send(token) == [Login("alice", "pw")]


def test_auth_plain_cancelled_with_star(auth: Transcript) -> None:
    auth.send("AUTH PLAIN")
    assert auth.reply("*") == b"-ERR Authentication cancelled\r\n"
    assert auth.reply("NOOP") == b"-ERR NOOP is not valid in the AUTHORIZATION state\r\n"


def test_auth_plain_with_bad_base64_is_refused(auth: Transcript) -> None:
    auth.send("AUTH PLAIN")
    assert auth.reply("!!!") == b"-ERR Invalid base64 in the SASL response\r\n"


def test_auth_plain_for_another_identity_is_refused(auth: Transcript) -> None:
    token = base64.b64encode(b"bob\0alice\0pw").decode()
    assert auth.reply(f"AUTH PLAIN {token}") == b"-ERR [AUTH] Authentication failed\r\n"


def test_auth_with_unknown_mechanism_is_refused(auth: Transcript) -> None:
    assert auth.reply("AUTH CRAM-MD5") == b"-ERR Unsupported authentication mechanism\r\n"


def test_auth_without_mechanism_lists_them(auth: Transcript) -> None:
    assert auth.reply("AUTH") == b"+OK Mechanisms follow\r\nPLAIN\r\n.\r\n"


def test_apop_is_not_supported(auth: Transcript) -> None:
    assert auth.reply("APOP alice c4c9334bac560ecc979e58001b3e22fb").startswith(b"-ERR APOP")


def test_quit_before_login_closes_without_update(auth: Transcript) -> None:
    events = auth.send("QUIT")
    assert events == [Send(b"+OK pop.example.test POP3 server signing off\r\n"), Close()]


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("", b"-ERR Empty command\r\n"),
        ("XYZZY", b"-ERR Unknown command\r\n"),
        ("FOO", b"-ERR Unknown command\r\n"),
        ("STAT", b"-ERR STAT is not valid in the AUTHORIZATION state\r\n"),
        ("RETR 1", b"-ERR RETR is not valid in the AUTHORIZATION state\r\n"),
        (" USER a", b"-ERR Command must not start with a space\r\n"),
        ("US\x01R a", b"-ERR Control characters in command\r\n"),
    ],
    ids=["empty", "too-long-keyword", "unknown", "stat", "retr", "leading-space", "control"],
)
def test_bad_commands_before_login_get_an_error(auth: Transcript, line: str, reply: bytes) -> None:
    assert auth.reply(line) == reply
    assert auth.reply("USER alice") == b"+OK Send PASS\r\n"


def test_invalid_utf8_is_refused(auth: Transcript) -> None:
    assert replies(auth.session.receive_line(b"USER \xff\r\n")) == (
        b"-ERR Command is not valid UTF-8\r\n"
    )


def test_overlong_line_is_refused_and_the_session_goes_on(auth: Transcript) -> None:
    assert replies(auth.session.line_too_long()) == b"-ERR Line too long\r\n"
    assert auth.reply("USER alice") == b"+OK Send PASS\r\n"


def test_idle_timeout_closes_without_update(tx: Transcript) -> None:
    tx.send("DELE 1")
    assert tx.session.idle_timeout() == [Send(b"-ERR Disconnected for inactivity\r\n"), Close()]


# --- TRANSACTION ------------------------------------------------------------------------


def test_stat_counts_messages_and_octets(tx: Transcript) -> None:
    assert tx.reply("STAT") == b"+OK 3 327\r\n"


def test_list_gives_every_message(tx: Transcript) -> None:
    assert tx.reply("LIST") == b"+OK 3 messages (327 octets)\r\n1 120\r\n2 200\r\n3 7\r\n.\r\n"


def test_list_of_one_message(tx: Transcript) -> None:
    assert tx.reply("LIST 2") == b"+OK 2 200\r\n"


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("LIST 4", b"-ERR No such message, only 3 messages in maildrop\r\n"),
        ("LIST 0", b"-ERR No such message, only 3 messages in maildrop\r\n"),
        ("LIST x", b"-ERR Invalid message number 'x'\r\n"),
        ("LIST -1", b"-ERR Invalid message number '-1'\r\n"),
        ("LIST 99999999999", b"-ERR Invalid message number '99999999999'\r\n"),
        ("LIST 1 2", b"-ERR LIST takes at most one argument\r\n"),
        ("RETR", b"-ERR RETR takes one argument, a message number\r\n"),
        ("RETR 9", b"-ERR No such message, only 3 messages in maildrop\r\n"),
        ("DELE", b"-ERR DELE takes one argument, a message number\r\n"),
        ("TOP 1", b"-ERR TOP takes two arguments, a message number and a line count\r\n"),
        ("TOP 1 x", b"-ERR Invalid line count 'x'\r\n"),
        ("UIDL 7", b"-ERR No such message, only 3 messages in maildrop\r\n"),
        ("STAT 1", b"-ERR STAT takes no argument\r\n"),
        ("NOOP 1", b"-ERR NOOP takes no argument\r\n"),
        ("USER bob", b"-ERR USER is not valid in the TRANSACTION state\r\n"),
        ("STLS", b"-ERR STLS is not valid in the TRANSACTION state\r\n"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_transaction_commands_get_an_error(tx: Transcript, line: str, reply: bytes) -> None:
    assert tx.reply(line) == reply
    assert tx.reply("STAT") == b"+OK 3 327\r\n"


def test_retr_asks_for_the_message_with_its_octet_count(tx: Transcript) -> None:
    assert tx.send("RETR 2") == [SendMessage(2, 11, 200, b"+OK 200 octets\r\n")]


def test_top_asks_for_header_and_lines(tx: Transcript) -> None:
    assert tx.send("TOP 1 5") == [
        SendMessage(1, 10, 120, b"+OK Top of message follows\r\n", body_lines=5)
    ]


def test_dele_marks_the_message(tx: Transcript) -> None:
    assert tx.reply("DELE 1") == b"+OK Message 1 deleted\r\n"
    assert tx.reply("STAT") == b"+OK 2 207\r\n"


def test_deleted_message_cannot_be_deleted_again(tx: Transcript) -> None:
    tx.send("DELE 1")
    assert tx.reply("DELE 1") == b"-ERR Message 1 already deleted\r\n"


@pytest.mark.parametrize("command", ["RETR 1", "LIST 1", "TOP 1 0", "UIDL 1"])
def test_deleted_message_cannot_be_referred_to(tx: Transcript, command: str) -> None:
    tx.send("DELE 1")
    assert tx.reply(command) == b"-ERR Message 1 already deleted\r\n"


def test_deleted_messages_are_not_listed(tx: Transcript) -> None:
    tx.send("DELE 2")
    assert tx.reply("LIST") == b"+OK 2 messages (127 octets)\r\n1 120\r\n3 7\r\n.\r\n"
    assert tx.reply("UIDL") == b"+OK Unique-ID listing follows\r\n1 77.10\r\n3 77.15\r\n.\r\n"


def test_noop_says_ok(tx: Transcript) -> None:
    assert tx.reply("NOOP") == b"+OK\r\n"


def test_rset_unmarks_deleted_messages(tx: Transcript) -> None:
    tx.send("DELE 1")
    tx.send("DELE 3")
    assert tx.reply("RSET") == b"+OK Maildrop has 3 messages (327 octets)\r\n"
    assert tx.reply("LIST 1") == b"+OK 1 120\r\n"


def test_uidl_is_uidvalidity_dot_uid(tx: Transcript) -> None:
    assert tx.reply("UIDL") == (
        b"+OK Unique-ID listing follows\r\n1 77.10\r\n2 77.11\r\n3 77.15\r\n.\r\n"
    )
    assert tx.reply("UIDL 3") == b"+OK 3 77.15\r\n"


def test_capa_works_in_transaction(tx: Transcript) -> None:
    assert tx.reply("CAPA").startswith(b"+OK Capability list follows\r\nTOP\r\n")


def test_quit_without_changes_signs_off_at_once(tx: Transcript) -> None:
    assert tx.send("QUIT") == [
        Send(b"+OK pop.example.test POP3 server signing off (3 messages left)\r\n"),
        Close(),
    ]


def test_quit_enters_update_with_deleted_and_retrieved_messages(tx: Transcript) -> None:
    tx.send("RETR 1")
    tx.send("RETR 2")
    tx.send("DELE 2")
    tx.send("TOP 3 0")
    assert tx.send("QUIT") == [Update(delete_uids=(11,), seen_uids=(10,))]
    assert tx.session.state is State.UPDATE


def test_update_success_signs_off(tx: Transcript) -> None:
    tx.send("DELE 1")
    tx.send("QUIT")
    assert tx.session.update_done(True) == [
        Send(b"+OK pop.example.test POP3 server signing off (2 messages left)\r\n"),
        Close(),
    ]


def test_update_failure_says_messages_were_not_removed(tx: Transcript) -> None:
    tx.send("DELE 1")
    tx.send("QUIT")
    assert tx.session.update_done(False) == [
        Send(b"-ERR [SYS/TEMP] Some deleted messages not removed\r\n"),
        Close(),
    ]


def test_rset_forgets_retrieved_messages(tx: Transcript) -> None:
    tx.send("RETR 1")
    tx.send("RSET")
    assert tx.send("QUIT")[-1] == Close()
