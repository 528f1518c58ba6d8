"""THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 §3) as pure functions.

Each takes the searched messages as `ThreadMessage` records (a number to answer with —
sequence number or UID —, Message-ID, References, In-Reply-To, subject and sent date) and
returns the threads as a tree of `Node`s; `format_threads` writes them as the THREAD
response's thread-list (RFC 5256 §4). Ties between equal sent dates go to the smaller
number, which is the mailbox order for sequence numbers and UIDs alike (RFC 5256 §2.2).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Final

from postroom.access.imap.subject import base_subject, casemap, subject_key

__all__ = ["Node", "ThreadMessage", "format_threads", "ordered_subject", "references"]

_MSG_ID: Final = re.compile(r"<[^<>\s]+>")
# How far up a loop is looked for before a link is made: a link that would hang a message
# deeper than this is treated as a loop (not made), which bounds the work a mailbox of
# crafted References can cause.
MAX_DEPTH: Final = 1000


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    """What threading reads of one message. ``sent`` is the sent date of RFC 5256 §2.2:
    the Date: header's moment, else the INTERNALDATE (the caller decides)."""

    number: int
    message_id: str | None
    references: tuple[str, ...]
    in_reply_to: str | None
    subject: str | None
    sent: datetime


@dataclass(eq=False, slots=True)
class Node:
    """A message of a thread (``message`` None: a dummy that only holds its children)."""

    message: ThreadMessage | None
    children: list[Node] = field(default_factory=list)
    parent: Node | None = None

    def sort_key(self) -> tuple[datetime, int]:
        # RFC 5256 §3 REFERENCES (4): a dummy sorts as its first child.
        node = self
        while node.message is None:
            node = node.children[0]
        return node.message.sent, node.message.number


def _valid(message_id: str | None) -> bool:
    return message_id is not None and _MSG_ID.fullmatch(message_id) is not None


# --- ORDEREDSUBJECT -----------------------------------------------------------------------


def ordered_subject(messages: Iterable[ThreadMessage]) -> list[Node]:
    """RFC 5256 §3 ORDEREDSUBJECT: the messages sorted by base subject and sent date and
    split into one thread a base subject; the first message of each is the root and every
    later one its child; the threads ordered by the sent date of their first message."""
    groups: dict[str, list[ThreadMessage]] = {}
    for message in messages:
        groups.setdefault(subject_key(message.subject), []).append(message)
    threads: list[Node] = []
    for members in groups.values():
        members.sort(key=lambda m: (m.sent, m.number))
        root = Node(members[0])
        root.children = [Node(m, parent=root) for m in members[1:]]
        threads.append(root)
    threads.sort(key=Node.sort_key)
    return threads


# --- REFERENCES ---------------------------------------------------------------------------


def _would_loop(parent: Node, child: Node) -> bool:
    """Whether making ``child`` a child of ``parent`` closes a loop (or goes too deep)."""
    if not child.children:
        return parent is child  # a leaf is nobody's ancestor: the common case, at once
    node: Node | None = parent
    for _ in range(MAX_DEPTH):
        if node is None:
            return False
        if node is child:
            return True
        node = node.parent
    return True


def _post_order(roots: list[Node]) -> list[Node]:
    """Every node below and including ``roots``, each after its descendants (no recursion:
    a thread may be deep)."""
    out: list[Node] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(node.children)
    out.reverse()
    return out


def _link(parent: Node, child: Node) -> None:
    child.parent = parent
    parent.children.append(child)


def _unlink(child: Node) -> None:
    assert child.parent is not None
    child.parent.children.remove(child)
    child.parent = None


def references(messages: Sequence[ThreadMessage]) -> list[Node]:
    """RFC 5256 §3 THREAD=REFERENCES, steps (1) to (6)."""
    by_id: dict[str, Node] = {}
    nodes: list[Node] = []  # every node made, dummies included

    def node_for(message_id: str) -> Node:
        # (1)(A): "If no message can be found with a given Message ID, create a dummy
        # message with this ID. Use this dummy message for all subsequent references".
        found = by_id.get(message_id)
        if found is None:
            found = by_id[message_id] = Node(None)
            nodes.append(found)
        return found

    # (1) In mailbox order: a duplicate Message-ID is kept only by the first message.
    for message in sorted(messages, key=lambda m: m.number):
        own = by_id.get(message.message_id or "") if _valid(message.message_id) else None
        if own is not None and own.message is None:
            own.message = message
        else:
            own = Node(message)
            nodes.append(own)
            if _valid(message.message_id) and message.message_id not in by_id:
                assert message.message_id is not None
                by_id[message.message_id] = own
        refs = [r for r in message.references if _valid(r)]
        if not refs and message.in_reply_to is not None:
            # "use the first (if any) valid Message ID of the In-Reply-To header line".
            first = _MSG_ID.search(message.in_reply_to)
            refs = [first[0]] if first is not None else []
        # (1)(A) Each reference is the parent of the next; an existing link is kept and
        # no link may close a loop.
        chain = [node_for(r) for r in refs]
        for parent, child in pairwise(chain):
            if child.parent is None and not _would_loop(parent, child):
                _link(parent, child)
        # (1)(B) The last reference is the message's parent, replacing any earlier one
        # (probably from a truncated References); none when there are no references.
        if own.parent is not None:
            _unlink(own)
        if chain and not _would_loop(chain[-1], own):
            _link(chain[-1], own)

    # (2) The messages without a parent are the children of the root.
    roots = [node for node in nodes if node.parent is None]
    # (3) Prune the dummies.
    roots = _prune(roots)
    for node in roots:
        node.parent = None
    # (4) Sort the root's children by sent date (a dummy by its first child's).
    for node in roots:
        if node.message is None:
            node.children.sort(key=Node.sort_key)
    roots.sort(key=Node.sort_key)
    # (5) Gather the threads whose (first) message has the same base subject.
    roots = _merge_subjects(roots)
    # (6) Sort every set of siblings by sent date, the deepest first.
    _sort_tree(roots)
    roots.sort(key=Node.sort_key)
    return roots


