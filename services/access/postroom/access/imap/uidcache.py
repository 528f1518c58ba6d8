"""The UID lists of recently selected mailboxes, shared by the sessions of the process.

SELECT needs a mailbox's every UID (the sequence-number map, RFC 3501 §2.3.1.2); most
SELECTs are of a mailbox that has not changed since the last one (a client re-selecting
INBOX, another session of the same account). A list is kept with the mailbox id,
UIDVALIDITY and HIGHESTMODSEQ it was read at: every change of a mailbox's messages raises
HIGHESTMODSEQ and a new incarnation of a name changes UIDVALIDITY, so while the three are
the same the list is too, and the store sends it again only when they are not
(`store.mailboxes.select`, which checks them in the statement that reads the mailbox).
"""

from __future__ import annotations

from array import array
from collections import OrderedDict

from postroom.store.types import AccountId, MailboxId

# UIDs kept in all, 8 octets each: 2,000,000 is 16 MiB.
MAX_UIDS = 2_000_000

Key = tuple[AccountId, str]  # the account and the mailbox name as the client gave it


class UidCache:
    def __init__(self, max_uids: int = MAX_UIDS) -> None:
        self.max_uids = max_uids
        self._lists: OrderedDict[Key, tuple[MailboxId, int, int, array[int]]] = OrderedDict()
        self._held = 0

    def lookup(self, key: Key) -> tuple[tuple[MailboxId, int, int], array[int]] | None:
        """((mailbox id, UIDVALIDITY, HIGHESTMODSEQ), UIDs) kept under the key, if any; the
        caller copies the UIDs (``list(uids)``) once the store has said they still hold."""
        entry = self._lists.get(key)
        if entry is None:
            return None
        self._lists.move_to_end(key)
        return entry[:3], entry[3]

    def put(self, key: Key, known: tuple[MailboxId, int, int], uids: list[int]) -> None:
        self.drop(key)
        if len(uids) > self.max_uids:
            return
        self._lists[key] = (*known, array("q", uids))
        self._held += len(uids)
        while self._held > self.max_uids:
            _, oldest = self._lists.popitem(last=False)
            self._held -= len(oldest[3])

    def drop(self, key: Key) -> None:
        entry = self._lists.pop(key, None)
        if entry is not None:
            self._held -= len(entry[3])


# One per process, shared by the sessions of every account (the key names the account).
UIDS = UidCache()
