"""Junk that learns: a message a user files into Junk is taught to the spam filter as spam,
one taken out of Junk as ham, through the queue, never holding up the user's command."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import lru_cache

import structlog

from postroom.config import Settings
from postroom.queue import TASK_LEARN, AsyncPublisher
from postroom.runtime import redis_url
from postroom.store.types import Mailbox

JUNK = "\\Junk"
TRASH = "\\Trash"

log = structlog.get_logger("postroom.learning")
_pending: set[asyncio.Task[bool]] = set()


def verdict(source: Mailbox, target: Mailbox) -> bool | None:
    """True: the user says spam (into Junk); False: not spam (out of Junk, other than to
    Trash, which says nothing); None: nothing to learn."""
    if target.special_use == JUNK and source.special_use != JUNK:
        return True
    if source.special_use == JUNK and target.special_use not in (JUNK, TRASH):
        return False
    return None


@lru_cache(maxsize=4)
def _publisher(broker_url: str) -> AsyncPublisher:
    return AsyncPublisher(broker_url)


def after_transfer(
    settings: Settings, source: Mailbox, target: Mailbox, pairs: Sequence[tuple[int, int]]
) -> None:
    """Call after a move or copy (``pairs``: source and new UIDs): queues the lesson, if any,
    in the background and returns at once."""
    spam = verdict(source, target)
    if spam is None or not pairs or not settings.rspamd_controller_url:
        return
    uids = [new for _, new in pairs]
    args = [int(target.id), uids, spam]
    task = asyncio.get_running_loop().create_task(
        _publisher(redis_url(settings)).send(TASK_LEARN, args)
    )
    _pending.add(task)
    task.add_done_callback(_pending.discard)
    log.info("learning.queued", mailbox_id=target.id, messages=len(uids), spam=spam)
