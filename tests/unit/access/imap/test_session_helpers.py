"""Pure helpers of the session: LIST patterns, sequence sets against a view, UID sets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.access.imap import parser as p
from postroom.access.imap import search as sr
from postroom.access.imap.protocol import list_matcher
from postroom.store import search as s


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("*", "a/b/c", True),
        ("%", "a", True),
        ("%", "a/b", False),
        ("a/%", "a/b", True),
        ("a/%", "a/b/c", False),
        ("a*", "a/b/c", True),
        ("inbox", "INBOX", True),
        ("Inbox/%", "INBOX/x", True),
        ("inbox", "inbox-not", False),
        ("a.b", "axb", False),
        ("", "a", False),
    ],
    ids=lambda v: repr(v),
)
def test_list_patterns_per_rfc_3501_6_3_8(pattern: str, name: str, matches: bool) -> None:
    assert list_matcher(pattern)(name) is matches


def test_sequence_ranges_become_uid_ranges_of_the_view() -> None:
    view = [3, 4, 9, 12, 20]
    assert sr.seq_ranges_to_uids(p.SequenceSet.parse("2:3,5:*"), view) == ((4, 9), (20, 20))


def test_uid_star_is_the_largest_uid_of_the_view() -> None:
    view = [3, 4, 9]
    assert sr.uid_set_ranges(p.SequenceSet.parse("20:*"), view) == ((9, 9),)
    assert sr.uids_in(sr.uid_set_ranges(p.SequenceSet.parse("1:5,4"), view), view) == [3, 4]


def test_recent_and_old_resolve_to_the_sessions_ranges() -> None:
    recent = [(5, 9)]
    key = p.And((p.FlagKey("\\Recent", True), p.FlagKey("\\Seen", False)))
    assert sr.criteria(key, [1, 5], recent) == s.And(
        (s.UidRanges(((5, 9),)), s.Flag("\\Seen", False))
    )
    assert sr.criteria(p.FlagKey("\\Recent", False), [1], recent) == s.Not(s.UidRanges(((5, 9),)))


def test_copyuid_sets_are_compact() -> None:
    assert sr.compact([1, 2, 3, 7, 9, 10]) == "1:3,7,9:10"


@given(st.lists(st.integers(1, 10_000), min_size=1, max_size=50, unique=True).map(sorted))
def test_seq_ranges_name_exactly_the_viewed_uids(view: list[int]) -> None:
    # 1:* names every message; each range's ends are UIDs of the view.
    ranges = sr.seq_ranges_to_uids(p.SequenceSet.parse("1:*"), view)
    assert sr.uids_in(ranges, view) == view
