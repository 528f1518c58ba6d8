"""TEXT and BODY searches: found on the trigram indexes whatever the statistics say, and the
same answer when a common word is read message by message instead."""

from __future__ import annotations

import pytest

from postroom import store
from postroom.store import search as s
from tests.support import Tenant

Box = tuple[Tenant, store.MailboxId, list[int]]


def mail(subject: str, body: str) -> bytes:
    return (
        f"From: Ann <ann@example.test>\r\nTo: bob@example.test\r\nSubject: {subject}\r\n"
        f"Date: Mon, 02 Nov 2026 10:00:00 +0000\r\n\r\n{body}\r\n"
    ).encode()


@pytest.fixture
async def box(tenant: Tenant) -> Box:
    account = await tenant.account("alice")
    inbox = await store.get_mailbox(tenant.conn, account.id, "INBOX")
    assert inbox is not None
    uids = []
    for subject, body in (
        ("xylophone notes", "common words only"),
        ("plain", "a xylophonically rare body word"),
        ("other", "common words again"),
    ):
        uids.append((await store.append_message(tenant.conn, inbox.id, mail(subject, body))).uid)
    return tenant, inbox.id, uids


async def test_the_hits_query_uses_the_trigram_index_even_with_fresh_statistics(
    box: Box,
) -> None:
    tenant, _mailbox, _uids = box
    conn = tenant.conn
    await conn.execute("ANALYZE blobs")
    async with conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        cur = await conn.execute(
            "EXPLAIN SELECT id FROM blobs WHERE search_text ILIKE '%xylophonically%'"
        )
        plan = "\n".join(r["QUERY PLAN"] for r in await cur.fetchall())
    assert "blobs_search_trgm" in plan


@pytest.mark.parametrize("cap", [None, 0], ids=["index", "message-by-message"])
@pytest.mark.parametrize(
    ("criterion", "expected"),
    [
        (s.Text("xylophonically", "text"), [1]),
        (s.Text("xylophon", "text"), [0, 1]),
        (s.Text("xylophon", "body"), [1]),  # the first has it in its Subject only
        (s.Not(s.Text("xylophon", "body")), [0, 2]),
        (s.Or((s.Text("again", "body"), s.Text("rare body", "body"))), [1, 2]),
    ],
    ids=["rare", "text", "body", "not-body", "or"],
)
async def test_both_ways_give_the_same_messages(
    box: Box,
    monkeypatch: pytest.MonkeyPatch,
    cap: int | None,
    criterion: s.Criterion,
    expected: list[int],
) -> None:
    tenant, mailbox, uids = box
    if cap is not None:
        # Every term counts as common: nothing is looked up on the index first.
        monkeypatch.setattr(s, "MIN_INDEX_HITS", cap)
        monkeypatch.setattr(s, "INDEX_HITS_SHARE", 10**9)
    got = await s.search_uids(tenant.conn, mailbox, criterion)
    assert [uids.index(u) for u in got] == expected
