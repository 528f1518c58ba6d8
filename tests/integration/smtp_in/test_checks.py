"""smtp-in's checks of a complete message, against real DNS (dnsmasq) and a real rspamd:
the Authentication-Results field, DMARC enforcement, the spam filter's actions."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from postroom.config import Settings, load_settings
from postroom.dns import Resolver
from postroom.rspamd import Rspamd
from postroom.smtp_in.checks import JUNK, InboundChecks
from tests.dns_server import DnsServer, start_dns_server
from tests.mailauth_support import CLIENT_IP, KEYS, message, zone_records
from tests.rspamd_server import JUNK_MARKER, LATER_MARKER
from tests.rspamd_server import Rspamd as RspamdServer

pytestmark = pytest.mark.peer

HOSTNAME = "mx.postroom.test"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


@pytest.fixture(scope="module")
def zone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsServer]:
    with start_dns_server(zone_records(), tmp_path_factory.mktemp("dns")) as server:
        yield server


@pytest.fixture
async def make_checks(zone: DnsServer) -> AsyncIterator[Callable[..., InboundChecks]]:
    made: list[InboundChecks] = []

    def make(rspamd: Rspamd | None = None, **env: str) -> InboundChecks:
        settings: Settings = load_settings(
            {"POSTROOM_HOSTNAME": HOSTNAME, "POSTROOM_DNS_RESOLVERS": zone.resolvers}
            | {f"POSTROOM_{k.upper()}": v for k, v in env.items()}
        )
        made.append(InboundChecks(settings, resolver=Resolver(zone.servers), rspamd=rspamd))
        return made[-1]

    yield make
    for checks in made:
        await checks.close()


async def run(checks: InboundChecks, raw: bytes, mail_from: str = "bounce@fail.test") -> object:
    return await checks.check(
        raw,
        client_ip=CLIENT_IP,
        helo="client.test",
        mail_from=mail_from,
        recipients=["bob@example.test"],
    )


async def test_accepted_message_carries_one_authentication_results(
    make_checks: Callable[..., InboundChecks],
) -> None:
    raw = KEYS.rsa.sign(message(from_="alice@signed.test"), "signed.test", "rsa")
    verdict = await make_checks().check(
        raw,
        client_ip=CLIENT_IP,
        helo="client.test",
        mail_from="alice@pass.test",
        recipients=["bob@example.test"],
    )
    assert verdict.reply is None
    assert verdict.target_special_use is None
    head = verdict.headers + (verdict.content or raw).split(b"\r\n\r\n")[0]
    assert head.count(b"Authentication-Results:") == 1
    assert head.startswith(b"Authentication-Results: mx.postroom.test;\r\n\tspf=none smtp.helo")
    assert b"\tdmarc=pass (p=reject dis=none) header.from=signed.test;\r\n" in head
    assert verdict.checks is not None
    assert verdict.checks["auth_summary"] == {
        "spf": "pass",
        "dkim": "pass",
        "dmarc": "pass",
        "arc": "none",
    }


async def test_forged_field_with_our_authserv_id_is_removed(
    make_checks: Callable[..., InboundChecks],
) -> None:
    forged = b"Authentication-Results: mx.postroom.test; dmarc=pass\r\n" + message(
        from_="ceo@monitor.test"
    )
    verdict = await run(make_checks(), forged)
    assert verdict.content == forged.split(b"\r\n", 1)[1]
    assert b"dmarc=fail (p=none dis=none) header.from=monitor.test" in verdict.headers


async def test_dmarc_reject_is_refused_with_550(make_checks: Callable[..., InboundChecks]) -> None:
    verdict = await run(make_checks(), message(from_="ceo@reject.test"))
    assert str(verdict.reply) == "550 5.7.1 Message refused: the sender's DMARC policy rejects it"


async def test_dmarc_quarantine_goes_to_junk(make_checks: Callable[..., InboundChecks]) -> None:
    verdict = await run(make_checks(), message(from_="news@quarantine.test"))
    assert (verdict.reply, verdict.target_special_use) == (None, JUNK)


async def test_dmarc_dns_failure_under_reject_is_451(
    make_checks: Callable[..., InboundChecks],
) -> None:
    verdict = await run(make_checks(), message(from_="ceo@reject.test"), "a@temperror.test")
    assert str(verdict.reply) == (
        "451 4.7.1 Sender authentication could not complete (DNS); try again later"
    )


async def test_enforcement_off_only_records(make_checks: Callable[..., InboundChecks]) -> None:
    verdict = await run(make_checks(dmarc_enforce="false"), message(from_="ceo@reject.test"))
    assert (verdict.reply, verdict.target_special_use) == (None, None)
    assert b"dmarc=fail (p=reject dis=reject) header.from=reject.test" in verdict.headers


async def test_checks_off_leave_the_message_alone(
    make_checks: Callable[..., InboundChecks],
) -> None:
    raw = message(from_="ceo@reject.test")
    verdict = await run(make_checks(sender_checks="false"), raw)
    assert (verdict.reply, verdict.headers, verdict.content, verdict.checks) == (
        None,
        b"",
        None,
        None,
    )


# rspamd.


def rspamd_message(body: str, subject: str = "Note") -> bytes:
    return message(
        from_="alice@neutral.test", subject=f"{subject} {uuid.uuid4()}", body=body + "\r\n"
    )


async def test_gtube_is_refused_as_spam(
    make_checks: Callable[..., InboundChecks], rspamd: RspamdServer
) -> None:
    checks = make_checks(Rspamd(rspamd.url))
    verdict = await run(checks, rspamd_message(GTUBE), "alice@pass.test")
    assert str(verdict.reply) == "550 5.7.1 Message refused as spam"
    assert verdict.checks is not None
    assert verdict.checks["spam"]["action"] == "reject"
    assert "GTUBE" in verdict.checks["spam"]["symbols"]


async def test_clean_message_goes_to_inbox_with_its_score_kept(
    make_checks: Callable[..., InboundChecks], rspamd: RspamdServer
) -> None:
    checks = make_checks(Rspamd(rspamd.url))
    verdict = await run(checks, rspamd_message("Lunch at noon tomorrow, the usual place?"))
    assert (verdict.reply, verdict.target_special_use) == (None, None)
    assert verdict.checks is not None
    assert verdict.checks["spam"]["action"] == "no action"
    assert b"X-Spam" not in verdict.headers


async def test_add_header_goes_to_junk_with_x_spam_fields(
    make_checks: Callable[..., InboundChecks], rspamd: RspamdServer
) -> None:
    checks = make_checks(Rspamd(rspamd.url))
    verdict = await run(checks, rspamd_message("Offer", subject=JUNK_MARKER))
    assert (verdict.reply, verdict.target_special_use) == (None, JUNK)
    assert verdict.checks is not None
    score = verdict.checks["spam"]["score"]
    head = verdict.headers
    assert f"\r\nX-Spam: Yes\r\nX-Spam-Score: {score:.2f} / 15.00\r\n".encode() in head
    assert b"\r\nX-Spam-Action: add header\r\n" in head
    assert b"POSTROOM_TEST_JUNK" in head


async def test_greylist_action_is_451(
    make_checks: Callable[..., InboundChecks], rspamd: RspamdServer
) -> None:
    checks = make_checks(Rspamd(rspamd.url))
    verdict = await run(checks, rspamd_message("Offer", subject=LATER_MARKER))
    assert str(verdict.reply) == "451 4.7.1 Message deferred by the spam filter; try again later"


async def test_rspamd_down_fails_open_by_default(
    make_checks: Callable[..., InboundChecks],
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    verdict = await run(make_checks(Rspamd(url)), rspamd_message("Hello"), "alice@pass.test")
    assert verdict.reply is None
    assert verdict.checks is not None
    assert "ClientConnectorError" in verdict.checks["spam"]["error"]


async def test_rspamd_down_defers_when_told_to(make_checks: Callable[..., InboundChecks]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    checks = make_checks(Rspamd(url), rspamd_on_failure="defer")
    verdict = await run(checks, rspamd_message("Hello"), "alice@pass.test")
    assert str(verdict.reply) == "451 4.7.1 Spam filter unavailable; try again later"
