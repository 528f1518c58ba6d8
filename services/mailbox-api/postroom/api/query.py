"""The search box's language: words and ``name:value`` operators, as one criteria tree.

``from:`` ``to:`` ``subject:`` ``has:attachment`` ``before:`` ``after:`` ``is:unread``
(``read``, ``flagged``, ``unflagged``, ``answered``) and ``in:folder``; a value with spaces is
quoted (``subject:"lunch on friday"``); a leading ``-`` negates a term; any other word is
searched in the whole message. Every term must match. The criteria are the store's (the same
SQL as IMAP SEARCH), so they run on its indexes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from postroom.errors import InvalidInput
from postroom.store import search

MAX_QUERY = 1000
MAX_TERMS = 50
# A term: an optional "-", an optional operator name, then a quoted or a bare value. An
# unclosed quote runs to the end of the query.
_TERM = re.compile(r'(-?)(?:([A-Za-z]+):)?(?:"([^"]*)"?|(\S*))')
OPERATORS = ("from", "to", "subject", "has", "before", "after", "is", "in")
_IS = {
    "unread": search.Flag("\\Seen", present=False),
    "read": search.Flag("\\Seen"),
    "flagged": search.Flag("\\Flagged"),
    "unflagged": search.Flag("\\Flagged", present=False),
    "answered": search.Flag("\\Answered"),
}


@dataclass(frozen=True, slots=True)
class Query:
    """What a query asks: criteria (None: every message) and the folder it names, if any."""

    criteria: search.Criterion | None
    folder: str | None = None


def _day(name: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{name}: wants a date as YYYY-MM-DD, not {value!r}") from None


def _term(name: str, value: str) -> search.Criterion:
    match name:
        case "from" | "subject":
            return search.Header(name, value)
        case "to":
            return search.Or((search.Header("to", value), search.Header("cc", value)))
        case "has":
            if value.lower() not in ("attachment", "attachments"):
                raise InvalidInput(f"has: knows only has:attachment, not has:{value}")
            return search.HasAttachments()
        case "before":
            return search.SentDate("before", _day(name, value))
        case "after":
            # "after:2026-03-01" includes that day, as people mean it.
            return search.SentDate("since", _day(name, value))
        case "is":
            flag = _IS.get(value.lower())
            if flag is None:
                raise InvalidInput(f"is: knows {', '.join(_IS)}, not is:{value}")
            return flag
    return search.Text(value)


def parse_query(text: str) -> Query:
    """The criteria of a search box's text; InvalidInput with a plain reason when an
    operator's value makes no sense."""
    if len(text) > MAX_QUERY:
        raise InvalidInput(f"a search may be at most {MAX_QUERY} characters")
    items: list[search.Criterion] = []
    folder: str | None = None
    for match in _TERM.finditer(text):
        negate, name, quoted, bare = match.groups()
        value = quoted if quoted is not None else bare or ""
        operator = (name or "").lower()
        if name and operator not in OPERATORS:
            # "re:lunch" or "10:30" are words, not operators.
            value, operator = f"{name}:{value}", ""
        if not value:
            if operator:
                raise InvalidInput(f"{operator}: needs a value")
            continue
        if operator == "in":
            if negate:
                raise InvalidInput("in: names the one folder to search; it cannot be negated")
            folder = value
            continue
        if len(items) >= MAX_TERMS:
            raise InvalidInput(f"a search may have at most {MAX_TERMS} terms")
        criterion = _term(operator, value)
        items.append(search.Not(criterion) if negate else criterion)
    criteria: search.Criterion | None
    if not items:
        criteria = None
    elif len(items) == 1:
        criteria = items[0]
    else:
        criteria = search.And(tuple(items))
    return Query(criteria, folder)
