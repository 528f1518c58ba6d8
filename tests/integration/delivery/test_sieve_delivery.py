"""Local delivery runs the recipient's Sieve script: file, flag, discard, forward, refuse, reply."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from postroom import srs, store
from postroom.store import queue as queue_store
from postroom.store import sieve as sieve_store
from postroom.store.types import Account
from tests.integration.delivery.harness import SRS_SECRET, message, settings_for
from tests.support import Tenant

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


async def _activate(tenant: Tenant, account: Account, source: str) -> None:
    await sieve_store.put_script(
        tenant.conn,
        account.id,
        "main",
        source,
        max_size=65536,
        max_scripts=16,
        activate=True,
        now=NOW,
    )


async def _folder(h: Any, account: Account, name: str) -> list[tuple[bytes, frozenset[str]]]:
    box = await store.get_mailbox(h.conn, account.id, name)
    if box is None:
        return []
    return [
        (await store.fetch_raw(h.conn, box.id, m.uid), frozenset(m.flags))
        for m in await store.list_messages(h.conn, box.id)
    ]


async def _trace(h: Any, spooled: Any) -> tuple[str, str]:
    """The delivery's state and the text its attempt recorded (what a message trace shows)."""
    entry = await queue_store.get_queue_entry(h.conn, spooled.message.id, with_attempts=True)
    [d] = entry.deliveries
    [attempt] = entry.attempts
    return d.state, attempt.reply_text or ""


async def test_fileinto_with_flags_files_into_the_folder(tenant: Tenant, make_harness: Any) -> None:
    bob = await tenant.account("bob")
    await _activate(
        tenant,
        bob,
        'require ["fileinto", "imap4flags"];'
        ' if header :contains "subject" "greetings" { fileinto :flags "\\\\Flagged" "Archive"; }',
    )
    h = await make_harness(settings_for())
    spooled = await h.spool(message(), "a@example.test", [tenant.address("bob")])
    await h.deliver(spooled)
    assert await h.inbox(tenant.address("bob")) == []
    [(raw, flags)] = await _folder(h, bob, "Archive")
    assert raw.startswith(b"Return-Path: <a@example.test>\r\n")
    assert "\\Flagged" in flags
    assert await _trace(h, spooled) == ("delivered", "2.0.0 OK; sieve: fileinto Archive")


async def test_fileinto_a_missing_folder_keeps_in_inbox(tenant: Tenant, make_harness: Any) -> None:
    bob = await tenant.account("bob")
    await _activate(tenant, bob, 'require "fileinto"; fileinto "Nowhere";')
    h = await make_harness(settings_for())
    spooled = await h.spool(message(), "a@example.test", [tenant.address("bob")])
    await h.deliver(spooled)
    assert len(await h.inbox(tenant.address("bob"))) == 1
    assert await _trace(h, spooled) == ("delivered", "2.0.0 OK; sieve: no mailbox 'Nowhere', kept")


async def test_fileinto_create_makes_the_folder(tenant: Tenant, make_harness: Any) -> None:
    bob = await tenant.account("bob")
    await _activate(tenant, bob, 'require ["fileinto", "mailbox"]; fileinto :create "Lists/dev";')
    h = await make_harness(settings_for())
    await h.deliver(await h.spool(message(), "a@example.test", [tenant.address("bob")]))
    assert len(await _folder(h, bob, "Lists/dev")) == 1


async def test_discard_stores_nothing(tenant: Tenant, make_harness: Any) -> None:
    bob = await tenant.account("bob")
    await _activate(tenant, bob, "discard;")
    h = await make_harness(settings_for())
    spooled = await h.spool(message(), "a@example.test", [tenant.address("bob")])
    await h.deliver(spooled)
    assert await h.inbox(tenant.address("bob")) == []
    assert await _trace(h, spooled) == ("delivered", "2.0.0 OK; sieve: discarded")


async def test_a_failing_script_keeps_and_says_why(tenant: Tenant, make_harness: Any) -> None:
    bob = await tenant.account("bob")
    await _activate(tenant, bob, 'redirect "x@remote.test"; discard;')
    h = await make_harness(settings_for(POSTROOM_SIEVE_MAX_REDIRECTS="0"))
    spooled = await h.spool(message(), "a@example.test", [tenant.address("bob")])
    await h.deliver(spooled)
    assert len(await h.inbox(tenant.address("bob"))) == 1
    assert await _trace(h, spooled) == (
        "delivered",
        "2.0.0 OK; sieve error, kept: more than 0 redirects",
    )


