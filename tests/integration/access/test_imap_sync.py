"""CONDSTORE and QRESYNC (RFC 7162) with imapclient: a client that reconnects asks what
changed since the HIGHESTMODSEQ it kept and learns exactly the flag changes and the UIDs
that vanished."""

from __future__ import annotations

from typing import Any

import imapclient
import pytest

from postroom import store
from postroom.db import Conn
from postroom.store.types import Account
from tests.integration.access.imap_support import ImapEndpoint, message
from tests.integration.access.pop3_support import in_thread
from tests.support import Tenant


@pytest.fixture
async def alice(tenant: Tenant) -> Account:
    return await tenant.account("alice", "pw-1")


def client(endpoint: ImapEndpoint, account: Account) -> imapclient.IMAPClient:
    c = imapclient.IMAPClient(endpoint.host, endpoint.port, ssl=False, timeout=30)
    c.login(account.address, "pw-1")
    return c


def resync_after_reconnect(endpoint: ImapEndpoint, account: Account) -> dict[str, Any]:
    first = client(endpoint, account)
    assert first.has_capability("CONDSTORE")
    assert first.has_capability("QRESYNC")
    first.enable("QRESYNC")
    selected = first.select_folder("INBOX")
    known = selected[b"HIGHESTMODSEQ"]
    first.logout()
    # While the client is away, another changes a flag and expunges a message.
    other = client(endpoint, account)
    other.select_folder("INBOX")
    other.add_flags([2], [imapclient.FLAGGED])
    other.delete_messages([3])
    other.expunge()
    other.logout()
    again = client(endpoint, account)
    enabled = again.enable("QRESYNC")
    after = again.select_folder("INBOX")
    changed = again.fetch([1, 2, 3], ["FLAGS"], modifiers=[f"CHANGEDSINCE {known}", "VANISHED"])
    vanished = again._imap.untagged_responses.get("VANISHED")
    again.logout()
    return {
        "enabled": enabled,
        "known": known,
        "after": after[b"HIGHESTMODSEQ"],
        "changed": changed,
        "vanished": vanished,
    }


async def test_a_reconnecting_client_sees_exactly_the_flag_changes_and_vanished_uids(
    imap: ImapEndpoint, conn: Conn, alice: Account
) -> None:
    box = await store.get_mailbox(conn, alice.id, "INBOX")
    assert box is not None
    for subject in ("one", "two", "three"):
        await store.append_message(conn, box.id, message(subject))
    out = await in_thread(resync_after_reconnect, imap, alice)
    assert out["enabled"] == [b"QRESYNC"]
    assert out["after"] > out["known"]
    assert list(out["changed"]) == [2]
    assert out["changed"][2][b"FLAGS"] == (b"\\Flagged",)
    (modseq,) = out["changed"][2][b"MODSEQ"]
    assert out["known"] < modseq <= out["after"]
    assert out["vanished"] == [b"(EARLIER) 3"]
