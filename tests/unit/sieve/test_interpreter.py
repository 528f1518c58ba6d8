"""The actions of Sieve scripts, section by section of RFC 5228 and its extensions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.sieve import (
    Context,
    Envelope,
    FileInto,
    Keep,
    Limits,
    MessageView,
    Outcome,
    Redirect,
    Reject,
    Vacation,
    compile_script,
    run,
)
from postroom.sieve.match import glob

MESSAGE = (
    b"From: Bob <bob@example.org>\r\n"
    b"To: alice+work@example.test, Carol <carol@example.net>\r\n"
    b"Subject: [dev] Weekly =?utf-8?q?caf=C3=A9?= meeting\r\n"
    b"Date: Tue, 10 Mar 2026 08:14:59 +0100\r\n"
    b"Message-ID: <m1@example.org>\r\n"
    b"X-Spam-Score: 7\r\n"
    b"X-Tag: one\r\n"
    b"X-Tag: two\r\n"
    b"\r\n"
    b"Hello, the agenda is attached.\r\n"
)
NOW = datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC)


def actions(
    script: str,
    message: bytes = MESSAGE,
    *,
    sender: str = "bob@example.org",
    recipient: str = "alice+work@example.test",
    limits: Limits | None = None,
) -> Outcome:
    ctx = Context(MessageView(message), Envelope(sender, recipient), now=NOW)
    if limits is not None:
        ctx.limits = limits
    return run(compile_script(script), ctx)


KEEP = (Keep(implicit=True),)


# -- RFC 5228 §2.10.2, §3, §4: control and actions ----------------------------------------------


def test_empty_script_keeps_implicitly() -> None:  # RFC 5228 §2.10.2
    assert actions("").actions == KEEP


def test_keep_is_explicit_keep() -> None:  # RFC 5228 §4.3
    assert actions("keep;").actions == (Keep(),)


def test_discard_cancels_the_implicit_keep() -> None:  # RFC 5228 §4.5
    outcome = actions("discard;")
    assert outcome.actions == ()
    assert outcome.discarded


def test_stop_ends_the_script() -> None:  # RFC 5228 §3.3
    assert actions("stop; discard;").actions == KEEP


def test_if_elsif_else_runs_the_first_true_branch() -> None:  # RFC 5228 §3.1
    script = (
        'require "fileinto"; if false { fileinto "a"; } elsif true { fileinto "b"; }'
        ' elsif true { fileinto "c"; } else { fileinto "d"; }'
    )
    assert actions(script).actions == (FileInto("b"),)


def test_else_runs_when_nothing_matched() -> None:  # RFC 5228 §3.1
    script = 'require "fileinto"; if false { fileinto "a"; } else { fileinto "d"; }'
    assert actions(script).actions == (FileInto("d"),)


def test_fileinto_cancels_the_implicit_keep() -> None:  # RFC 5228 §4.1
    assert actions('require "fileinto"; fileinto "Work";').actions == (FileInto("Work"),)


def test_fileinto_same_mailbox_twice_files_once() -> None:  # RFC 5228 §2.10.3
    script = 'require "fileinto"; fileinto "A"; fileinto "A";'
    assert actions(script).actions == (FileInto("A"),)


def test_fileinto_inbox_and_keep_are_one_delivery() -> None:  # RFC 5228 §2.10.3
    assert actions('require "fileinto"; keep; fileinto "INBOX";').actions == (Keep(),)


def test_redirect_cancels_the_implicit_keep() -> None:  # RFC 5228 §4.2
    assert actions('redirect "x@example.net";').actions == (Redirect("x@example.net"),)


def test_redirect_to_the_same_address_twice_sends_once() -> None:  # RFC 5228 §2.10.3
    outcome = actions('redirect "x@example.net"; redirect "X@example.net";')
    assert outcome.actions == (Redirect("x@example.net"),)


def test_redirect_past_the_limit_fails_and_keeps() -> None:  # RFC 5228 §2.10.6, §4.2
    script = " ".join(f'redirect "r{i}@example.net";' for i in range(3))
    outcome = actions(script, limits=Limits(max_redirects=2))
    assert outcome.actions == KEEP
    assert outcome.error == "more than 2 redirects"


def test_redirect_to_a_bad_address_fails_and_keeps() -> None:  # RFC 5228 §4.2
    outcome = actions('redirect "not an address";')
    assert outcome.actions == KEEP
    assert outcome.error == "line 1: invalid redirect address 'not an address'"


# -- RFC 5228 §5: tests ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("test", "expected"),
    [
        ('header :is "subject" "[dev] Weekly café meeting"', True),  # §5.7, RFC 2047 decoded
        ('header :contains "subject" "WEEKLY"', True),  # §2.7.3 i;ascii-casemap
        ('header :contains :comparator "i;octet" "subject" "WEEKLY"', False),
        ('header :matches "subject" "*weekly*"', True),
        ('header :matches "subject" "weekly*"', False),
        ('header :contains ["x-none", "subject"] ["zzz", "meeting"]', True),  # §2.7.1 any key
        ('address :is "from" "bob@example.org"', True),  # §5.1
        ('address :domain :is "to" "example.net"', True),  # §2.7.4
        ('address :localpart :is "to" "carol"', True),
        ('address :all :contains "to" "carol@"', True),
        ('envelope :is "from" "bob@example.org"', True),  # §5.4
        ('envelope :domain :is "to" "example.test"', True),
        ('exists ["from", "x-spam-score"]', True),  # §5.5
        ('exists ["from", "x-none"]', False),
        ("size :over 100", True),  # §5.9
        ("size :under 100", False),
        ("allof (true, false)", False),  # §5.2
        ("anyof (false, true)", True),  # §5.3
        ("not false", True),  # §5.8
    ],
)
def test_core_tests(test: str, expected: bool) -> None:
    script = f'require ["envelope", "fileinto"]; if {test} {{ fileinto "yes"; }}'
    assert actions(script).actions == ((FileInto("yes"),) if expected else KEEP)


def test_envelope_null_sender_compares_as_empty() -> None:  # RFC 5228 §5.4
    script = 'require ["envelope", "fileinto"]; if envelope :is "from" "" { fileinto "null"; }'
    assert actions(script, sender="").actions == (FileInto("null"),)


def test_matches_question_mark_is_one_character() -> None:  # RFC 5228 §2.7.1
    assert glob("?eeting*", "Meeting at ten", "i;ascii-casemap") == [
        "Meeting at ten",
        "M",
        " at ten",
    ]
    assert glob("?eeting*", "[dev] Release", "i;ascii-casemap") is None


def test_matches_backslash_quotes_a_wildcard() -> None:  # RFC 5228 §2.7.1
    assert glob(r"a\*b", "a*b", "i;octet") == ["a*b"]
    assert glob(r"a\*b", "axxb", "i;octet") is None


# -- extensions ------------------------------------------------------------------------------


def test_reject_refuses_and_cancels_keep() -> None:  # RFC 5429 §2.2
    assert actions('require "reject"; reject "Go away";').actions == (Reject("Go away"),)


def test_ereject_is_extended() -> None:  # RFC 5429 §2.1
    outcome = actions('require "ereject"; ereject "No";')
    assert outcome.actions == (Reject("No", extended=True),)


def test_reject_with_fileinto_is_an_error_and_keeps() -> None:  # RFC 5429 §2.1
    outcome = actions('require ["reject", "fileinto"]; fileinto "A"; reject "no";')
    assert outcome.actions == KEEP
    assert outcome.error == "reject cannot be combined with other actions"


def test_fileinto_create() -> None:  # RFC 5490 §3.2
    outcome = actions('require ["fileinto", "mailbox"]; fileinto :create "New";')
    assert outcome.actions == (FileInto("New", create=True),)


def test_mailboxexists() -> None:  # RFC 5490 §3.1
    script = 'require ["fileinto","mailbox"]; if mailboxexists "Work" { fileinto "Work"; }'
    ctx = Context(MessageView(MESSAGE), Envelope("a@b.c", "d@e.f"), mailboxes={"Work"})
    assert run(compile_script(script), ctx).actions == (FileInto("Work"),)
    ctx.mailboxes = ()
    assert run(compile_script(script), ctx).actions == KEEP


def test_copy_keeps_the_implicit_keep() -> None:  # RFC 3894 §3
    script = 'require ["copy", "fileinto"]; redirect :copy "x@example.net"; fileinto :copy "A";'
    assert actions(script).actions == (Redirect("x@example.net", copy=True), FileInto("A"), *KEEP)


def test_imap4flags_internal_variable_goes_to_the_implicit_keep() -> None:  # RFC 5232 §3
    script = 'require "imap4flags"; setflag "\\\\Seen"; addflag ["$a", "$b"]; removeflag "$A";'
    assert actions(script).actions == (Keep(("\\Seen", "$b"), implicit=True),)


def test_imap4flags_on_fileinto_and_keep() -> None:  # RFC 5232 §5
    script = (
        'require ["imap4flags", "fileinto"]; addflag "\\\\Seen"; fileinto "A";'
        ' fileinto :flags "\\\\Flagged" "B"; keep;'
    )
    assert actions(script).actions == (
        FileInto("A", ("\\Seen",)),
        FileInto("B", ("\\Flagged",)),
        Keep(("\\Seen",)),
    )


def test_hasflag() -> None:  # RFC 5232 §4
    script = (
        'require ["imap4flags","fileinto"]; addflag "Urgent"; if hasflag "urgent" { fileinto "u"; }'
    )
    assert actions(script).actions == (FileInto("u", ("Urgent",)),)


def test_vacation_days() -> None:  # RFC 5230 §4
    outcome = actions('require "vacation"; vacation :days 3 :subject "Away" "I am away";')
    assert outcome.actions == (Vacation("I am away", 3 * 86400, "Away"), *KEEP)


def test_vacation_default_period_is_seven_days() -> None:  # RFC 5230 §4.1
    assert actions('require "vacation"; vacation "x";').actions[0] == Vacation("x", 7 * 86400)


def test_vacation_seconds() -> None:  # RFC 6131 §2
    outcome = actions('require ["vacation", "vacation-seconds"]; vacation :seconds 90 "x";')
    assert outcome.actions[0] == Vacation("x", 90)


def test_second_vacation_is_an_error() -> None:  # RFC 5230 §4.7
    outcome = actions('require "vacation"; vacation "a"; vacation "b";')
    assert outcome.actions == KEEP
    assert outcome.error == "line 1: more than one vacation action"


def test_body_text_contains() -> None:  # RFC 5173 §5
    script = 'require ["body","fileinto"]; if body :contains "agenda" { fileinto "b"; }'
    assert actions(script).actions == (FileInto("b"),)


def test_body_content_type_not_present() -> None:  # RFC 5173 §5.2
    script = 'require ["body","fileinto"]; if body :content "image" :contains "" { fileinto "b"; }'
    assert actions(script).actions == KEEP


def test_variables_set_and_match_variables() -> None:  # RFC 5229 §3, §4
    script = (
        'require ["variables", "fileinto"]; if header :matches "subject" "[*] *"'
        ' { set :upperfirst "list" "${1}"; fileinto "Lists/${list}"; }'
    )
    assert actions(script).actions == (FileInto("Lists/Dev"),)


def test_set_modifiers_by_precedence() -> None:  # RFC 5229 §4.1
    script = (
        'require ["variables", "fileinto"]; set :length :upper "n" "abc";'
        ' set :quotewildcard "q" "a*b"; fileinto "${n}-${q}";'
    )
    assert actions(script).actions == (FileInto("3-a\\*b"),)


def test_string_test() -> None:  # RFC 5229 §5
    script = (
        'require ["variables","fileinto"]; set "a" "x"; if string :is "${a}" "x" { fileinto "s"; }'
    )
    assert actions(script).actions == (FileInto("s"),)


def test_relational_value_numeric() -> None:  # RFC 5231 §4.1
    script = (
        'require ["relational", "comparator-i;ascii-numeric", "fileinto"];'
        ' if header :value "ge" :comparator "i;ascii-numeric" "x-spam-score" "5" { fileinto "j"; }'
    )
    assert actions(script).actions == (FileInto("j"),)


def test_relational_count() -> None:  # RFC 5231 §4.2
    script = (
        'require ["relational", "comparator-i;ascii-numeric", "fileinto"];'
        ' if address :count "eq" :comparator "i;ascii-numeric" "to" "2" { fileinto "two"; }'
    )
    assert actions(script).actions == (FileInto("two"),)


def test_subaddress_user_and_detail() -> None:  # RFC 5233 §4
    script = (
        'require ["subaddress", "envelope", "fileinto"];'
        ' if envelope :detail "to" "work" { fileinto "work"; }'
        ' if address :user "to" "alice" { fileinto "alice"; }'
        ' if address :detail "to" "" { fileinto "never"; }'
    )
    assert actions(script).actions == (FileInto("work"), FileInto("alice"))


def test_date_parts_in_a_zone() -> None:  # RFC 5260 §4
    script = (
        'require ["date", "fileinto"]; if date :zone "+0000" "date" "time" "07:14:59"'
        ' { fileinto "utc"; } if date :originalzone "date" "zone" "+0100" { fileinto "orig"; }'
    )
    assert actions(script).actions == (FileInto("utc"), FileInto("orig"))


def test_currentdate() -> None:  # RFC 5260 §5
    script = (
        'require ["date", "fileinto"]; if currentdate :is "date" "2026-03-10" { fileinto "t"; }'
    )
    assert actions(script).actions == (FileInto("t"),)


def test_index_and_last() -> None:  # RFC 5260 §6
    script = (
        'require ["index", "fileinto"]; if header :index 2 :is "x-tag" "two" { fileinto "a"; }'
        ' if header :index 1 :last :is "x-tag" "two" { fileinto "b"; }'
        ' if header :index 3 :is "x-tag" "one" { fileinto "never"; }'
    )
    assert actions(script).actions == (FileInto("a"), FileInto("b"))


def test_run_time_limit_stops_the_script_and_keeps() -> None:
    script = 'require "body"; if body :contains ["a","b","c","d","zzz"] { discard; }'
    outcome = actions(script, limits=Limits(max_work=10))
    assert outcome.actions == KEEP
    assert outcome.error == "script ran past its time limit"


@given(st.text(alphabet="ab*?\\", max_size=12), st.text(alphabet="ab*?", max_size=16))
def test_glob_agrees_with_a_reference_matcher(pattern: str, text: str) -> None:
    import re

    regex = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            regex += re.escape(pattern[i + 1])
            i += 2
            continue
        regex += "(.*?)" if c == "*" else "(.)" if c == "?" else re.escape(c)
        i += 1
    expected = re.fullmatch(regex, text, re.DOTALL)
    found = glob(pattern, text, "i;octet")
    assert (found is not None) == (expected is not None)
    if found is not None and expected is not None:
        assert "".join(found[1:]) == "".join(expected.groups())


def _with_includes(script: str, library: dict[str, str]) -> Outcome:  # RFC 6609
    compiled = {name: compile_script(source) for name, source in library.items()}
    ctx = Context(
        MessageView(MESSAGE),
        Envelope("bob@example.org", "alice+work@example.test"),
        now=NOW,
        includes=lambda location, name: compiled.get(name) if location == "personal" else None,
    )
    return run(compile_script(script), ctx)


def test_include_runs_the_other_script_and_comes_back() -> None:  # RFC 6609 §3.2
    library = {"lists": 'require ["fileinto", "include"]; fileinto "Lists"; return; fileinto "x";'}
    outcome = _with_includes(
        'require ["include", "fileinto"]; include "lists"; fileinto "After";', library
    )
    assert outcome.actions == (FileInto("Lists"), FileInto("After"))


def test_include_once_and_optional() -> None:  # RFC 6609 §3.2
    library = {"flag": 'require "imap4flags"; addflag "seen-once";'}
    script = (
        'require ["include", "imap4flags"]; include :once "flag"; include :once "flag";'
        ' include :optional "missing";'
    )
    assert _with_includes(script, library).actions == (Keep(("seen-once",), implicit=True),)


def test_include_of_a_missing_script_fails_and_keeps() -> None:  # RFC 6609 §3.2
    outcome = _with_includes('require "include"; include "missing"; discard;', {})
    assert outcome.actions == KEEP
    assert outcome.error == "line 1: no personal script named 'missing'"


def test_include_loop_is_an_error() -> None:  # RFC 6609 §3.2
    library = {"a": 'require "include"; include "b";', "b": 'require "include"; include "a";'}
    outcome = _with_includes('require "include"; include "a";', library)
    assert outcome.error == "line 1: script 'a' includes itself"


def test_global_variables_are_shared() -> None:  # RFC 6609 §3.4
    library = {
        "set": 'require ["include", "variables"]; global "box"; set "box" "Shared"; set "x" "y";'
    }
    script = (
        'require ["include", "variables", "fileinto"]; global "box"; include "set";'
        ' fileinto "${box}${x}";'
    )
    assert _with_includes(script, library).actions == (FileInto("Shared"),)


def test_stop_in_an_included_script_ends_everything() -> None:  # RFC 6609 §3.2
    outcome = _with_includes('require "include"; include "s"; discard;', {"s": "stop;"})
    assert outcome.actions == KEEP


def test_a_costly_matches_on_a_large_body_is_stopped_before_it_runs() -> None:
    big = MESSAGE + b"x" * 3_000_000 + b"\r\n"
    script = 'require "body"; if body :raw :matches "*a?bcdefgh*" { discard; }'
    outcome = actions(script, big)
    assert outcome.actions == KEEP
    assert outcome.error == "script ran past its time limit"


def test_a_literal_matches_on_a_large_body_runs() -> None:
    big = MESSAGE + b"x" * 3_000_000 + b"needle\r\n"
    script = 'require "body"; if body :raw :matches "*needle*" { discard; }'
    assert actions(script, big).actions == ()