async def test_redirect_goes_through_the_queue(
    tenant: Tenant, make_harness: Any, sink: Any
) -> None:
    bob = await tenant.account("bob")
    await _activate(tenant, bob, 'redirect "far@remote.test";')
    h = await make_harness(settings_for(sink))
    await h.deliver(await h.spool(message(), "a@example.test", [tenant.address("bob")]))
    assert await h.inbox(tenant.address("bob")) == []
    [received] = sink.handler.received
    assert received.rcpt_tos == ["far@remote.test"]
    # The redirect leaves with an SRS sender of the account's domain (SPF passes for us).
    assert received.mail_from.startswith("SRS0=")
    assert received.mail_from.endswith(f"=example.test=a@{tenant.domain.name}")
    assert srs.reverse(received.mail_from, SRS_SECRET.encode(), 21) == "a@example.test"
    assert received.content.startswith(f"Delivered-To: {bob.address}\r\n".encode())


async def test_redirect_loop_back_is_kept(tenant: Tenant, make_harness: Any) -> None:
    bob = await tenant.account("bob")
    carol = await tenant.account("carol")
    await _activate(tenant, bob, f'redirect "{carol.address}";')
    await _activate(tenant, carol, f'redirect "{bob.address}";')
    h = await make_harness(settings_for())
    await h.deliver(await h.spool(message(), "a@example.test", [bob.address]))
    # bob -> carol -> bob: the copy that comes back carries bob's Delivered-To and is kept.
    assert len(await h.inbox(bob.address)) == 1
    assert await h.inbox(carol.address) == []


async def test_reject_bounces_with_the_reason(tenant: Tenant, make_harness: Any, sink: Any) -> None:
    bob = await tenant.account("bob")
    await _activate(tenant, bob, 'require "reject"; reject "I do not take mail from you.";')
    h = await make_harness(settings_for(sink))
    spooled = await h.spool(message(), "someone@remote.test", [tenant.address("bob")])
    await h.deliver(spooled)
    assert await h.inbox(tenant.address("bob")) == []
    state, text = await _trace(h, spooled)
    assert (state, text) == (
        "bounced",
        f"5.7.1 <{bob.address}>: I do not take mail from you.",
    )
    [dsn] = sink.handler.received
    assert (dsn.mail_from, dsn.rcpt_tos) == ("<>", ["someone@remote.test"])
    assert b"I do not take mail from you." in dsn.content


def _mail(to: str, *, extra: str = "", mid: str = "q1") -> bytes:
    return (
        f"From: Someone <someone@remote.test>\r\nTo: {to}\r\nSubject: Lunch?\r\n"
        f"Message-ID: <{mid}@remote.test>\r\n{extra}\r\nAre you free?\r\n"
    ).encode()


async def test_vacation_replies_once_then_not_within_days_and_never_to_lists(
    tenant: Tenant, make_harness: Any, sink: Any
) -> None:
    bob = await tenant.account("bob")
    await _activate(
        tenant, bob, 'require "vacation"; vacation :days 3 :subject "Away" "Back on Monday.";'
    )
    h = await make_harness(settings_for(sink))
    await h.deliver(await h.spool(_mail(bob.address), "someone@remote.test", [bob.address]))
    [reply] = sink.handler.received
    assert (reply.mail_from, reply.rcpt_tos) == ("<>", ["someone@remote.test"])
    parsed = email.message_from_bytes(reply.content)
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["In-Reply-To"] == "<q1@remote.test>"
    assert parsed["References"] == "<q1@remote.test>"
    assert parsed["Subject"] == "Away"
    assert parsed["From"] == bob.address
    # The same sender within :days gets nothing more.
    h.clock.advance(timedelta(days=2))
    spooled = await h.spool(_mail(bob.address, mid="q2"), "someone@remote.test", [bob.address])
    await h.deliver(spooled)
    assert len(sink.handler.received) == 1
    assert (await _trace(h, spooled))[1] == (
        "2.0.0 OK; sieve: vacation reply already sent in this period"
    )
    # A mailing list never gets a reply.
    listed = _mail(bob.address, extra="List-Id: <dev.remote.test>\r\n", mid="q3")
    spooled = await h.spool(listed, "dev-bounces@remote.test", [bob.address])
    await h.deliver(spooled)
    assert len(sink.handler.received) == 1
    assert (await _trace(h, spooled))[1] == (
        "2.0.0 OK; sieve: no vacation reply (message is from a mailing list)"
    )
    # After :days, a new reply.
    h.clock.advance(timedelta(days=2))
    await h.deliver(
        await h.spool(_mail(bob.address, mid="q4"), "someone@remote.test", [bob.address])
    )
    assert len(sink.handler.received) == 2
    assert len(await h.inbox(bob.address)) == 4


