"""Search (RFC 3501 §6.4.4 semantics) and listing, evaluated in Postgres."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from postroom import store
from postroom.db import connect
from postroom.errors import InvalidInput, LimitExceeded, QueryTimeout
from postroom.store import search as s
from tests.support import Tenant

Box = tuple[Tenant, store.MailboxId, list[int]]


def mail(
    subject: str,
    body: str,
    *,
    frm: str = "Ann <ann@example.test>",
    sent: str = "Mon, 02 Nov 2026 10:00:00 +0000",
    extra: str = "",
) -> bytes:
    return (
        f"From: {frm}\r\nTo: Bob <bob@example.test>\r\nSubject: {subject}\r\nDate: {sent}\r\n"
        f"{extra}Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


@pytest.fixture
async def box(tenant: Tenant) -> Box:
    account = await tenant.account("alice")
    inbox = await store.get_mailbox(tenant.conn, account.id, "INBOX")
    assert inbox is not None
    items = [
        (mail("Quarterly report", "numbers attached, zebra", extra="X-Priority: 1\r\n"),
         ["\\Seen"], datetime(2026, 11, 2, 12, tzinfo=UTC)),
        (mail("=?utf-8?q?Gr=C3=BC=C3=9Fe?=", "hello from Zürich", frm="carl@other.test",
              sent="Tue, 10 Nov 2026 09:00:00 +0000"),
         ["$Work"], datetime(2026, 11, 10, 12, tzinfo=UTC)),
        (mail("lunch", "see you at noon " + "x" * 5000), ["\\Flagged", "\\Seen"],
         datetime(2026, 11, 20, 12, tzinfo=UTC)),
    ]  # fmt: skip
    uids = []
    for raw, flags, when in items:
        m = await store.append_message(tenant.conn, inbox.id, raw, flags=flags, internal_date=when)
        uids.append(m.uid)
    return tenant, inbox.id, uids


async def found(box: Box, c: s.Criterion) -> list[int]:
    tenant, mailbox, uids = box
    got = await s.search_uids(tenant.conn, mailbox, c)
    return [uids.index(u) for u in got]


async def test_body_substring_is_case_insensitive(box: Box) -> None:
    assert await found(box, s.Text("ZEBRA", "body")) == [0]


async def test_text_also_matches_headers(box: Box) -> None:
    assert await found(box, s.Text("carl@other", "text")) == [1]
    assert await found(box, s.Text("x-priority", "body")) == []


async def test_encoded_subject_is_searched_decoded(box: Box) -> None:
    assert await found(box, s.Header("Subject", "grüße")) == [1]


async def test_non_ascii_body_matches(box: Box) -> None:
    assert await found(box, s.Text("zürich", "body")) == [1]


async def test_from_header_substring(box: Box) -> None:
    assert await found(box, s.Header("FROM", "ann@")) == [0, 2]


async def test_any_header_field_by_name(box: Box) -> None:
    assert await found(box, s.Header("X-Priority", "1")) == [0]
    assert await found(box, s.Header("X-Priority", "")) == [0]


async def test_flags_and_keywords(box: Box) -> None:
    assert await found(box, s.Flag("\\Seen")) == [0, 2]
    assert await found(box, s.Flag("\\Seen", present=False)) == [1]
    assert await found(box, s.Flag("$Work")) == [1]


async def test_or_and_not(box: Box) -> None:
    c = s.Or((s.Flag("\\Flagged"), s.Text("zebra", "body")))
    assert await found(box, c) == [0, 2]
    assert await found(box, s.Not(c)) == [1]
    assert await found(box, s.And((c, s.Flag("\\Seen")))) == [0, 2]


async def test_internal_date_before_on_since(box: Box) -> None:
    assert await found(box, s.InternalDate("before", date(2026, 11, 10))) == [0]
    assert await found(box, s.InternalDate("on", date(2026, 11, 10))) == [1]
    assert await found(box, s.InternalDate("since", date(2026, 11, 10))) == [1, 2]


async def test_sent_date_uses_the_date_header(box: Box) -> None:
    assert await found(box, s.SentDate("on", date(2026, 11, 2))) == [0, 2]


async def test_size_larger_and_smaller(box: Box) -> None:
    assert await found(box, s.Size("larger", 4000)) == [2]
    assert await found(box, s.Size("smaller", 4000)) == [0, 1]


async def test_uid_ranges(box: Box) -> None:
    _, _, uids = box
    assert await found(box, s.uid_ranges([uids[0], uids[2]])) == [0, 2]


async def test_wildcards_in_the_search_string_are_literal(box: Box) -> None:
    assert await found(box, s.Text("%%%", "body")) == []
    assert await found(box, s.Text("___", "body")) == []


@pytest.mark.parametrize("term", ["", "a", "ze"], ids=["empty", "one", "two"])
async def test_body_terms_too_short_for_the_index_are_refused(box: Box, term: str) -> None:
    with pytest.raises(LimitExceeded, match="at least 3 characters"):
        await found(box, s.Text(term, "body"))


async def test_short_terms_on_small_columns_are_allowed(box: Box) -> None:
    assert await found(box, s.Header("Subject", "lu")) == [2]
    assert await found(box, s.Header("X-Priority", "1")) == [0]


async def test_a_search_holds_at_most_twenty_text_terms(box: Box) -> None:
    twenty = s.And(tuple(s.Text(f"zebra{i}") for i in range(s.MAX_TEXT_TERMS)))
    assert await found(box, twenty) == []
    with pytest.raises(LimitExceeded, match="at most 20 text terms"):
        await found(box, s.Or((*twenty.items, s.Header("Subject", "x"))))


async def test_a_search_past_the_statement_timeout_raises_query_timeout(
    box: Box, database_url: str
) -> None:
    tenant, mailbox, _ = box
    # Another session holds the blobs table; the search waits on it until Postgres cancels it
    # (a lock wait counts towards statement_timeout, so the test needs no slow query).
    holder = await connect(database_url)
    try:
        await holder.execute("LOCK TABLE blobs IN ACCESS EXCLUSIVE MODE")
        await tenant.conn.execute("SET statement_timeout = 200")
        try:
            with pytest.raises(QueryTimeout):
                await s.search_uids(tenant.conn, mailbox, s.Text("zebra"))
            with pytest.raises(QueryTimeout):
                await s.list_summaries(tenant.conn, mailbox, criteria=s.Text("zebra"))
        finally:
            await holder.rollback()
        assert await found(box, s.Text("zebra")) == [0]
    finally:
        await tenant.conn.execute("RESET statement_timeout")
        await holder.close()


async def test_list_summaries_sorts_and_pages(box: Box) -> None:
    tenant, mailbox, uids = box
    page = await s.list_summaries(tenant.conn, mailbox, sort="size", descending=True, limit=2)
    assert page.total == 3
    assert len(page.items) == 2
    assert page.items[0].uid == uids[2]
    by_subject = await s.list_summaries(tenant.conn, mailbox, sort="subject", descending=False)
    assert [m.subject for m in by_subject.items] == ["Grüße", "lunch", "Quarterly report"]
    assert by_subject.items[0].from_text == "carl@other.test"


async def test_list_summaries_filters(box: Box) -> None:
    tenant, mailbox, uids = box
    page = await s.list_summaries(tenant.conn, mailbox, criteria=s.Flag("\\Seen", False))
    assert (page.total, [m.uid for m in page.items]) == (1, [uids[1]])
    empty = await s.list_summaries(tenant.conn, mailbox, criteria=s.Text("nothing-like-this"))
    assert (empty.total, empty.items) == (0, ())


async def test_bad_sort_and_page_are_refused(box: Box) -> None:
    tenant, mailbox, _ = box
    with pytest.raises(InvalidInput):
        await s.list_summaries(tenant.conn, mailbox, sort="color")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        await s.list_summaries(tenant.conn, mailbox, limit=0)


async def test_not_text_matches_messages_without_the_text(box: Box) -> None:
    assert await found(box, s.Not(s.Text("zebra"))) == [1, 2]
    assert await found(box, s.Not(s.Header("X-Priority", ""))) == [1, 2]


async def test_text_search_is_served_by_the_trigram_index(box: Box) -> None:
    tenant, _, _ = box
    cur = await tenant.conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
    if await cur.fetchone() is None:
        pytest.skip("pg_trgm is not installed in this Postgres")
    compiler = s._Compiler()
    where = compiler.compile(s.Text("zebra"))
    # The condition on blobs alone, with sequential scans discouraged on these tiny tables:
    # the index can only be chosen if the compiled expression is one it serves.
    await tenant.conn.execute("SET enable_seqscan = off")
    try:
        cur = await tenant.conn.execute(
            f"EXPLAIN SELECT b.id FROM blobs b WHERE {where}", compiler.params
        )
        plan = "\n".join(row["QUERY PLAN"] for row in await cur.fetchall())
    finally:
        await tenant.conn.execute("RESET enable_seqscan")
    assert "blobs_search_trgm" in plan