def _prune(roots: list[Node]) -> list[Node]:
    """(3): a dummy without children goes; a dummy with children goes and they take its
    place, unless that puts several of them at the root. Children before parents, so that
    a dummy's children are final when it is looked at."""
    for node in _post_order(roots):
        node.children = _pruned(node.children, top=False)
        for child in node.children:
            child.parent = node
    return _pruned(roots, top=True)


def _pruned(siblings: list[Node], *, top: bool) -> list[Node]:
    kept: list[Node] = []
    for node in siblings:
        if node.message is not None:
            kept.append(node)
        elif not node.children:
            continue
        elif top and len(node.children) > 1:
            kept.append(node)
        else:
            kept.extend(node.children)
    return kept


def _subject_of(node: Node) -> tuple[str, bool]:
    """(5)(B): the base subject (case-mapped) of a top-level node, a dummy's from its first
    child, and whether it is a reply or forward."""
    message = node.message if node.message is not None else node.children[0].message
    assert message is not None  # pruned: a top-level dummy's children are messages
    subject, reply = base_subject(message.subject)
    return casemap(subject), reply


def _merge_subjects(roots: list[Node]) -> list[Node]:
    # (5)(A), (5)(B), (5)(C): the subject table.
    table: dict[str, Node] = {}
    for node in roots:
        subject, reply = _subject_of(node)
        if not subject:
            continue
        held = table.get(subject)
        # (5)(C): replace a message (never a dummy) with a dummy, or a reply or forward
        # with a message that is neither.
        replace = held is not None and (
            held.message is not None
            and (node.message is None or (_subject_of(held)[1] and not reply))
        )
        if held is None or replace:
            table[subject] = node
    # (5)(D): merge the threads with the same subject. Membership of the root is kept in
    # a set and a map of replacements (a list's "in" and "remove" would make a mailbox of
    # many threads quadratic).
    gone: set[Node] = set()
    replaced: dict[Node, Node] = {}
    for node in roots:
        if node in gone:
            continue
        subject, reply = _subject_of(node)
        if not subject:
            continue
        held = table[subject]
        if held is node:
            continue
        if held.message is None and node.message is None:
            # Both dummies: the children of both become siblings.
            for child in node.children:
                child.parent = held
            held.children.extend(node.children)
            gone.add(node)
        elif held.message is None or (reply and not _subject_of(held)[1]):
            # Into the dummy, or a reply under the message it replies to.
            gone.add(node)
            _link(held, node)
        else:
            dummy = Node(None)
            replaced[held] = dummy
            gone.add(node)
            _link(dummy, held)
            _link(dummy, node)
            table[subject] = dummy
    top = [replaced.get(node, node) for node in roots if node not in gone]
    for node in top:
        node.parent = None
    return top


def _sort_tree(roots: list[Node]) -> None:
    for node in _post_order(roots):
        node.children.sort(key=Node.sort_key)


# --- the response -------------------------------------------------------------------------


def format_threads(threads: Sequence[Node]) -> bytes:
    """RFC 5256 §4 thread-list for each thread, concatenated: ``(3 6 (4 23)(44 7 96))``.

    thread-members = nz-number *(SP nz-number) [SP thread-nested]; a chain of single
    children is written as numbers, a set of siblings as a nested list each. Written
    without recursion, so that a deep chain cannot exhaust the stack.
    """
    out: list[bytes] = []
    # A stack of what is still to write: bytes as they are, a node as its thread-members.
    work: list[Node | bytes] = []
    for thread in reversed(threads):
        work += [b")", thread, b"("]
    while work:
        item = work.pop()
        if isinstance(item, bytes):
            out.append(item)
            continue
        node: Node | None = item
        numbers: list[bytes] = []
        # Follow the chain while each node has exactly one child.
        while node is not None:
            if node.message is not None:
                numbers.append(b"%d" % node.message.number)
            if len(node.children) == 1:
                node = node.children[0]
                continue
            break
        assert node is not None
        out.append(b" ".join(numbers))
        if len(node.children) > 1:
            if numbers:
                out.append(b" ")
            nested: list[Node | bytes] = []
            for child in node.children:
                nested += [b"(", child, b")"]
            work.extend(reversed(nested))
    return b"".join(out)
