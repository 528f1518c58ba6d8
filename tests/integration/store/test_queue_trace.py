"""Finding queue entries for the message trace: Message-ID, sender, recipient, time, account."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest

from postroom.db import Conn
from postroom.errors import InvalidInput
from postroom.store import queue
from postroom.store.types import Arrival, QueueId
from tests.support import Tenant

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


async def _spool(
    conn: Conn, sender: str, rcpt: str, mid: str, at: datetime, **kw: object
) -> QueueId:
    spooled = await queue.spool(
        conn,
        f"Message-ID: <{mid}>\r\n\r\nx\r\n".encode(),
        reverse_path=sender,
        recipients=[rcpt],
        arrival=Arrival(source="smtp", **kw),
        now=at,  # type: ignore[arg-type]
    )
    return spooled.message.id


@pytest.fixture
def tag() -> str:
    return secrets.token_hex(5)


async def test_find_by_message_id(conn: Conn, tag: str) -> None:
    qid = await _spool(conn, "a@x.test", "b@y.test", f"{tag}@x.test", NOW)
    for value in (f"{tag}@x.test", f"<{tag}@x.test>", f" <{tag}@x.test> "):
        found = await queue.find_queue_entries(conn, message_id=value)
        assert [e.message.id for e in found] == [qid]


async def test_find_by_sender_and_recipient_substrings(conn: Conn, tag: str) -> None:
    qid = await _spool(conn, f"{tag}@X.test", f"rcpt-{tag}@y.test", "m@x", NOW)
    assert [e.message.id for e in await queue.find_queue_entries(conn, sender=tag.upper())] == [qid]
    found = await queue.find_queue_entries(conn, recipient=f"rcpt-{tag}")
    assert [e.message.id for e in found] == [qid]
    assert found[0].deliveries[0].recipient == f"rcpt-{tag}@y.test"


async def test_like_wildcards_in_filters_are_literal(conn: Conn, tag: str) -> None:
    await _spool(conn, f"{tag}@x.test", "b@y.test", "m@x", NOW)
    assert await queue.find_queue_entries(conn, sender=f"{tag}%") == []
    assert await queue.find_queue_entries(conn, sender=f"{tag[:-1]}_") == []


async def test_find_by_time_window_newest_first(conn: Conn, tag: str) -> None:
    early = await _spool(conn, f"{tag}@x.test", "b@y.test", "m@x", NOW)
    late = await _spool(conn, f"{tag}@x.test", "b@y.test", "m@x", NOW + timedelta(hours=2))
    found = await queue.find_queue_entries(conn, sender=tag, since=NOW)
    assert [e.message.id for e in found] == [late, early]
    found = await queue.find_queue_entries(conn, sender=tag, until=NOW + timedelta(hours=1))
    assert [e.message.id for e in found] == [early]


async def test_find_by_submitting_account(conn: Conn, tenant: Tenant, tag: str) -> None:
    alice = await tenant.account("alice")
    mine = await _spool(conn, f"{tag}@x.test", "b@y.test", "m@x", NOW, auth_account_id=alice.id)
    await _spool(conn, f"{tag}@x.test", "b@y.test", "m@x", NOW)
    found = await queue.find_queue_entries(conn, sender=tag, account_id=alice.id)
    assert [e.message.id for e in found] == [mine]


@pytest.mark.parametrize("limit", [0, queue.MAX_TRACE_RESULTS + 1], ids=["zero", "too-many"])
async def test_limit_is_bounded(conn: Conn, limit: int) -> None:
    with pytest.raises(InvalidInput):
        await queue.find_queue_entries(conn, limit=limit)


async def test_empty_message_id_is_refused(conn: Conn) -> None:
    with pytest.raises(InvalidInput, match="the Message-ID is empty"):
        await queue.find_queue_entries(conn, message_id="<>")


async def test_nul_in_a_filter_is_refused(conn: Conn) -> None:
    with pytest.raises(InvalidInput, match="must not contain NUL"):
        await queue.find_queue_entries(conn, sender="a\x00b")
