"""Drafts saved by the web mail are messages of the Drafts folder: an IMAP client (imaplib on
a real socket) sees the same draft, flagged \\Draft, and a new save replaces it."""

from __future__ import annotations

import imaplib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.access.imap_support import ImapEndpoint, running_imap
from tests.integration.access.pop3_support import in_thread
from tests.integration.api.conftest import User


@pytest.fixture
async def imap(database_url: str, tmp_path: Path) -> AsyncIterator[ImapEndpoint]:
    async with running_imap(database_url, tmp_path) as endpoint:
        yield endpoint


def drafts_over_imap(endpoint: ImapEndpoint, address: str, password: str) -> list[bytes]:
    client = imaplib.IMAP4(endpoint.host, endpoint.port, timeout=30)
    try:
        client.login(address, password)
        client.select("Drafts", readonly=True)
        _typ, data = client.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT TO)])")
        client.logout()
        return [part for item in data if isinstance(item, tuple) for part in item]
    except BaseException:
        client.shutdown()
        raise


async def test_a_saved_draft_is_the_one_imap_sees(imap: ImapEndpoint, alice: User) -> None:
    form = {"from": alice.account.address, "to": "bob@far.test, half", "subject": "Plan"}
    first = await alice.client.post("/api/v1/drafts", data={**form, "text": "v1"})
    assert first.status_code == 201, first.text
    second = await alice.client.post(
        "/api/v1/drafts",
        data={**form, "subject": "Plan, second try", "replace_uid": str(first.json()["uid"])},
    )
    assert second.status_code == 201, second.text
    seen = await in_thread(drafts_over_imap, imap, alice.account.address, alice.password)
    assert len(seen) == 2  # one message: its FETCH line and its header fields
    assert b"\\Draft" in seen[0]
    assert b"Subject: Plan, second try" in seen[1]
    assert b"To: bob@far.test, half" in seen[1]
