"""IDLE over real sockets with imapclient: updates pending when IDLE starts (RFC 2177 §3)."""

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


def idle_with_a_change_pending(endpoint: ImapEndpoint, account: Account) -> dict[str, Any]:
    watcher = imapclient.IMAPClient(endpoint.host, endpoint.port, ssl=False, timeout=30)
    changer = imapclient.IMAPClient(endpoint.host, endpoint.port, ssl=False, timeout=30)
    try:
        for client in (watcher, changer):
            client.login(account.address, "pw-1")
            client.select_folder("INBOX")
        # imapclient asks CAPABILITY before its first IDLE: asked now, it does not carry
        # the change; the watcher has not heard of it when it enters IDLE.
        assert watcher.has_capability("IDLE")
        changer.add_flags([1], [imapclient.FLAGGED], silent=True)
        watcher.idle()  # raises on any response before the continuation
        updates = watcher.idle_check(timeout=5)
        # What the client read with the continuation comes with the end of IDLE.
        _text, rest = watcher.idle_done()
        return {"updates": updates + rest, "after": watcher.fetch([1], ["FLAGS"])}
    finally:
        watcher.logout()
        changer.logout()


async def test_imapclient_idles_with_an_update_pending(
    imap: ImapEndpoint, conn: Conn, alice: Account
) -> None:
    box = await store.get_mailbox(conn, alice.id, "INBOX")
    assert box is not None
    await store.append_message(conn, box.id, message("one"))
    out = await in_thread(idle_with_a_change_pending, imap, alice)
    assert out["updates"] == [(1, b"FETCH", (b"UID", 1, b"FLAGS", (b"\\Flagged", b"\\Recent")))]
    assert out["after"] == {1: {b"SEQ": 1, b"FLAGS": (b"\\Flagged", b"\\Recent")}}
