"""The sans-I/O SMTP core: command lines, paths, parameters, sequence, AUTH and DATA framing."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.smtp_in import protocol as P
from postroom.smtp_in import replies as R
from postroom.smtp_in.replies import SmtpError


def reply_of(fn: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(SmtpError) as info:
        fn(*args, **kwargs)  # type: ignore[operator]
    return str(info.value.reply)


@pytest.mark.parametrize(
    ("verb", "phase", "reply"),
    [
        ("MAIL", P.Phase.CONNECTED, "503 5.5.1 Send EHLO or HELO first"),
        ("MAIL", P.Phase.MAIL, "503 5.5.1 Nested MAIL command"),
        ("RCPT", P.Phase.GREETED, "503 5.5.1 Need MAIL command"),
        ("DATA", P.Phase.MAIL, "503 5.5.1 Need RCPT before DATA"),
        ("AUTH", P.Phase.RCPT, "503 5.5.1 AUTH not allowed during a mail transaction"),
    ],
    ids=lambda v: (
        v.value if isinstance(v, P.Phase) else v if isinstance(v, str) and v[0].isalpha() else None
    ),
)
def test_sequence_errors(verb: str, phase: P.Phase, reply: str) -> None:
    assert reply_of(P.check_sequence, verb, phase) == reply


@pytest.mark.parametrize(
    ("verb", "phase"),
    [("MAIL", P.Phase.GREETED), ("RCPT", P.Phase.MAIL), ("DATA", P.Phase.RCPT),
     ("NOOP", P.Phase.CONNECTED)],
)  # fmt: skip
def test_sequence_allows(verb: str, phase: P.Phase) -> None:
    P.check_sequence(verb, phase)


def test_split_line_uppercases_the_verb_and_keeps_the_argument() -> None:
    assert P.split_line(b"mail FROM:<a@b>  ") == ("MAIL", "FROM:<a@b>")


def test_postmaster_without_domain_is_a_recipient() -> None:
    assert P.parse_path_argument("TO:<Postmaster>", "TO", null_ok=False).address == "postmaster"


def test_source_route_is_accepted_and_ignored() -> None:
    path = P.parse_path_argument("TO:<@a.example,@b.example:u@c.example>", "TO", null_ok=False)
    assert path.address == "u@c.example"


def test_path_longer_than_256_octets_is_refused() -> None:
    arg = "TO:<" + "a" * 64 + "@" + ("b" * 60 + ".") * 4 + "example>"
    assert reply_of(P.parse_path_argument, arg, "TO", null_ok=False) == str(R.R501_BAD_RECIPIENT)


def test_plain_with_a_foreign_authzid_fails() -> None:
    assert reply_of(P.decode_plain, b"bob\0alice\0pw") == str(R.R535_AUTH_FAILED)


def test_plain_credentials_do_not_show_the_password() -> None:
    creds = P.decode_plain(b"\0alice@x.example\0hunter2")
    assert creds.password == "hunter2"
    assert "hunter2" not in repr(creds)


def frame(wire: bytes, chunk: int, max_size: int = 1 << 20) -> tuple[bytes, bytes]:
    """Feed ``wire`` in chunks: (content, what followed the terminator)."""
    reader = P.DataReader(max_size)
    for i in range(0, len(wire), chunk):
        if reader.feed(wire[i : i + chunk]):
            return reader.content(max_size), reader.rest + wire[i + chunk :]
    raise AssertionError("DATA never ended")


def outcome(call: Callable[[], object]) -> R.Reply | None:
    """The error reply a call raises, or None."""
    try:
        call()
    except SmtpError as exc:
        return exc.reply
    return None


@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))),
    chunk=st.integers(min_value=1, max_value=64),
    tail=st.binary(max_size=20),
)
def test_dot_stuffing_round_trips_byte_for_byte(
    lines: list[bytes], chunk: int, tail: bytes
) -> None:
    content = b"".join(line + b"\r\n" for line in lines)
    stuffed = (b"\r\n" + content).replace(b"\r\n.", b"\r\n..")[2:]
    got, rest = frame(stuffed + b".\r\n" + tail, chunk)
    assert got == content
    assert rest == tail


@given(st.binary(max_size=200), st.integers(min_value=1, max_value=50))
def test_data_framing_never_accepts_a_bare_cr_or_lf(data: bytes, chunk: int) -> None:
    wire = data + b"\r\n.\r\n"
    reader = P.DataReader(1 << 20)
    for i in range(0, len(wire), chunk):
        if reader.feed(wire[i : i + chunk]):
            break
    assert reader.done
    error = outcome(lambda: reader.content(1 << 20))
    if error is not None:
        assert error == R.R554_BARE_LINE_ENDING
        return
    stripped = reader.content(1 << 20).replace(b"\r\n", b"")
    assert b"\r" not in stripped
    assert b"\n" not in stripped


def test_data_over_the_limit_is_discarded_but_framed() -> None:
    reader = P.DataReader(1024)
    for _ in range(100):
        assert not reader.feed(b"x" * 998 + b"\r\n")
    assert reader.feed(b".\r\nQUIT\r\n")
    assert reply_of(reader.content, 1024) == str(R.R552_TOO_BIG)
    assert reader.rest == b"QUIT\r\n"


@pytest.mark.parametrize(
    ("xtext", "text"),
    [("", ""), ("abc", "abc"), ("a+2Bb", "a+b"), ("+3D+20x", "= x"), ("QQ314159", "QQ314159")],
)
def test_xtext_decodes(xtext: str, text: str) -> None:
    assert P.decode_xtext(xtext) == text


@pytest.mark.parametrize("xtext", ["a+b", "a=b", "a+2b", "a+0D+0A", "a+00", "a b", "+E9"])
def test_bad_or_unsafe_xtext_is_refused(xtext: str) -> None:
    assert P.decode_xtext(xtext) is None


@pytest.mark.parametrize(
    ("params", "notify", "original"),
    [
        ("", None, None),
        (" NOTIFY=never", "NEVER", None),
        (" NOTIFY=DELAY,SUCCESS", "SUCCESS,DELAY", None),
        (" ORCPT=RFC822;a+40b.example", None, "rfc822;a@b.example"),
    ],
)
def test_rcpt_dsn_parameters(params: str, notify: str | None, original: str | None) -> None:
    path = P.parse_path_argument(f"TO:<a@b.example>{params}", "TO", null_ok=False)
    assert P.rcpt_options(path) == P.RecipientOptions(notify, original)


def test_mail_dsn_parameters() -> None:
    path = P.parse_path_argument("FROM:<> RET=hdrs ENVID=x+2By", "FROM", null_ok=True)
    options = P.mail_options(path, esmtp=True, max_size=10)
    assert (options.ret, options.envid) == ("HDRS", "x+y")


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60))
def test_xtext_decoding_never_yields_a_control_character(text: str) -> None:
    decoded = P.decode_xtext(text)
    assert decoded is None or (decoded.isprintable() and decoded.isascii())


@given(st.binary(max_size=600))
def test_any_command_line_gets_a_command_or_a_protocol_error(line: bytes) -> None:
    """Fuzzing the parsers: nothing but SmtpError ever escapes, whatever the bytes."""
    error = outcome(lambda: P.split_line(line))
    if error is not None:
        assert error.code == 500
        return
    _verb, arg = P.split_line(line)
    options = P.MailOptions(smtputf8=True)
    for call in (
        lambda: P.parse_path_argument(arg, "FROM", null_ok=True),
        lambda: P.rcpt_address(P.parse_path_argument(arg, "TO", null_ok=False), options),
        lambda: P.rcpt_options(P.parse_path_argument(arg, "TO", null_ok=False)),
        lambda: P.mail_options(
            P.parse_path_argument(arg, "FROM", null_ok=True), esmtp=True, max_size=10
        ),
        lambda: P.parse_helo(arg),
        lambda: P.parse_auth(arg),
        lambda: P.decode_plain(P.decode_response(arg)),
    ):
        error = outcome(call)
        assert error is None or 400 <= error.code < 600


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=80))
def test_accepted_paths_have_no_controls_or_spaces_outside_quotes(text: str) -> None:
    arg = f"FROM:<{text}>"
    error = outcome(lambda: P.parse_path_argument(arg, "FROM", null_ok=True))
    if error is not None:
        assert error.code in (501, 555)
        return
    path = P.parse_path_argument(arg, "FROM", null_ok=True)
    if not path.address.startswith('"'):
        assert all(c.isprintable() and not c.isspace() for c in path.address)
    assert "\r" not in path.address
    assert "\n" not in path.address


def test_auth_responses_decode_strictly() -> None:
    assert P.decode_response(base64.b64encode(b"abc").decode()) == b"abc"
    assert P.decode_response("=") == b""
    assert reply_of(P.decode_response, "YW*J") == str(R.R501_AUTH_BASE64)
    assert reply_of(P.decode_response, "*") == str(R.R501_AUTH_CANCELLED)
