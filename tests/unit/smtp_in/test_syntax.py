"""SMTP syntax and sequence without I/O: command lines, paths, parameters, AUTH, the 503s."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.smtp_in import replies as R
from postroom.smtp_in import session as SN
from postroom.smtp_in import syntax as P
from postroom.smtp_in.replies import SmtpError


def reply_of(fn: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(SmtpError) as info:
        fn(*args, **kwargs)  # type: ignore[operator]
    return str(info.value.reply)


@pytest.mark.parametrize(
    ("verb", "state", "reply"),
    [
        ("MAIL", SN.State.CONNECTED, "503 5.5.1 Send EHLO or HELO first"),
        ("MAIL", SN.State.MAIL, "503 5.5.1 Nested MAIL command"),
        ("RCPT", SN.State.GREETED, "503 5.5.1 Need MAIL command"),
        ("DATA", SN.State.MAIL, "503 5.5.1 Need RCPT before DATA"),
        ("AUTH", SN.State.RCPT, "503 5.5.1 AUTH not allowed during a mail transaction"),
    ],
    ids=lambda v: (
        v.value if isinstance(v, SN.State) else v if isinstance(v, str) and v[0].isalpha() else None
    ),
)
def test_sequence_errors(verb: str, state: SN.State, reply: str) -> None:
    assert reply_of(SN.check_sequence, verb, state) == reply


@pytest.mark.parametrize(
    ("verb", "state"),
    [("MAIL", SN.State.GREETED), ("RCPT", SN.State.MAIL), ("DATA", SN.State.RCPT),
     ("NOOP", SN.State.CONNECTED)],
)  # fmt: skip
def test_sequence_allows(verb: str, state: SN.State) -> None:
    SN.check_sequence(verb, state)


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


def outcome(call: Callable[[], object]) -> R.Reply | None:
    """The error reply a call raises, or None."""
    try:
        call()
    except SmtpError as exc:
        return exc.reply
    return None


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


@pytest.mark.parametrize(
    "address",
    ["0@\x80", "a\x9f@b.example", "a@b\u2028.example", "a\u200e@b.example", "a@b.exa\x85mple"],
    ids=["c1-in-domain", "c1-in-local-part", "line-separator", "format-char", "nel"],
)
def test_c1_controls_and_other_non_printables_are_refused_in_paths(address: str) -> None:
    arg = f"FROM:<{address}> SMTPUTF8"
    assert reply_of(P.parse_path_argument, arg, "FROM", null_ok=True) == str(R.R501_BAD_SENDER)


def test_non_ascii_letters_stay_allowed_in_paths() -> None:
    path = P.parse_path_argument("FROM:<jörg@bücher.example> SMTPUTF8", "FROM", null_ok=True)
    assert path.address == "jörg@bücher.example"