async def test_global_script_runs_before_the_users(
    tenant: Tenant, make_harness: Any, tmp_path: Path
) -> None:
    bob = await tenant.account("bob")
    await _activate(tenant, bob, 'require "fileinto"; fileinto "Mine";')
    await store.create_mailbox(tenant.conn, bob.id, "Mine")
    await store.create_mailbox(tenant.conn, bob.id, "Junk-site")
    site = tmp_path / "global.sieve"
    site.write_text(
        'require "fileinto"; if header :contains "subject" "spam" { fileinto "Junk-site"; }'
    )
    h = await make_harness(settings_for(POSTROOM_SIEVE_GLOBAL_SCRIPT=str(site)))
    spam = message().replace(b"Subject: greetings", b"Subject: spam offer")
    await h.deliver(await h.spool(spam, "a@example.test", [bob.address]))
    await h.deliver(await h.spool(message(), "a@example.test", [bob.address]))
    assert len(await _folder(h, bob, "Junk-site")) == 1
    assert len(await _folder(h, bob, "Mine")) == 1


async def test_vacation_answers_mail_that_names_an_alias_of_the_account(
    tenant: Tenant, make_harness: Any, sink: Any
) -> None:
    bob = await tenant.account("bob")
    await store.add_alias(tenant.conn, tenant.address("robert"), bob.address)
    await _activate(tenant, bob, 'require "vacation"; vacation "Away.";')
    h = await make_harness(settings_for(sink))
    # The message names the alias; the envelope names the account (RFC 5230 §4.5).
    alias = tenant.address("robert")
    await h.deliver(await h.spool(_mail(alias), "someone@remote.test", [bob.address]))
    [reply] = sink.handler.received
    assert reply.rcpt_tos == ["someone@remote.test"]


async def test_include_names_another_script_of_the_account(
    tenant: Tenant, make_harness: Any
) -> None:  # RFC 6609
    bob = await tenant.account("bob")
    await sieve_store.put_script(
        tenant.conn,
        bob.id,
        "lists",
        'require ["fileinto", "mailbox"]; fileinto :create "Included";',
        max_size=65536,
        max_scripts=16,
        now=NOW,
    )
    await _activate(tenant, bob, 'require "include"; include :personal "lists";')
    h = await make_harness(settings_for())
    await h.deliver(await h.spool(message(), "a@example.test", [bob.address]))
    assert len(await _folder(h, bob, "Included")) == 1
    assert await h.inbox(bob.address) == []


async def test_a_site_wide_script_broken_after_start_is_skipped(
    tenant: Tenant, make_harness: Any, tmp_path: Path
) -> None:
    import os

    bob = await tenant.account("bob")
    site = tmp_path / "global.sieve"
    site.write_text("discard;")
    h = await make_harness(settings_for(POSTROOM_SIEVE_GLOBAL_SCRIPT=str(site)))
    site.write_text("discard")  # no semicolon: does not compile
    os.utime(site, (1_900_000_000, 1_900_000_000))
    spooled = await h.spool(message(), "a@example.test", [bob.address])
    await h.deliver(spooled)
    assert len(await h.inbox(bob.address)) == 1
    assert await _trace(h, spooled) == ("delivered", "2.0.0 OK")


async def test_vacation_from_someone_else_is_sent_from_the_account(
    tenant: Tenant, make_harness: Any, sink: Any
) -> None:  # RFC 5230 §4.3
    bob = await tenant.account("bob")
    await _activate(
        tenant, bob, 'require "vacation"; vacation :from "ceo@bank.example" "Wire money.";'
    )
    h = await make_harness(settings_for(sink))
    await h.deliver(await h.spool(_mail(bob.address), "someone@remote.test", [bob.address]))
    [reply] = sink.handler.received
    assert email.message_from_bytes(reply.content)["From"] == bob.address


async def test_a_crash_inside_the_interpreter_keeps_the_message(
    tenant: Tenant, make_harness: Any, monkeypatch: pytest.MonkeyPatch
) -> None:  # RFC 5228 §2.10.6
    from postroom.delivery import filters

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError

    monkeypatch.setattr(filters, "run", broken)
    bob = await tenant.account("bob")
    await _activate(tenant, bob, "discard;")
    h = await make_harness(settings_for())
    spooled = await h.spool(message(), "a@example.test", [bob.address])
    await h.deliver(spooled)
    assert len(await h.inbox(bob.address)) == 1
    assert await _trace(h, spooled) == (
        "delivered",
        "2.0.0 OK; sieve error, kept: internal error in the filter",
    )
