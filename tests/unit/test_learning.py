"""Which moves teach the spam filter: into Junk is spam, out of Junk is ham, Trash says nothing."""

from __future__ import annotations

import pytest

from postroom.learning import verdict
from postroom.store.types import AccountId, Mailbox, MailboxId


def box(special_use: str | None, name: str = "x") -> Mailbox:
    return Mailbox(
        id=MailboxId(1), account_id=AccountId(1), name=name, uid_validity=1, uid_next=1,
        highest_modseq=1, first_recent_uid=1,
        special_use=special_use, subscribed=True, selectable=True,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        (None, "\\Junk", True),
        ("\\Sent", "\\Junk", True),
        ("\\Junk", None, False),
        ("\\Junk", "\\Archive", False),
        ("\\Junk", "\\Trash", None),
        ("\\Junk", "\\Junk", None),
        (None, "\\Archive", None),
        ("\\Trash", None, None),
    ],
    ids=[
        "inbox-to-junk", "sent-to-junk", "junk-to-inbox", "junk-to-archive", "junk-to-trash",
        "junk-to-junk", "inbox-to-archive", "trash-to-inbox",
    ],
)  # fmt: skip
def test_verdict(source: str | None, target: str | None, expected: bool | None) -> None:
    assert verdict(box(source), box(target)) is expected
