"""smtp-in and full mailboxes: 452 4.2.2 at RCPT, 552 5.2.2 at the end of DATA or for SIZE=."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from postroom import store
from tests.integration.smtp_in.transcript import ServerThread, Transcript
from tests.support import Tenant


@pytest.fixture
def t(smtp: ServerThread) -> Iterator[Transcript]:
    transcript = Transcript(smtp.inbound).greeting()
    transcript.send("EHLO client.example").reply()
    yield transcript
    transcript.close()


async def filled(tenant: Tenant, local: str, quota_bytes: int, used: int) -> str:
    """An account with ``used`` of its ``quota_bytes`` taken; its address."""
    account = await tenant.account(local, quota_bytes=quota_bytes)
    inbox = await store.get_mailbox(tenant.conn, account.id, "INBOX")
    assert inbox is not None
    if used:
        head = b"Subject: filler\r\n\r\n"
        await store.append_message(tenant.conn, inbox.id, head + b"x" * (used - len(head)))
    return account.address


def message(size: int) -> bytes:
    head = b"Subject: quota\r\n\r\n"
    return head + (b"y" * 78 + b"\r\n") * ((size - len(head)) // 80) + b"\r\n.\r\n"


async def test_rcpt_to_a_full_mailbox_is_452_4_2_2(t: Transcript, tenant: Tenant) -> None:
    full = await filled(tenant, "full", 1000, 1000)
    t.send("MAIL FROM:<a@b.example>").expect("250")
    t.send(f"RCPT TO:<{full}>").expect_exactly("452 4.2.2 Mailbox full, try again later")


async def test_rcpt_with_a_declared_size_that_cannot_fit_is_552_5_2_2(
    t: Transcript, tenant: Tenant
) -> None:
    nearly = await filled(tenant, "nearly", 5000, 4000)
    t.send("MAIL FROM:<a@b.example> SIZE=2000").expect("250")
    t.send(f"RCPT TO:<{nearly}>").expect_exactly("552 5.2.2 Mailbox full: the message does not fit")


async def test_a_message_that_pushes_the_mailbox_over_is_552_at_the_end_of_data(
    t: Transcript, tenant: Tenant
) -> None:
    nearly = await filled(tenant, "nearly", 5000, 4000)
    t.send("MAIL FROM:<a@b.example>").expect("250")
    t.send(f"RCPT TO:<{nearly}>").expect("250")
    t.send("DATA").expect("354")
    t.send(message(2000)).expect_exactly("552 5.2.2 Mailbox full: the message does not fit")
    t.send("NOOP").expect_exactly("250 2.0.0 OK")


async def test_a_message_that_fits_one_recipient_is_accepted_for_all(
    t: Transcript, tenant: Tenant
) -> None:
    nearly = await filled(tenant, "nearly", 5000, 4000)
    roomy = await filled(tenant, "roomy", 100_000, 0)
    t.send("MAIL FROM:<a@b.example>").expect("250")
    t.send(f"RCPT TO:<{nearly}>").expect("250")
    t.send(f"RCPT TO:<{roomy}>").expect("250")
    t.send("DATA").expect("354")
    t.send(message(2000)).expect("250 2.0.0 OK queued as")


async def test_a_mailbox_without_a_quota_takes_anything(t: Transcript, tenant: Tenant) -> None:
    account = await tenant.account("free")
    t.send("MAIL FROM:<a@b.example> SIZE=60000").expect("250")
    t.send(f"RCPT TO:<{account.address}>").expect("250")
