"""SEARCH keys (RFC 3501 §6.4.4) mapped onto the store's criteria, session keys resolved.

Sequence numbers, ``*`` and \\Recent (with NEW and OLD) only mean something in one
session; they become UID ranges here, from the session's view of the mailbox, so the store
evaluates the rest in Postgres.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence

from postroom.access.imap import parser as p
from postroom.store import search as s


def seq_ranges_to_uids(
    sequence_set: p.SequenceSet, uids: Sequence[int]
) -> tuple[tuple[int, int], ...]:
    """The UID ranges of the messages a sequence set names in the view ``uids``.

    Between the UIDs of two neighbouring sequence numbers no other message of the view
    exists, so a range of sequence numbers is the range of their UIDs.
    """
    return tuple(
        (uids[span.start - 1], uids[span.stop - 2]) for span in sequence_set.resolve(len(uids))
    )


def uid_set_ranges(sequence_set: p.SequenceSet, uids: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """A UID set as ranges; ``*`` is the largest UID of the view (RFC 3501 §6.4.8)."""
    largest = uids[-1] if uids else 0
    return tuple((span.start, span.stop - 1) for span in sequence_set.resolve(largest))


def uids_in(ranges: Sequence[tuple[int, int]], uids: Sequence[int]) -> list[int]:
    """The UIDs of the view inside the ranges, ascending, once."""
    found: list[int] = []
    for low, high in sorted(ranges):
        start = bisect_left(uids, max(low, found[-1] + 1 if found else low))
        found.extend(uids[start : bisect_right(uids, high)])
    return found


def criteria(
    key: p.SearchKey,
    uids: Sequence[int],
    recent: Sequence[tuple[int, int]],
    saved: Sequence[int] = (),
) -> s.Criterion:
    """The store criterion for a parsed key, in a session whose view is ``uids`` and whose
    saved search result (RFC 5182 "$") is ``saved``."""
    match key:
        case p.All():
            return s.All()
        case p.And(keys):
            return s.And(tuple(criteria(k, uids, recent, saved) for k in keys))
        case p.Or(left, right):
            return s.Or((criteria(left, uids, recent, saved), criteria(right, uids, recent, saved)))
        case p.Not(inner):
            return s.Not(criteria(inner, uids, recent, saved))
        case p.FlagKey(flag, is_set):
            if flag.lower() == "\\recent":
                ranges = s.UidRanges(tuple(recent))
                return ranges if is_set else s.Not(ranges)
            return s.Flag(flag, is_set)
        case p.HeaderKey(name, value):
            return s.Header(name, value)
        case p.BodyKey(value):
            return s.Text(value, "body")
        case p.TextKey(value):
            return s.Text(value, "text")
        case p.DateKey(which, relation, day):
            if which == "internal":
                return s.InternalDate(relation, day)
            return s.SentDate(relation, day)
        case p.SizeKey(relation, size):
            return s.Size(relation, size)
        case p.ModSeqKey(modseq):
            return s.ModSeq(modseq - 1)  # RFC 7162 §3.1.5: "greater than or equal"
        case p.SequenceKey(sequence_set, uid):
            if sequence_set.saved:
                return s.uid_ranges(saved)  # RFC 5182 §2.1: "$", whether UID or not
            if uid:
                return s.UidRanges(uid_set_ranges(sequence_set, uids))
            return s.UidRanges(seq_ranges_to_uids(sequence_set, uids))
    raise ValueError(f"unknown search key {key!r}")  # pragma: no cover - the union is closed


def saved_result(found: Sequence[int], returns: Sequence[str]) -> list[int]:
    """RFC 5182 §2.1: what SEARCH RETURN (SAVE ...) saves of the UIDs found: all of them,
    or only the smallest and/or largest when MIN and/or MAX come without ALL and COUNT."""
    if not found or {"ALL", "COUNT"} & set(returns) or not {"MIN", "MAX"} & set(returns):
        return list(found)
    kept = {found[0]} if "MIN" in returns else set()
    if "MAX" in returns:
        kept.add(found[-1])
    return sorted(kept)


def uses_modseq(key: p.SearchKey) -> bool:
    """Whether a MODSEQ key appears (RFC 7162 §3.1.5: the response then says the highest)."""
    match key:
        case p.ModSeqKey():
            return True
        case p.And(keys):
            return any(uses_modseq(k) for k in keys)
        case p.Or(left, right):
            return uses_modseq(left) or uses_modseq(right)
        case p.Not(inner):
            return uses_modseq(inner)
    return False


def compact(uids: Sequence[int]) -> str:
    """UIDs as a sequence set for COPYUID and APPENDUID: ``1:3,7`` (RFC 4315 §3)."""
    parts: list[str] = []
    for low, high in s.uid_ranges(uids).ranges:
        parts.append(str(low) if low == high else f"{low}:{high}")
    return ",".join(parts)
