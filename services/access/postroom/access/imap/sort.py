"""SORT (RFC 5256 §3): the order of messages under a list of sort criteria.

Criteria made only of ARRIVAL, SIZE and DATE are ordered by Postgres (`sql_order`). The
others are ordered here over the keys the store reads (`columns_for`, `order`): one
stable sort a criterion, the last criterion first, so that earlier criteria decide and the
UID (the mailbox order, RFC 5256 §3) breaks the remaining ties. REVERSE flips one
criterion only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Literal

from postroom.access.imap import parser as p
from postroom.access.imap.subject import casemap, subject_key
from postroom.store.sorting import NO_DATE, Column

__all__ = ["columns_for", "order", "sql_order"]


def _address(value: str | None) -> str:
    # "[IMAP] addr-mailbox of the first ... address", compared with i;ascii-casemap; none
    # is the empty string.
    return casemap(value or "")


# RFC 5256 §3 sort-key → the store column it reads and the key it compares.
_KEYS: Final[dict[str, tuple[Column, Callable[[Any], Any]]]] = {
    "ARRIVAL": ("arrival", lambda v: v or NO_DATE),
    "CC": ("cc", _address),
    "DATE": ("sent", lambda v: v or NO_DATE),
    "FROM": ("from", _address),
    "SIZE": ("size", lambda v: v or 0),
    "SUBJECT": ("subject", subject_key),
    "TO": ("to", _address),
}
_SQL_KEYS: Final[dict[str, Literal["arrival", "size", "sent"]]] = {
    "ARRIVAL": "arrival",
    "SIZE": "size",
    "DATE": "sent",
}


def sql_order(
    criteria: Sequence[p.SortCriterion],
) -> list[tuple[Literal["arrival", "size", "sent"], bool]] | None:
    """The criteria as ``(column, descending)`` for `postroom.store.sorting.sorted_uids`,
    or None when one of them must be compared here."""
    if not all(c.key in _SQL_KEYS for c in criteria):
        return None
    return [(_SQL_KEYS[c.key], c.reverse) for c in criteria]


def columns_for(criteria: Iterable[p.SortCriterion]) -> list[Column]:
    """The store columns the criteria read, each once, for `sort_keys`."""
    return sorted({_KEYS[c.key][0] for c in criteria})


def order(
    rows: Sequence[tuple[Any, ...]],
    criteria: Sequence[p.SortCriterion],
    columns: Sequence[Column],
) -> list[int]:
    """The UIDs of ``rows`` (``(uid, *columns)``, as `sort_keys` reads them) in the order
    the criteria give."""
    ordered = sorted(rows, key=lambda r: r[0])
    for criterion in reversed(criteria):
        column, key = _KEYS[criterion.key]
        index = columns.index(column) + 1
        # list.sort is stable with reverse=True too: equal keys keep the later criteria's
        # order, and in the end the mailbox order.
        ordered.sort(key=_by(index, key), reverse=criterion.reverse)
    return [r[0] for r in ordered]


def _by(index: int, key: Callable[[Any], Any]) -> Callable[[tuple[Any, ...]], Any]:
    return lambda row: key(row[index])
