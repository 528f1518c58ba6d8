"""Sieve comparators (RFC 4790, RFC 5228 §2.7.3) and match types, relational ones (RFC 5231) too.

``:matches`` is matched without regular expressions: the pattern is cut at its ``*`` into
fixed-length segments, each placed at its leftmost position. That is exact for globs, takes
O(len(pattern) x len(text)) at worst and cannot backtrack exponentially.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}

Segment = list[str | None]  # a character, or None for '?'


def ascii_lower(text: str) -> str:
    # RFC 4790 §9.2: i;ascii-casemap folds only US-ASCII letters.
    return text.translate(_ASCII_LOWER)


def fold(text: str, comparator: str) -> str:
    return ascii_lower(text) if comparator == "i;ascii-casemap" else text


def _numeric(text: str) -> float:
    # RFC 4790 §9.1.1: the leading digits as a number; no leading digit is positive infinity.
    end = 0
    while end < len(text) and "0" <= text[end] <= "9":
        end += 1
    return math.inf if end == 0 else int(text[:end])


def _compare(value: str, key: str, comparator: str) -> int:
    if comparator == "i;ascii-numeric":
        a: float | str = _numeric(value)
        b: float | str = _numeric(key)
    else:
        a, b = fold(value, comparator), fold(key, comparator)
        if comparator == "i;octet":
            a, b = value, key  # code point order is UTF-8 octet order
    return (a > b) - (a < b)  # type: ignore[operator]


def relation_holds(order: int, relation: str) -> bool:
    return {
        "gt": order > 0,
        "ge": order >= 0,
        "lt": order < 0,
        "le": order <= 0,
        "eq": order == 0,
        "ne": order != 0,
    }[relation]


def _segments(pattern: str) -> list[Segment]:
    # RFC 5228 §2.7.1: '*' any run, '?' one character, '\' quotes the next character.
    segments: list[Segment] = [[]]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            segments[-1].append(pattern[i + 1])
            i += 2
            continue
        if c == "*":
            segments.append([])
        elif c == "?":
            segments[-1].append(None)
        else:
            segments[-1].append(c)
        i += 1
    return segments


def _fits(segment: Segment, text: str, at: int) -> bool:
    for offset, item in enumerate(segment):
        if item is not None and text[at + offset] != item:
            return False
    return True


def _captures(segment: Segment, original: str, at: int) -> list[str]:
    return [original[at + k] for k, item in enumerate(segment) if item is None]


def glob(pattern: str, text: str, comparator: str) -> list[str] | None:
    """Match ``text`` against a :matches pattern; None, or [whole, wildcard captures...]
    (RFC 5229 §3.2: ${1}.. are what each wildcard matched, left to right)."""
    folded_pattern, folded = fold(pattern, comparator), fold(text, comparator)
    segments = _segments(folded_pattern)
    original_segments = _segments(pattern)
    # Literal characters come from the folded pattern; '?' positions are the same in both.
    assert len(segments) == len(original_segments)
    n = len(folded)
    first, last = segments[0], segments[-1]
    if len(segments) == 1:
        if len(first) != n or not _fits(first, folded, 0):
            return None
        return [text, *_captures(first, text, 0)]
    if len(first) + len(last) > n or not _fits(first, folded, 0):
        return None
    tail_at = n - len(last)
    if not _fits(last, folded, tail_at):
        return None
    captures = [text, *_captures(first, text, 0)]
    pos = len(first)
    for segment in segments[1:-1]:
        found = -1
        if None not in segment:
            # A literal segment: str.find, linear and in C.
            found = folded.find("".join(segment), pos, tail_at)  # type: ignore[arg-type]
        else:
            for start in range(pos, tail_at - len(segment) + 1):
                if _fits(segment, folded, start):
                    found = start
                    break
        if found < 0:
            return None
        captures.append(text[pos:found])
        captures.extend(_captures(segment, text, found))
        pos = found + len(segment)
    captures.append(text[pos:tail_at])
    captures.extend(_captures(last, text, tail_at))
    return captures


def matches_cost(pattern: str) -> int:
    """Characters compared per character of the text, at worst: the '?'-holding segments are
    scanned position by position, literal ones by str.find."""
    return 1 + sum(len(seg) for seg in _segments(pattern) if None in seg)


def match_one(value: str, key: str, match: str, comparator: str, relation: str | None) -> bool:
    if match == "is":
        if comparator == "i;ascii-numeric":
            return _numeric(value) == _numeric(key)
        return fold(value, comparator) == fold(key, comparator)
    if match == "contains":
        return fold(key, comparator) in fold(value, comparator)
    if match == "value":
        assert relation is not None
        return relation_holds(_compare(value, key, comparator), relation)
    raise ValueError(match)


def test_values(
    values: Iterable[str],
    keys: Sequence[str],
    *,
    match: str,
    comparator: str,
    relation: str | None,
) -> tuple[bool, list[str] | None]:
    """Whether any value matches any key; for :matches also the match variables."""
    if match == "count":
        assert relation is not None
        count = str(sum(1 for _ in values))
        return any(relation_holds(_compare(count, key, comparator), relation) for key in keys), None
    for value in values:
        for key in keys:
            if match == "matches":
                captured = glob(key, value, comparator)
                if captured is not None:
                    return True, captured
            elif match_one(value, key, match, comparator, relation):
                return True, None
    return False, None
