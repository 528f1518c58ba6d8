"""THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 §3) and the thread-list of §4."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from postroom.access.imap.threads import (
    MAX_DEPTH,
    Node,
    ThreadMessage,
    format_threads,
    ordered_subject,
    references,
)

START = datetime(2026, 1, 1, tzinfo=UTC)


def msg(
    number: int,
    message_id: str | None = None,
    refs: tuple[str, ...] = (),
    *,
    in_reply_to: str | None = None,
    subject: str | None = "s",
    minute: int | None = None,
) -> ThreadMessage:
    """Message ``number``, sent ``minute`` (default: its number) minutes after START."""
    sent = START + timedelta(minutes=number if minute is None else minute)
    return ThreadMessage(number, message_id, refs, in_reply_to, subject, sent)


def refs_thread(*messages: ThreadMessage) -> str:
    return format_threads(references(messages)).decode()


def subject_thread(*messages: ThreadMessage) -> str:
    return format_threads(ordered_subject(messages)).decode()


# --- the thread-list (§4) ---------------------------------------------------------------


def test_thread_list_writes_the_rfc_example_3_6_4_23_44_7_96() -> None:
    # RFC 5256 §4: 3 is the parent of 6; 6 has the children 4 and 44; 4 has 23; 44 has 7,
    # which has 96.
    m3, m6, m4, m23, m44, m7, m96 = (Node(msg(n)) for n in (3, 6, 4, 23, 44, 7, 96))
    m3.children, m6.children = [m6], [m4, m44]
    m4.children, m44.children, m7.children = [m23], [m7], [m96]
    assert format_threads([m3]) == b"(3 6 (4 23)(44 7 96))"


def test_thread_list_writes_a_dummy_parent_as_a_nested_list() -> None:
    # RFC 5256 §4: "((3)(5))": 3 and 5 are siblings under a parent not in the list.
    dummy = Node(None, [Node(msg(3)), Node(msg(5))])
    assert format_threads([dummy]) == b"((3)(5))"


def test_thread_list_of_a_long_chain_does_not_recurse() -> None:
    nodes = [Node(msg(n)) for n in range(1, 5001)]
    for parent, child in itertools.pairwise(nodes):
        parent.children = [child]
    assert format_threads([nodes[0]]) == ("(" + " ".join(map(str, range(1, 5001))) + ")").encode()


def test_references_of_a_deep_chain_do_not_recurse() -> None:
    chain = [msg(1, "<1@x>")] + [msg(n, f"<{n}@x>", (f"<{n - 1}@x>",)) for n in range(2, 3001)]
    assert refs_thread(*chain) == "(" + " ".join(map(str, range(1, 3001))) + ")"


def test_references_a_link_deeper_than_the_limit_is_not_made() -> None:
    # A chain deeper than MAX_DEPTH, then a message with a reply of its own that names the
    # chain's last message as its parent: looking for a loop would go past the limit, so
    # the link is not made and the message heads a thread of its own.
    deep = MAX_DEPTH + 1
    chain = [msg(1, "<1@x>", subject="c1")] + [
        msg(n, f"<{n}@x>", (f"<{n - 1}@x>",), subject=f"c{n}") for n in range(2, deep + 1)
    ]
    reply = msg(deep + 1, "<y@x>", ("<x@x>",), subject="y")
    late = msg(deep + 2, "<x@x>", (f"<{deep}@x>",), subject="x")
    response = refs_thread(*chain, reply, late)
    assert response.endswith(f" {deep})({deep + 2} {deep + 1})")
    # One level less, and the link is made.
    shallow = refs_thread(*chain[:-2], reply, msg(deep + 2, "<x@x>", (f"<{deep - 2}@x>",)))
    assert shallow.endswith(f" {deep - 2} {deep + 2} {deep + 1})")


# --- ORDEREDSUBJECT ---------------------------------------------------------------------


def test_orderedsubject_makes_later_messages_children_of_the_first() -> None:
    assert (
        subject_thread(
            msg(1, subject="a"), msg(2, subject="Re: a"), msg(3, subject="b"), msg(4, subject="A")
        )
        == "(1 (2)(4))(3)"
    )


def test_orderedsubject_one_reply_is_a_chain() -> None:
    assert subject_thread(msg(1, subject="a"), msg(2, subject="re: a")) == "(1 2)"


def test_orderedsubject_orders_by_sent_date_not_number() -> None:
    assert (
        subject_thread(msg(1, subject="a", minute=9), msg(2, subject="b"), msg(3, subject="a"))
        == "(2)(3 1)"
    )


def test_orderedsubject_breaks_equal_dates_by_number() -> None:
    assert subject_thread(msg(2, subject="x", minute=0), msg(1, subject="y", minute=0)) == (
        "(1)(2)"
    )


# --- REFERENCES -------------------------------------------------------------------------


def test_references_links_a_reply_to_its_parent() -> None:
    assert refs_thread(msg(1, "<a@x>"), msg(2, "<b@x>", ("<a@x>",))) == "(1 2)"


def test_references_chain_orders_ancestors_from_the_references_field() -> None:
    # (1)(A): each reference is the parent of the next; the message's parent is the last.
    assert (
        refs_thread(
            msg(1, "<a@x>"),
            msg(2, "<b@x>", ("<a@x>",)),
            msg(3, "<c@x>", ("<a@x>", "<b@x>")),
            msg(4, "<d@x>", ("<a@x>",)),
        )
        == "(1 (2 3)(4))"
    )


def test_references_uses_in_reply_to_without_references() -> None:
    assert refs_thread(msg(1, "<a@x>"), msg(2, "<b@x>", in_reply_to="<a@x> (Alice)")) == "(1 2)"


def test_references_a_missing_parent_with_one_child_is_pruned() -> None:
    # (3): a dummy with one child at the root gives way to the child.
    assert refs_thread(msg(1, "<b@x>", ("<gone@x>",), subject="one")) == "(1)"


def test_references_a_missing_parent_of_two_stays_a_dummy() -> None:
    assert (
        refs_thread(
            msg(3, "<b@x>", ("<gone@x>",), subject="one"),
            msg(5, "<c@x>", ("<gone@x>",), subject="two"),
        )
        == "((3)(5))"
    )


def test_references_a_missing_grandparent_promotes_its_child() -> None:
    # (3): a dummy below the root is replaced by its children.
    assert (
        refs_thread(
            msg(1, "<a@x>"),
            msg(2, "<c@x>", ("<a@x>", "<gone@x>")),
            msg(3, "<d@x>", ("<a@x>", "<gone@x>")),
        )
        == "(1 (2)(3))"
    )


def test_references_a_duplicate_message_id_counts_for_the_first_only() -> None:
    assert (
        refs_thread(
            msg(1, "<a@x>", subject="p"),
            msg(2, "<a@x>", subject="q"),
            msg(3, "<b@x>", ("<a@x>",), subject="r"),
        )
        == "(1 3)(2)"
    )


def test_references_ignores_a_reference_to_itself_and_loops() -> None:
    assert (
        refs_thread(
            msg(1, "<a@x>", ("<b@x>",), subject="p"),
            msg(2, "<b@x>", ("<a@x>",), subject="q"),
            msg(3, "<c@x>", ("<c@x>",), subject="r"),
        )
        == "(2 1)(3)"
    )


def test_references_gathers_threads_of_one_subject_under_the_non_reply() -> None:
    # (5): no links, but "Re: hello" goes under "hello".
    assert (
        refs_thread(msg(1, "<a@x>", subject="Re: hello"), msg(2, "<b@x>", subject="hello"))
        == "(2 1)"
    )


def test_references_two_non_replies_of_one_subject_get_a_dummy_parent() -> None:
    assert (
        refs_thread(msg(1, "<a@x>", subject="hello"), msg(2, "<b@x>", subject="hello"))
        == "((1)(2))"
    )


def test_references_empty_subjects_are_not_gathered() -> None:
    assert refs_thread(msg(1, "<a@x>", subject=""), msg(2, "<b@x>", subject=None)) == "(1)(2)"


def test_references_imaptest_thread_example() -> None:
    # imaptest's "thread": 3 replies to 2, 1 stands alone; after 1 is gone, 2 replies to 1.
    assert (
        refs_thread(
            msg(1, "<1@x>", subject="a"),
            msg(2, "<2@x>", subject="b"),
            msg(3, "<3@x>", ("<2@x>",), subject="c"),
        )
        == "(1)(2 3)"
    )


# --- any input ----------------------------------------------------------------------------

_THREAD_LIST = re.compile(r"\(|\)| |\d+")


def numbers_of(response: str) -> list[int]:
    """The numbers of a thread-list, checking its grammar (RFC 5256 §4) on the way."""
    depth, found, previous = 0, [], ""
    for token in _THREAD_LIST.findall(response):
        if token == "(":
            assert previous in ("", "(", ")", " ")
            depth += 1
        elif token == ")":
            assert previous not in ("(", " ")
            assert depth > 0
            depth -= 1
        elif token != " ":
            found.append(int(token))
        previous = token
    assert depth == 0
    assert "".join(_THREAD_LIST.findall(response)) == response
    return found


ids = st.sampled_from([None, "<1@x>", "<2@x>", "<3@x>", "<4@x>", "<5@x>", "junk"])
messages = st.lists(
    st.builds(
        lambda mid, refs, irt, subject, minute: (mid, tuple(refs), irt, subject, minute),
        ids,
        st.lists(ids.filter(lambda i: i is not None), max_size=4),
        ids,
        st.sampled_from(["a", "Re: a", "b", "", None, "[fwd: a]"]),
        st.integers(0, 5),
    ),
    max_size=12,
).map(
    lambda items: [
        msg(n, *item[:2], in_reply_to=item[2], subject=item[3], minute=item[4])
        for n, item in enumerate(items, 1)
    ]
)


@given(messages)
def test_references_names_every_message_exactly_once(batch: list[ThreadMessage]) -> None:
    assert sorted(numbers_of(refs_thread(*batch))) == [m.number for m in batch]


@given(messages)
def test_orderedsubject_names_every_message_exactly_once(batch: list[ThreadMessage]) -> None:
    assert sorted(numbers_of(subject_thread(*batch))) == [m.number for m in batch]


@given(messages)
def test_references_does_not_depend_on_the_order_messages_come_in(
    batch: list[ThreadMessage],
) -> None:
    assert refs_thread(*batch) == refs_thread(*reversed(batch))
