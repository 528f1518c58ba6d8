"""SORT (RFC 5256 §3): the order of messages under a list of sort criteria, as pure code.

`order` sorts the store's `SortRow`s: one stable sort a criterion, the last criterion
first, so that earlier criteria decide and the UID (the mailbox order, RFC 5256 §3: "the
order in the mailbox") breaks the remaining ties. REVERSE flips one criterion only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from postroom.access.imap import parser as p
from postroom.access.imap.subject import casemap, subject_key
from postroom.store.sorting import Column, SortRow

__all__ = ["columns_for", "order"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

# RFC 5256 §3 sort-key → the store columns it reads and the key it compares.
_KEYS: Final[dict[str, tuple[Column, Callable[[SortRow], Any]]]] = {
    "ARRIVAL": ("arrival", lambda r: r.arrival or _EPOCH),
    # "[IMAP] addr-mailbox of the first "cc" address", compared with i;ascii-casemap.
    "CC": ("cc", lambda r: casemap(r.cc_mailbox)),
    "DATE": ("sent", lambda r: r.sent or _EPOCH),
    "FROM": ("from", lambda r: casemap(r.from_mailbox)),
    "SIZE": ("size", lambda r: r.size),
    "SUBJECT": ("subject", lambda r: subject_key(r.subject)),
    "TO": ("to", lambda r: casemap(r.to_mailbox)),
}


def columns_for(criteria: Iterable[p.SortCriterion]) -> set[Column]:
    """The store columns a list of sort criteria reads."""
    return {_KEYS[c.key][0] for c in criteria}


def order(rows: Iterable[SortRow], criteria: Sequence[p.SortCriterion]) -> list[int]:
    """The UIDs of ``rows`` in the order the criteria give."""
    ordered = sorted(rows, key=lambda r: r.uid)
    for criterion in reversed(criteria):
        # list.sort is stable with reverse=True too: equal keys keep the later criteria's
        # order, and in the end the mailbox order.
        ordered.sort(key=_KEYS[criterion.key][1], reverse=criterion.reverse)
    return [r.uid for r in ordered]
