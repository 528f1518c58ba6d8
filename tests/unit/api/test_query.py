"""The search box's language: each operator as the criteria it stands for."""

from __future__ import annotations

import contextlib
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.api.query import MAX_TERMS, Query, parse_query
from postroom.errors import InvalidInput
from postroom.store import search

UNREAD = search.Flag("\\Seen", present=False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Query(None)),
        ("lunch", Query(search.Text("lunch"))),
        ("from:ann@x.test", Query(search.Header("from", "ann@x.test"))),
        (
            "to:bob",
            Query(search.Or((search.Header("to", "bob"), search.Header("cc", "bob")))),
        ),
        ('subject:"lunch on friday"', Query(search.Header("subject", "lunch on friday"))),
        ("has:attachment", Query(search.HasAttachments())),
        ("before:2026-03-01", Query(search.SentDate("before", date(2026, 3, 1)))),
        ("after:2026-03-01", Query(search.SentDate("since", date(2026, 3, 1)))),
        ("is:unread", Query(UNREAD)),
        ("is:flagged", Query(search.Flag("\\Flagged"))),
        ("in:Work/Projects", Query(None, "Work/Projects")),
        ('in:"Old mail"', Query(None, "Old mail")),
        ("-is:unread", Query(search.Not(UNREAD))),
        ("re:lunch", Query(search.Text("re:lunch"))),
        ("FROM:Ann", Query(search.Header("from", "Ann"))),
        (
            "from:ann is:unread budget",
            Query(search.And((search.Header("from", "ann"), UNREAD, search.Text("budget")))),
        ),
        ('subject:"unclosed quote', Query(search.Header("subject", "unclosed quote"))),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_query_means(text: str, expected: Query) -> None:
    assert parse_query(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("before:yesterday", "before: wants a date as YYYY-MM-DD"),
        ("has:wings", "has: knows only has:attachment"),
        ("is:happy", "is: knows unread"),
        ("from:", "from: needs a value"),
        ("-in:Work", "in: names the one folder"),
        ("x" * 1001, "at most 1000 characters"),
        (" ".join(["w"] * (MAX_TERMS + 1)), f"at most {MAX_TERMS} terms"),
    ],
)
def test_nonsense_is_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        parse_query(text)


@given(st.text(max_size=300))
def test_any_text_parses_or_is_refused_plainly(text: str) -> None:
    # Anything else escaping (a regex or date error, an IndexError) fails the test.
    with contextlib.suppress(InvalidInput):
        parse_query(text)


@given(st.text(st.characters(blacklist_characters='"', blacklist_categories=("Cs",)), min_size=1))
def test_a_quoted_value_is_taken_whole(value: str) -> None:
    if not value.strip() or len(value) > 900:
        return
    assert parse_query(f'subject:"{value}"') == Query(search.Header("subject", value))


@given(st.from_regex(r"[A-Za-z0-9@._+-]{1,40}", fullmatch=True))
def test_a_bare_word_after_from_is_the_sender(value: str) -> None:
    assert parse_query(f"from:{value}") == Query(search.Header("from", value))
