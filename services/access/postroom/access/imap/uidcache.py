"""The UID lists of recently selected mailboxes, shared by the sessions of the process.

SELECT needs a mailbox's every UID (the sequence-number map, RFC 3501 §2.3.1.2); most
SELECTs are of a mailbox that has not changed since the last one (a client re-selecting
INBOX, another session of the same account). A list is kept with the mailbox id,
UIDVALIDITY and HIGHESTMODSEQ it was read at: every change of a mailbox's messages raises
HIGHESTMODSEQ and a new incarnation of a name changes UIDVALIDITY, so while the three are
the same the list is too, and the store sends it again only when they are not
(`store.mailboxes.select`, which checks them in the statement that reads the mailbox).
A kept list is handed out as it is, not copied (10,000 UIDs made a quarter of a SELECT's
time): its holders replace a list, never change one in place.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict

from postroom.store.types import AccountId, MailboxId

# UIDs kept in all, 36 octets each (a list's pointer and an int): 1,000,000 is 34 MiB.
MAX_UIDS = 1_000_000
# Flags of messages kept in all, 12 octets each: 2,000,000 is 23 MiB.
MAX_FLAGS = 2_000_000
# Rendered FLAGS responses kept in all (about 30 octets a message): 32 MiB.
MAX_RENDERED_OCTETS = 32 * 1024 * 1024

Key = tuple[AccountId, str]  # the account and the mailbox name as the client gave it


class UidCache:
    def __init__(self, max_uids: int = MAX_UIDS) -> None:
        self.max_uids = max_uids
        self._lists: OrderedDict[Key, tuple[MailboxId, int, int, list[int]]] = OrderedDict()
        self._held = 0

    def lookup(self, key: Key) -> tuple[tuple[MailboxId, int, int], list[int]] | None:
        """((mailbox id, UIDVALIDITY, HIGHESTMODSEQ), UIDs) kept under the key, if any; the
        caller uses the UIDs once the store has said they still hold, and never changes
        the list in place."""
        entry = self._lists.get(key)
        if entry is None:
            return None
        self._lists.move_to_end(key)
        return entry[:3], entry[3]

    def put(self, key: Key, known: tuple[MailboxId, int, int], uids: list[int]) -> None:
        self.drop(key)
        if len(uids) > self.max_uids:
            return
        self._lists[key] = (*known, uids)
        self._held += len(uids)
        while self._held > self.max_uids:
            _, oldest = self._lists.popitem(last=False)
            self._held -= len(oldest[3])

    def drop(self, key: Key) -> None:
        entry = self._lists.pop(key, None)
        if entry is not None:
            self._held -= len(entry[3])


class FlagsCache:
    """The flags of every message of recently fetched mailboxes (``store.mailbox_flags``),
    kept with the UIDVALIDITY and HIGHESTMODSEQ they were read at: while a mailbox's are the
    same, so are its flags, and FETCH 1:* (FLAGS) asks the store for those two numbers only.
    Each distinct flag set is kept once; a message costs 12 octets."""

    def __init__(self, max_messages: int = MAX_FLAGS) -> None:
        self.max_messages = max_messages
        self._lists: OrderedDict[
            MailboxId, tuple[tuple[int, int], array[int], array[int], list[str]]
        ] = OrderedDict()
        self._held = 0

    def lookup(self, mailbox_id: MailboxId, version: tuple[int, int]) -> list[tuple[int, str]]:
        """``(uid, flags)`` of every message if kept at this (UIDVALIDITY, HIGHESTMODSEQ),
        otherwise an empty list."""
        entry = self._lists.get(mailbox_id)
        if entry is None or entry[0] != version:
            return []
        self._lists.move_to_end(mailbox_id)
        _, uids, codes, texts = entry
        return list(zip(uids, map(texts.__getitem__, codes), strict=True))

    def put(
        self, mailbox_id: MailboxId, version: tuple[int, int], rows: list[tuple[int, str]]
    ) -> None:
        old = self._lists.pop(mailbox_id, None)
        if old is not None:
            self._held -= len(old[1])
        if not rows or len(rows) > self.max_messages:
            return
        numbers: dict[str, int] = {}
        codes = array("I", (numbers.setdefault(text, len(numbers)) for _, text in rows))
        uids = array("q", (uid for uid, _ in rows))
        self._lists[mailbox_id] = (version, uids, codes, list(numbers))
        self._held += len(rows)
        while self._held > self.max_messages:
            _, oldest = self._lists.popitem(last=False)
            self._held -= len(oldest[1])


class RenderedFlags:
    """Whole responses to FETCH of every message's FLAGS, as sent, kept by mailbox with the
    (UIDVALIDITY, HIGHESTMODSEQ) they were rendered at, the form of their lines and the
    sequence-number map (UIDs) they were numbered by: while the four are the same, so are
    the octets. A sync client asks this at each connection; flags change rarely."""

    def __init__(self, max_octets: int = MAX_RENDERED_OCTETS) -> None:
        self.max_octets = max_octets
        self._entries: OrderedDict[
            MailboxId, tuple[tuple[int, int], bytes, list[int], tuple[str, ...], bytes]
        ] = OrderedDict()
        self._held = 0

    def lookup(
        self, mailbox_id: MailboxId, version: tuple[int, int], form: bytes, uids: list[int]
    ) -> tuple[tuple[str, ...], bytes] | None:
        """(the distinct flag texts shown, the response) if kept for exactly these."""
        entry = self._entries.get(mailbox_id)
        if entry is None or entry[0] != version or entry[1] != form:
            return None
        if entry[2] is not uids and entry[2] != uids:
            return None
        self._entries.move_to_end(mailbox_id)
        return entry[3], entry[4]

    def put(
        self,
        mailbox_id: MailboxId,
        version: tuple[int, int],
        form: bytes,
        uids: list[int],
        texts: tuple[str, ...],
        data: bytes,
    ) -> None:
        old = self._entries.pop(mailbox_id, None)
        if old is not None:
            self._held -= _octets(old[2], old[4])
        size = _octets(uids, data)
        if size > self.max_octets:
            return
        self._entries[mailbox_id] = (version, form, uids, texts, data)
        self._held += size
        while self._held > self.max_octets:
            _, oldest = self._entries.popitem(last=False)
            self._held -= _octets(oldest[2], oldest[4])


def _octets(uids: list[int], data: bytes) -> int:
    """What an entry holds: the response, and the UID list (a pointer and an int each)."""
    return len(data) + 36 * len(uids)


# One of each per process, shared by the sessions of every account (the keys name the
# account, or a mailbox the session has selected in its own account).
UIDS = UidCache()
FLAGS = FlagsCache()
RENDERED = RenderedFlags()
