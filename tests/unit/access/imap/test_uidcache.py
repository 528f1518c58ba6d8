"""The process's kept UID lists: copies handed out, the oldest dropped past the limit."""

from __future__ import annotations

from postroom.access.imap.uidcache import FlagsCache, RenderedFlags, UidCache
from postroom.store.types import AccountId, MailboxId

ALICE = AccountId(1)


def test_a_kept_list_comes_back_with_what_it_was_read_at() -> None:
    cache = UidCache()
    cache.put((ALICE, "INBOX"), (MailboxId(7), 3, 40), [1, 2, 5])
    found = cache.lookup((ALICE, "INBOX"))
    assert found is not None
    known, uids = found
    assert known == (MailboxId(7), 3, 40)
    assert list(uids) == [1, 2, 5]


def test_an_unknown_name_has_no_list() -> None:
    assert UidCache().lookup((ALICE, "Sent")) is None


def test_the_least_recently_used_list_goes_past_the_limit() -> None:
    cache = UidCache(max_uids=5)
    cache.put((ALICE, "a"), (MailboxId(1), 1, 1), [1, 2])
    cache.put((ALICE, "b"), (MailboxId(2), 1, 1), [1, 2])
    assert cache.lookup((ALICE, "a")) is not None  # now the most recently used
    cache.put((ALICE, "c"), (MailboxId(3), 1, 1), [1, 2])
    assert cache.lookup((ALICE, "b")) is None
    assert cache.lookup((ALICE, "a")) is not None
    assert cache.lookup((ALICE, "c")) is not None


def test_a_list_longer_than_the_limit_is_not_kept() -> None:
    cache = UidCache(max_uids=2)
    cache.put((ALICE, "a"), (MailboxId(1), 1, 1), [1, 2, 3])
    assert cache.lookup((ALICE, "a")) is None


def test_putting_a_name_again_replaces_its_list() -> None:
    cache = UidCache(max_uids=3)
    cache.put((ALICE, "a"), (MailboxId(1), 1, 1), [1, 2])
    cache.put((ALICE, "a"), (MailboxId(1), 1, 2), [1, 2, 3])
    found = cache.lookup((ALICE, "a"))
    assert found is not None
    assert found[0] == (MailboxId(1), 1, 2)
    assert list(found[1]) == [1, 2, 3]


def test_kept_flags_come_back_only_at_the_same_highestmodseq() -> None:
    cache = FlagsCache()
    rows = [(1, "\\Seen"), (2, ""), (5, "\\Seen")]
    cache.put(MailboxId(7), (3, 40), rows)
    assert cache.lookup(MailboxId(7), (3, 40)) == rows
    assert cache.lookup(MailboxId(7), (3, 41)) == []
    assert cache.lookup(MailboxId(8), (3, 40)) == []


def test_kept_flags_past_the_limit_drop_the_oldest_mailbox() -> None:
    cache = FlagsCache(max_messages=3)
    cache.put(MailboxId(1), (1, 1), [(1, ""), (2, "")])
    cache.put(MailboxId(2), (1, 1), [(1, ""), (2, "")])
    assert cache.lookup(MailboxId(1), (1, 1)) == []
    assert cache.lookup(MailboxId(2), (1, 1)) == [(1, ""), (2, "")]


def test_a_kept_flags_response_comes_back_only_for_the_same_sequence_numbers() -> None:
    cache = RenderedFlags()
    cache.put(MailboxId(7), (3, 40), b"* %d FETCH (%s)\r\n", [1, 2], ("",), b"response")
    assert cache.lookup(MailboxId(7), (3, 40), b"* %d FETCH (%s)\r\n", [1, 2]) == (
        ("",),
        b"response",
    )
    assert cache.lookup(MailboxId(7), (3, 40), b"* %d FETCH (%s)\r\n", [2]) is None


def test_kept_flags_responses_past_the_limit_drop_the_oldest_mailbox() -> None:
    cache = RenderedFlags(max_octets=100)
    form = b"* %d FETCH (%s)\r\n"
    cache.put(MailboxId(1), (1, 1), form, [1], (), b"x" * 50)
    cache.put(MailboxId(2), (1, 1), form, [1], (), b"y" * 50)
    assert cache.lookup(MailboxId(1), (1, 1), form, [1]) is None
    assert cache.lookup(MailboxId(2), (1, 1), form, [1]) == ((), b"y" * 50)
