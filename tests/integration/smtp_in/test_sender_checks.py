"""smtp-in checks senders before the final reply to DATA, over real sockets: SPF, DKIM, DMARC
and ARC against the tests' DNS server, the Authentication-Results field it writes, DMARC
enforcement, and rspamd's verdicts."""

from __future__ import annotations

import smtplib
import ssl
import uuid
from collections.abc import Callable

import pytest

from postroom.db import Conn
from postroom.store.queue import get_queue_entry, read_queued_message
from postroom.store.types import QueueId
from tests.integration.smtp_in.test_submission import PASSWORD, submit
from tests.integration.smtp_in.transcript import ServerThread
from tests.mailauth_support import KEYS, message
from tests.rspamd_server import JUNK_MARKER
from tests.rspamd_server import Rspamd as RspamdServer
from tests.support import Tenant

pytestmark = pytest.mark.peer

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def send(port: int, mail_from: str, to: str, raw: bytes, helo: str = "client.test") -> str:
    """One message over the inbound listener; the final reply to DATA as text."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo(helo)
        client.mail(mail_from)
        code, text = client.rcpt(to)
        assert code == 250, (code, text)
        try:
            code, text = client.data(raw)
        except smtplib.SMTPDataError as exc:
            code, text = exc.smtp_code, exc.smtp_error
        return f"{code} {text.decode()}"


async def stored(conn: Conn, reply: str) -> tuple[bytes, str | None, dict[str, object] | None]:
    """The spooled content, its target folder and its checks, for a ``250 ... queued as N``."""
    assert reply.startswith("250 2.0.0 OK queued as "), reply
    queue_id = QueueId(int(reply.rsplit(" ", 1)[1]))
    entry = await get_queue_entry(conn, queue_id, with_attempts=False)
    raw = await read_queued_message(conn, queue_id)
    return raw, entry.message.target_special_use, entry.message.checks


def field(raw: bytes) -> bytes:
    """Our Authentication-Results field: the one right after our Received field."""
    start = raw.index(b"\r\nAuthentication-Results: ") + 2
    end = raw.index(b"\r\n", raw.index(b"\tarc=", start)) + 2
    return raw[start:end]


async def test_dmarc_reject_is_refused_at_the_end_of_data(
    smtp: ServerThread, tenant: Tenant
) -> None:
    await tenant.account("bob")
    raw = message(from_="ceo@reject.test", to=tenant.address("bob"))
    reply = send(smtp.inbound, "bounce@fail.test", tenant.address("bob"), raw)
    assert reply == "550 5.7.1 Message refused: the sender's DMARC policy rejects it"


async def test_dmarc_quarantine_is_accepted_into_junk(
    smtp: ServerThread, tenant: Tenant, conn: Conn
) -> None:
    await tenant.account("bob")
    raw = message(from_="news@quarantine.test", to=tenant.address("bob"))
    reply = send(smtp.inbound, "bounce@fail.test", tenant.address("bob"), raw)
    content, target, checks = await stored(conn, reply)
    assert target == "\\Junk"
    assert field(content) == (
        b"Authentication-Results: mx.postroom.test;\r\n"
        b"\tspf=none smtp.helo=client.test;\r\n"
        b"\tspf=fail smtp.mailfrom=bounce@fail.test;\r\n"
        b"\tdkim=none;\r\n"
        b"\tdmarc=fail (p=quarantine dis=quarantine) header.from=quarantine.test;\r\n"
        b"\tarc=none\r\n"
    )
    assert checks is not None
    assert checks["auth_summary"] == {
        "spf": "fail",
        "dkim": "none",
        "dmarc": "fail",
        "arc": "none",
    }


async def test_signed_and_aligned_message_passes_into_inbox(
    smtp: ServerThread, tenant: Tenant, conn: Conn
) -> None:
    await tenant.account("bob")
    raw = KEYS.ed25519.sign(message(from_="alice@signed.test", to=tenant.address("bob")),
                            "signed.test", "ed")  # fmt: skip
    reply = send(smtp.inbound, "alice@pass.test", tenant.address("bob"), raw, "mx.pass.test")
    content, target, _ = await stored(conn, reply)
    assert target is None
    header = field(content)
    assert header.startswith(
        b"Authentication-Results: mx.postroom.test;\r\n"
        b"\tspf=pass smtp.helo=mx.pass.test;\r\n"
        b"\tspf=pass smtp.mailfrom=alice@pass.test;\r\n"
        b"\tdkim=pass header.d=signed.test header.a=ed25519-sha256 header.s=ed header.b="
    )
    assert header.endswith(
        b";\r\n\tdmarc=pass (p=reject dis=none) header.from=signed.test;\r\n\tarc=none\r\n"
    )
    # The field sits under our Received field, above the message as it came.
    assert content.startswith(b"Received: from ")
    assert content.endswith(raw)


async def test_forged_field_with_our_authserv_id_is_removed(
    smtp: ServerThread, tenant: Tenant, conn: Conn
) -> None:
    await tenant.account("bob")
    forged = b"Authentication-Results: MX.postroom.test; dmarc=pass header.from=bank.test\r\n"
    other = b"Authentication-Results: relay.example; spf=pass\r\n"
    raw = forged + other + message(from_="ceo@monitor.test", to=tenant.address("bob"))
    reply = send(smtp.inbound, "bounce@fail.test", tenant.address("bob"), raw)
    content, _, _ = await stored(conn, reply)
    assert b"bank.test" not in content
    assert content.count(b"Authentication-Results: mx.postroom.test;") == 1
    assert other in content


async def test_dns_failure_under_a_reject_policy_is_451(smtp: ServerThread, tenant: Tenant) -> None:
    await tenant.account("bob")
    raw = message(from_="ceo@reject.test", to=tenant.address("bob"))
    reply = send(smtp.inbound, "bounce@temperror.test", tenant.address("bob"), raw)
    assert reply == "451 4.7.1 Sender authentication could not complete (DNS); try again later"


async def test_arc_pass_across_a_forwarding_hop_is_recorded(
    smtp: ServerThread, tenant: Tenant, conn: Conn
) -> None:
    await tenant.account("bob")
    # (From a domain without a DMARC policy: a reject policy would refuse it; overriding
    # DMARC for trusted ARC sealers, RFC 8617 §7.2.1, is not done.)
    original = KEYS.rsa.sign(
        message(from_="alice@neutral.test", to=tenant.address("bob")), "signed.test", "rsa"
    )
    checked = b"Authentication-Results: forwarder.test; dkim=pass header.d=signed.test\r\n"
    tagged = (checked + original).replace(b"Subject: Hello", b"Subject: [list] Hello")
    raw = KEYS.forwarder.arc_seal(tagged, "forwarder.test", "arc", "forwarder.test")
    reply = send(smtp.inbound, "list@forwarder.test", tenant.address("bob"), raw)
    content, _, checks = await stored(conn, reply)
    assert b"\tarc=pass\r\n" in field(content)
    assert checks is not None
    assert checks["auth_summary"] == {
        "spf": "none",
        "dkim": "fail",
        "dmarc": "none",
        "arc": "pass",
    }


async def test_enforcement_off_records_a_dmarc_reject(
    start_smtp: Callable[..., ServerThread], tenant: Tenant, conn: Conn
) -> None:
    server = start_smtp(dmarc_enforce="false")
    await tenant.account("bob")
    raw = message(from_="ceo@reject.test", to=tenant.address("bob"))
    reply = send(server.inbound, "bounce@fail.test", tenant.address("bob"), raw)
    content, target, _ = await stored(conn, reply)
    assert target is None
    assert b"\tdmarc=fail (p=reject dis=reject) header.from=reject.test;\r\n" in field(content)


async def test_authenticated_submission_is_not_checked(
    smtp: ServerThread, client_tls: ssl.SSLContext, tenant: Tenant, conn: Conn
) -> None:
    alice = await tenant.account("alice", PASSWORD)
    # Submission holds From: to the account's own addresses (identity.py), not to DMARC.
    raw = message(from_=alice.address, to="carol@remote.example")
    reply = submit(smtp.submission, client_tls, alice.address, alice.address,
                   ["carol@remote.example"], raw)  # fmt: skip
    content, target, checks = await stored(conn, reply)
    assert b"Authentication-Results" not in content
    assert (target, checks) == (None, None)


# rspamd.


async def test_gtube_is_refused_as_spam(
    start_smtp: Callable[..., ServerThread], rspamd: RspamdServer, tenant: Tenant
) -> None:
    server = start_smtp(rspamd_url=rspamd.url)
    await tenant.account("bob")
    raw = message(from_="alice@neutral.test", to=tenant.address("bob"), body=GTUBE + "\r\n")
    reply = send(server.inbound, "alice@neutral.test", tenant.address("bob"), raw)
    assert reply == "550 5.7.1 Message refused as spam"


async def test_spam_score_goes_to_junk_and_is_kept_with_the_queue_entry(
    start_smtp: Callable[..., ServerThread], rspamd: RspamdServer, tenant: Tenant, conn: Conn
) -> None:
    server = start_smtp(rspamd_url=rspamd.url)
    await tenant.account("bob")
    raw = message(from_="alice@neutral.test", to=tenant.address("bob"),
                  subject=f"{JUNK_MARKER} {uuid.uuid4()}")  # fmt: skip
    reply = send(server.inbound, "alice@neutral.test", tenant.address("bob"), raw)
    content, target, checks = await stored(conn, reply)
    assert target == "\\Junk"
    assert checks is not None
    spam = checks["spam"]
    assert isinstance(spam, dict)
    assert spam["action"] == "add header"
    assert "POSTROOM_TEST_JUNK" in spam["symbols"]
    assert f"\r\nX-Spam: Yes\r\nX-Spam-Score: {spam['score']:.2f} / 15.00\r\n".encode() in content


async def test_clean_message_passes_the_filter_into_inbox(
    start_smtp: Callable[..., ServerThread], rspamd: RspamdServer, tenant: Tenant, conn: Conn
) -> None:
    server = start_smtp(rspamd_url=rspamd.url)
    await tenant.account("bob")
    raw = message(from_="alice@neutral.test", to=tenant.address("bob"),
                  subject=f"Lunch {uuid.uuid4()}")  # fmt: skip
    reply = send(server.inbound, "alice@neutral.test", tenant.address("bob"), raw)
    content, target, checks = await stored(conn, reply)
    assert target is None
    assert checks is not None
    assert checks["spam"]["action"] == "no action"  # type: ignore[index]
    assert b"X-Spam" not in content
