"""SORT's order (RFC 5256 §3) over the store's sort keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from postroom.access.imap import sort
from postroom.access.imap.parser import SORT_KEYS, SortCriterion
from postroom.access.imap.sort import columns_for, sql_order
from postroom.store.sorting import Column

T = datetime(2026, 1, 1, tzinfo=UTC)


COLUMNS: list[Column] = ["arrival", "cc", "from", "sent", "size", "subject", "to"]


def row(uid: int, **keys: Any) -> tuple[Any, ...]:
    """A row as `sort_keys` reads it, every column there."""
    return (uid, *(keys.get(c) for c in COLUMNS))


def order(rows: list[tuple[Any, ...]], criteria: list[SortCriterion]) -> list[int]:
    return sort.order(rows, criteria, COLUMNS)


def by(*names: str) -> list[SortCriterion]:
    return [SortCriterion(n.removeprefix("-"), reverse=n.startswith("-")) for n in names]


def test_sort_by_size_breaks_ties_by_mailbox_order() -> None:
    rows = [row(1, size=30), row(2, size=10), row(3, size=30), row(4, size=10)]
    assert order(rows, by("SIZE")) == [2, 4, 1, 3]


def test_reverse_flips_its_key_but_not_the_mailbox_order_of_ties() -> None:
    rows = [row(1, size=30), row(2, size=10), row(3, size=30), row(4, size=10)]
    assert order(rows, by("-SIZE")) == [1, 3, 2, 4]


def test_later_criteria_break_ties_of_earlier_ones() -> None:
    rows = [
        row(1, subject="b", sent=T),
        row(2, subject="Re: a", sent=T + timedelta(hours=1)),
        row(3, subject="A", sent=T + timedelta(hours=2)),
    ]
    assert order(rows, by("SUBJECT", "-DATE")) == [3, 2, 1]


def test_addresses_compare_by_mailbox_with_ascii_casemap() -> None:
    rows = [row(1, **{"from": "bob"}), row(2, **{"from": "Alice"}), row(3)]
    assert order(rows, by("FROM")) == [3, 2, 1]


def test_arrival_and_date_are_moments() -> None:
    rows = [
        row(1, arrival=T + timedelta(hours=2), sent=T),
        row(2, arrival=T.astimezone(), sent=T - timedelta(hours=1)),
    ]
    assert order(rows, by("ARRIVAL")) == [2, 1]
    assert order(rows, by("DATE")) == [2, 1]


def test_columns_are_only_those_the_criteria_need() -> None:
    assert columns_for(by("SUBJECT", "-SIZE", "SIZE")) == ["size", "subject"]


def test_plain_column_criteria_are_ordered_in_sql() -> None:
    assert sql_order(by("-ARRIVAL", "SIZE", "DATE")) == [
        ("arrival", True),
        ("size", False),
        ("sent", False),
    ]
    assert sql_order(by("SIZE", "SUBJECT")) is None


@given(
    st.lists(st.integers(0, 3), max_size=20),
    st.lists(st.sampled_from(sorted(SORT_KEYS)), min_size=1, max_size=3),
)
def test_sort_is_a_permutation_and_reverse_of_one_key_reverses_its_groups(
    sizes: list[int], keys: list[str]
) -> None:
    rows = [row(uid, size=size) for uid, size in enumerate(sizes, 1)]
    forward = order(rows, by("SIZE"))
    backward = order(rows, by("-SIZE"))
    assert sorted(forward) == list(range(1, len(sizes) + 1))
    assert [sizes[u - 1] for u in backward] == sorted(sizes, reverse=True)
    assert sorted(order(rows, by(*keys))) == sorted(forward)
