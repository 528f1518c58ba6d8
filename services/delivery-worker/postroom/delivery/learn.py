"""Teach rspamd what users filed into Junk (spam) or took out of it (ham): the learn task."""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from prometheus_client import Counter

from postroom import store
from postroom.delivery.courier import Courier
from postroom.rspamd import Rspamd, RspamdError
from postroom.store.types import MailboxId

log = structlog.get_logger("postroom.delivery.learn")

MAX_PER_TASK = 100  # a move of many messages teaches the first hundred
LEARNED = Counter(
    "postroom_spam_learned",
    "Messages taught to rspamd (spam or ham), by outcome",
    ["kind", "outcome"],
)


async def learn(courier: Courier, mailbox_id: int, uids: Sequence[int], spam: bool) -> int:
    """Send these messages (as they are now in that folder) to rspamd's learn endpoint;
    the number it learnt. Messages gone since are skipped; rspamd being away is logged."""
    settings = courier.settings
    kind = "spam" if spam else "ham"
    if not settings.rspamd_controller_url:
        return 0
    async with courier.pool.connection() as conn:
        messages = await store.fetch_raw_many(
            conn, MailboxId(mailbox_id), list(uids)[:MAX_PER_TASK]
        )
    client = Rspamd(
        settings.rspamd_url or settings.rspamd_controller_url,
        controller_url=settings.rspamd_controller_url,
        password=settings.rspamd_password,
        timeout=settings.rspamd_timeout,
    )
    learned = 0
    try:
        for uid, raw in messages.items():
            try:
                new = await client.learn(raw, spam=spam)
            except RspamdError as exc:
                LEARNED.labels(kind, "failed").inc()
                log.warning("learn.failed", mailbox_id=mailbox_id, uid=uid, error=str(exc)[:200])
                continue
            LEARNED.labels(kind, "learned" if new else "known").inc()
            learned += new
    finally:
        await client.close()
    log.info("learn.done", kind=kind, mailbox_id=mailbox_id, learned=learned, asked=len(uids))
    return learned
