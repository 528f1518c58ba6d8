"""Submission with a send-as list: its entries are the account's in MAIL FROM, From: and Sender:,
and everything else is still refused (RFC 6409 §8)."""

from __future__ import annotations

import smtplib
import ssl

from postroom import store
from tests.integration.smtp_in.test_submission import PASSWORD, message_from, submit
from tests.integration.smtp_in.transcript import ServerThread
from tests.support import Tenant

REFUSED = "550 5.7.1 From or Sender header address not owned by the authenticated user"


async def test_an_address_on_the_list_is_accepted_in_from_and_mail_from(
    smtp: ServerThread, client_tls: ssl.SSLContext, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", PASSWORD)
    await store.set_send_as(tenant.conn, alice.address, ["boss@partner.example"])
    msg = message_from("The Boss <boss@partner.example>")
    reply = submit(smtp.submission, client_tls, alice.address, "Boss@Partner.example",
                   ["bob@remote.example"], msg)  # fmt: skip
    assert reply.startswith("250 "), reply


async def test_an_address_on_the_list_is_accepted_in_sender(
    smtp: ServerThread, client_tls: ssl.SSLContext, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", PASSWORD)
    await store.set_send_as(tenant.conn, alice.address, ["boss@partner.example"])
    msg = message_from(alice.address, extra="Sender: boss@partner.example\r\n")
    reply = submit(smtp.submission, client_tls, alice.address, alice.address,
                   ["bob@remote.example"], msg)  # fmt: skip
    assert reply.startswith("250 "), reply


async def test_a_domain_on_the_list_allows_each_of_its_addresses(
    smtp: ServerThread, client_tls: ssl.SSLContext, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", PASSWORD)
    await store.set_send_as(tenant.conn, alice.address, ["*@lists.example"])
    for sender in ("news@lists.example", "Digest <DIGEST@LISTS.EXAMPLE>"):
        reply = submit(smtp.submission, client_tls, alice.address, alice.address,
                       ["bob@remote.example"], message_from(sender))  # fmt: skip
        assert reply.startswith("250 "), (sender, reply)


async def test_an_address_not_on_the_list_is_still_refused_with_550(
    smtp: ServerThread, client_tls: ssl.SSLContext, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", PASSWORD)
    await tenant.account("ceo", PASSWORD)
    await store.set_send_as(tenant.conn, alice.address, ["boss@partner.example", "*@lists.example"])
    for sender in (
        tenant.address("ceo"),
        "other@partner.example",
        "news@sub.lists.example",
        "boss@partner.example.evil",
    ):
        reply = submit(smtp.submission, client_tls, alice.address, alice.address,
                       ["bob@remote.example"], message_from(sender))  # fmt: skip
        assert reply == REFUSED, sender


async def test_mail_from_not_on_the_list_is_refused_with_553(
    smtp: ServerThread, client_tls: ssl.SSLContext, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", PASSWORD)
    await store.set_send_as(tenant.conn, alice.address, ["boss@partner.example"])
    with smtplib.SMTP("127.0.0.1", smtp.submission, timeout=10) as client:
        client.starttls(context=client_tls)
        client.login(alice.address, PASSWORD)
        code, text = client.mail("other@partner.example")
    assert (code, text) == (553, b"5.7.1 Sender address not owned by the authenticated user")


async def test_another_accounts_list_does_not_help(
    smtp: ServerThread, client_tls: ssl.SSLContext, tenant: Tenant
) -> None:
    alice = await tenant.account("alice", PASSWORD)
    carol = await tenant.account("carol", PASSWORD)
    await store.set_send_as(tenant.conn, carol.address, ["*@partner.example"])
    reply = submit(smtp.submission, client_tls, alice.address, alice.address,
                   ["bob@remote.example"], message_from("boss@partner.example"))  # fmt: skip
    assert reply == REFUSED
