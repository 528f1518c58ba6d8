"""Sender checks against real DNS (dnsmasq serving the test zones): SPF results and limits,
DKIM with RSA and Ed25519 keys, DMARC policies and alignment, ARC across a forwarding hop."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from authres.core import QuotableValue  # type: ignore[import-untyped]

from postroom.dns import Resolver
from postroom.mailauth import authenticate, authentication_results, disposition
from postroom.mailauth.dkim import verify_signatures
from postroom.mailauth.spf import check_host
from tests.dns_server import Record, start_dns_server, txt
from tests.mailauth_support import CLIENT_IP, KEYS, message, zone_records

pytestmark = pytest.mark.peer

OURS = "mx.postroom.test"


@pytest.fixture(scope="module")
def resolver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Resolver]:
    with start_dns_server(zone_records(), tmp_path_factory.mktemp("dns")) as server:
        yield Resolver(server.servers, timeout=2)


# SPF (RFC 7208 §2.6), the MAIL FROM identity.


@pytest.mark.parametrize(
    ("domain", "result"),
    [
        ("pass.test", "pass"),
        ("fail.test", "fail"),
        ("softfail.test", "softfail"),
        ("neutral.test", "neutral"),
        ("none.test", "none"),
        ("nowhere.test", "none"),
        ("permerror.test", "permerror"),
        ("temperror.test", "temperror"),
    ],
)
async def test_spf_result_of_mail_from(resolver: Resolver, domain: str, result: str) -> None:
    spf = await check_host(
        resolver,
        client_ip=CLIENT_IP,
        sender=f"bounce@{domain}",
        helo="client.test",
        identity="mailfrom",
    )
    assert (spf.result, spf.domain, spf.sender) == (result, domain, f"bounce@{domain}")


async def test_spf_more_than_two_void_lookups_is_permerror(resolver: Resolver) -> None:
    # RFC 7208 §4.6.4: more than two lookups answering NXDOMAIN or no records.
    spf = await check_host(
        resolver, client_ip=CLIENT_IP, sender="a@voids.test", helo="", identity="mailfrom"
    )
    assert spf.result == "permerror"
    assert "Void lookup limit" in spf.reason


async def test_spf_more_than_ten_lookups_is_permerror(resolver: Resolver) -> None:
    # RFC 7208 §4.6.4: at most 10 mechanisms and modifiers that query DNS.
    spf = await check_host(
        resolver, client_ip=CLIENT_IP, sender="a@lookups.test", helo="", identity="mailfrom"
    )
    assert spf.result == "permerror"
    assert "DNS lookups" in spf.reason


async def test_spf_of_null_reverse_path_checks_postmaster_at_helo(resolver: Resolver) -> None:
    # RFC 7208 §2.4: a null reverse-path uses "postmaster@" the HELO name.
    spf = await check_host(
        resolver, client_ip=CLIENT_IP, sender="", helo="mx.pass.test", identity="mailfrom"
    )
    assert (spf.result, spf.sender) == ("pass", "postmaster@mx.pass.test")


async def test_spf_of_unqualified_helo_is_none(resolver: Resolver) -> None:
    spf = await check_host(
        resolver, client_ip=CLIENT_IP, sender="", helo="localhost", identity="helo"
    )
    assert spf.result == "none"


async def test_spf_timeout_is_temperror() -> None:
    from tests.dns_server import silent_port

    with silent_port() as port:
        resolver = Resolver([("127.0.0.1", port)], timeout=0.3)
        spf = await check_host(
            resolver, client_ip=CLIENT_IP, sender="a@pass.test", helo="", identity="mailfrom"
        )
    assert spf.result == "temperror"


async def test_spf_result_kept_for_a_domain_names_each_sender(tmp_path: Path) -> None:
    records = [txt("kept.test", "v=spf1 ip4:127.0.0.1 -all")]
    with start_dns_server(records, tmp_path) as server:
        resolver = Resolver(server.servers, timeout=2)
        first = await check_host(
            resolver, client_ip=CLIENT_IP, sender="a@kept.test", helo="", identity="mailfrom"
        )
    second = await check_host(
        resolver, client_ip=CLIENT_IP, sender="b@kept.test", helo="", identity="mailfrom"
    )
    assert (first.result, first.sender) == ("pass", "a@kept.test")
    assert (second.result, second.sender) == ("pass", "b@kept.test")


async def test_spf_record_with_macros_is_evaluated_for_each_sender(tmp_path: Path) -> None:
    # RFC 7208 §7.2: %{l} is the sender's local part; one sender's result is not another's.
    records = [
        txt("macro.test", "v=spf1 exists:%{l}.allow.macro.test -all"),
        Record("alice.allow.macro.test", "A", "127.0.0.2"),
    ]
    with start_dns_server(records, tmp_path) as server:
        resolver = Resolver(server.servers, timeout=2)
        results = [
            await check_host(
                resolver, client_ip=CLIENT_IP, sender=sender, helo="", identity="mailfrom"
            )
            for sender in ("alice@macro.test", "bob@macro.test", "alice@macro.test")
        ]
    assert [r.result for r in results] == ["pass", "fail", "pass"]


async def test_spf_result_is_not_kept_from_another_client(tmp_path: Path) -> None:
    records = [txt("client.test", "v=spf1 ip4:127.0.0.1 -all")]
    with start_dns_server(records, tmp_path) as server:
        resolver = Resolver(server.servers, timeout=2)
        results = [
            await check_host(
                resolver, client_ip=ip, sender="a@client.test", helo="", identity="mailfrom"
            )
            for ip in (CLIENT_IP, "127.0.0.9")
        ]
    assert [r.result for r in results] == ["pass", "fail"]


# DKIM (RFC 6376; Ed25519 RFC 8463).


async def test_dkim_rsa_signature_passes(resolver: Resolver) -> None:
    signed = KEYS.rsa.sign(message(), "signed.test", "rsa")
    (result,) = await verify_signatures(signed, resolver, max_signatures=5)
    assert (result.result, result.domain, result.selector, result.algorithm) == (
        "pass",
        "signed.test",
        "rsa",
        "rsa-sha256",
    )


async def test_dkim_ed25519_signature_passes(resolver: Resolver) -> None:
    signed = KEYS.ed25519.sign(message(), "signed.test", "ed")
    (result,) = await verify_signatures(signed, resolver, max_signatures=5)
    assert (result.result, result.algorithm) == ("pass", "ed25519-sha256")


async def test_dkim_changed_body_fails(resolver: Resolver) -> None:
    signed = KEYS.rsa.sign(message(), "signed.test", "rsa")
    (result,) = await verify_signatures(signed + b"P.S. changed\r\n", resolver, max_signatures=5)
    assert result.result == "fail"
    assert "body hash" in result.reason


async def test_dkim_changed_signed_header_fails(resolver: Resolver) -> None:
    signed = KEYS.ed25519.sign(message(), "signed.test", "ed")
    forged = signed.replace(b"Subject: Hello", b"Subject: Pay now")
    (result,) = await verify_signatures(forged, resolver, max_signatures=5)
    assert result.result == "fail"


async def test_dkim_unsigned_message_has_no_results(resolver: Resolver) -> None:
    assert await verify_signatures(message(), resolver, max_signatures=5) == ()


async def test_dkim_signature_without_key_is_permerror(resolver: Resolver) -> None:
    signed = KEYS.rsa.sign(message(), "signed.test", "gone")
    (result,) = await verify_signatures(signed, resolver, max_signatures=5)
    assert result.result == "permerror"


async def test_dkim_revoked_key_is_permerror(resolver: Resolver) -> None:
    # RFC 6376 §3.6.1: an empty p= means the key was revoked.
    signed = KEYS.rsa.sign(message(), "signed.test", "revoked")
    (result,) = await verify_signatures(signed, resolver, max_signatures=5)
    assert result.result == "permerror"


async def test_dkim_key_lookup_failure_is_temperror(resolver: Resolver) -> None:
    signed = KEYS.rsa.sign(message(), "broken.invalid", "rsa")
    (result,) = await verify_signatures(signed, resolver, max_signatures=5)
    assert result.result == "temperror"


async def test_dkim_every_signature_is_verified_up_to_the_limit(resolver: Resolver) -> None:
    signed = KEYS.rsa.sign(message(), "signed.test", "rsa")
    signed = KEYS.ed25519.sign(signed, "signed.test", "ed")
    signed = KEYS.rsa.sign(signed, "signed.test", "gone")
    results = await verify_signatures(signed, resolver, max_signatures=2)
    assert [(r.selector, r.result) for r in results] == [("gone", "permerror"), ("ed", "pass")]


async def test_dkim_rsa_sha1_is_not_accepted(resolver: Resolver) -> None:
    # RFC 8301 §3.1: rsa-sha1 signatures are not valid.
    import dkim

    header = dkim.sign(
        message(), b"rsa", b"signed.test", KEYS.rsa.private, signature_algorithm=b"rsa-sha1"
    )
    (result,) = await verify_signatures(header + message(), resolver, max_signatures=5)
    assert result.result == "policy"


# DMARC (RFC 7489) and the whole set of checks.


async def check(
    resolver: Resolver, msg: bytes, mail_from: str, helo: str = "client.test"
) -> tuple[str, str, str]:
    results = await authenticate(
        msg,
        client_ip=CLIENT_IP,
        helo=helo,
        mail_from=mail_from,
        resolver=resolver,
        rng=random.Random(0),
    )
    return (
        results.dmarc.result,
        results.dmarc.disposition,
        disposition(results, enforce=True),
    )


async def test_dmarc_reject_without_aligned_pass_is_refused(resolver: Resolver) -> None:
    msg = message(from_="ceo@reject.test")
    assert await check(resolver, msg, "bounce@fail.test") == ("fail", "reject", "reject")


async def test_dmarc_quarantine_goes_to_junk(resolver: Resolver) -> None:
    msg = message(from_="news@quarantine.test")
    assert await check(resolver, msg, "bounce@fail.test") == ("fail", "quarantine", "junk")


async def test_dmarc_none_policy_is_only_recorded(resolver: Resolver) -> None:
    msg = message(from_="someone@monitor.test")
    assert await check(resolver, msg, "bounce@fail.test") == ("fail", "none", "accept")


async def test_dmarc_without_policy_record_is_none(resolver: Resolver) -> None:
    msg = message(from_="someone@neutral.test")
    assert await check(resolver, msg, "bounce@fail.test") == ("none", "none", "accept")


async def test_dmarc_passes_with_aligned_dkim(resolver: Resolver) -> None:
    msg = KEYS.rsa.sign(message(from_="ceo@reject.test"), "reject.test", "rsa")
    assert await check(resolver, msg, "bounce@fail.test") == ("pass", "none", "accept")


async def test_dmarc_passes_with_aligned_spf(resolver: Resolver) -> None:
    msg = message(from_="info@pass.test")
    assert await check(resolver, msg, "bounce@pass.test") == ("pass", "none", "accept")


async def test_dmarc_relaxed_alignment_accepts_a_subdomain_signature(resolver: Resolver) -> None:
    msg = KEYS.rsa.sign(message(from_="ceo@aligned.test"), "mail.aligned.test", "rsa")
    assert await check(resolver, msg, "bounce@fail.test") == ("pass", "none", "accept")


async def test_dmarc_relaxed_alignment_accepts_a_subdomain_mail_from(resolver: Resolver) -> None:
    msg = message(from_="ceo@aligned.test")
    assert await check(resolver, msg, "bounce@mail.aligned.test") == ("pass", "none", "accept")


async def test_dmarc_strict_alignment_refuses_a_subdomain_signature(resolver: Resolver) -> None:
    msg = KEYS.rsa.sign(message(from_="ceo@strict.test"), "mail.strict.test", "rsa")
    assert await check(resolver, msg, "bounce@mail.strict.test") == ("fail", "reject", "reject")


async def test_dmarc_signature_of_another_domain_does_not_align(resolver: Resolver) -> None:
    msg = KEYS.rsa.sign(message(from_="ceo@reject.test"), "signed.test", "rsa")
    assert await check(resolver, msg, "bounce@pass.test") == ("fail", "reject", "reject")


async def test_dmarc_subdomain_takes_the_organizational_sp(resolver: Resolver) -> None:
    # RFC 7489 §6.6.3: no record at the author domain, the Organizational Domain's sp= applies.
    msg = message(from_="ceo@sales.aligned.test")
    assert await check(resolver, msg, "bounce@fail.test") == ("fail", "quarantine", "junk")


async def test_dmarc_bad_policy_record_is_permerror(resolver: Resolver) -> None:
    msg = message(from_="ceo@broken.test")
    assert await check(resolver, msg, "bounce@fail.test") == ("permerror", "none", "accept")


async def test_dmarc_temporary_spf_failure_defers_under_reject(resolver: Resolver) -> None:
    # The SPF check that might have passed could not complete: 4xx, never a silent pass.
    msg = message(from_="ceo@reject.test")
    result = await check(resolver, msg, "bounce@temperror.test")
    assert result == ("temperror", "reject", "tempfail")


async def test_dmarc_policy_lookup_failure_defers() -> None:
    from tests.dns_server import silent_port

    with silent_port() as port:
        resolver = Resolver([("127.0.0.1", port)], timeout=0.3)
        result = await check(resolver, message(from_="ceo@reject.test"), "bounce@reject.test")
    assert result == ("temperror", "none", "tempfail")


async def test_enforcement_off_accepts_a_dmarc_reject(resolver: Resolver) -> None:
    results = await authenticate(
        message(from_="ceo@reject.test"),
        client_ip=CLIENT_IP,
        helo="client.test",
        mail_from="bounce@fail.test",
        resolver=resolver,
    )
    assert disposition(results, enforce=False) == "accept"


# ARC (RFC 8617).


def forwarded(original: bytes) -> bytes:
    """What a mailing list at forwarder.test makes of ``original``: it checks DKIM, records
    the result, tags the subject (breaking DKIM) and seals the new state with ARC."""
    received = (
        b"Authentication-Results: forwarder.test; dkim=pass header.d=signed.test\r\n" + original
    )
    tagged = received.replace(b"Subject: Hello", b"Subject: [list] Hello")
    return KEYS.forwarder.arc_seal(tagged, "forwarder.test", "arc", "forwarder.test")


async def test_arc_chain_passes_across_a_forwarding_hop(resolver: Resolver) -> None:
    original = KEYS.rsa.sign(message(), "signed.test", "rsa")
    results = await authenticate(
        forwarded(original),
        client_ip=CLIENT_IP,
        helo="client.test",
        mail_from="list-bounce@forwarder.test",
        resolver=resolver,
    )
    assert [d.result for d in results.dkim] == ["fail"]
    assert (results.arc.result, results.arc.instances) == ("pass", 1)


async def test_arc_chain_fails_when_changed_after_sealing(resolver: Resolver) -> None:
    original = KEYS.rsa.sign(message(), "signed.test", "rsa")
    changed = forwarded(original).replace(b"[list] Hello", b"[list] Pay now")
    results = await authenticate(
        changed,
        client_ip=CLIENT_IP,
        helo="client.test",
        mail_from="list-bounce@forwarder.test",
        resolver=resolver,
    )
    assert results.arc.result == "fail"


async def test_message_without_arc_sets_is_arc_none(resolver: Resolver) -> None:
    results = await authenticate(
        message(),
        client_ip=CLIENT_IP,
        helo="client.test",
        mail_from="a@pass.test",
        resolver=resolver,
    )
    assert results.arc.result == "none"


# The header (RFC 8601).


async def test_authentication_results_header_lists_every_method(resolver: Resolver) -> None:
    signed = KEYS.ed25519.sign(message(from_="alice@signed.test"), "signed.test", "ed")
    results = await authenticate(
        signed,
        client_ip=CLIENT_IP,
        helo="mx.pass.test",
        mail_from="alice@pass.test",
        resolver=resolver,
    )
    # header.b (RFC 6008) is quoted when the signature's first characters hold a "/" or "+".
    b = QuotableValue(results.dkim[0].b).quote_if_needed()
    assert (
        authentication_results(OURS, results)
        == (
            "Authentication-Results: mx.postroom.test;\r\n"
            "\tspf=pass smtp.helo=mx.pass.test;\r\n"
            "\tspf=pass smtp.mailfrom=alice@pass.test;\r\n"
            "\tdkim=pass header.d=signed.test header.a=ed25519-sha256 header.s=ed"
            f" header.b={b};\r\n"
            "\tdmarc=pass (p=reject dis=none) header.from=signed.test;\r\n"
            "\tarc=none\r\n"
        ).encode()
    )


async def test_dmarc_message_outside_the_pct_sample_gets_the_next_less_strict_policy(
    tmp_path: Path,
) -> None:
    # RFC 7489 §6.6.4: pct=0, no message is in the sample; reject becomes quarantine, each time.
    from postroom.mailauth.dmarc import evaluate
    from postroom.mailauth.results import SPFResult

    records = [txt("_dmarc.sample.test", "v=DMARC1; p=reject; pct=0")]
    spf = SPFResult("fail", "mailfrom", "sample.test", "a@sample.test")
    with start_dns_server(records, tmp_path) as server:
        resolver = Resolver(server.servers, timeout=2)
        results = [
            await evaluate(b"", spf, (), resolver, random.Random(1), domains=["sample.test"])
            for _ in range(2)
        ]
    assert [(r.result, r.policy, r.disposition) for r in results] == [
        ("fail", "reject", "quarantine")
    ] * 2


async def test_dmarc_message_in_the_pct_sample_gets_the_policy(tmp_path: Path) -> None:
    from postroom.mailauth.dmarc import evaluate
    from postroom.mailauth.results import SPFResult

    records = [txt("_dmarc.sampled.test", "v=DMARC1; p=reject; pct=100")]
    spf = SPFResult("fail", "mailfrom", "sampled.test", "a@sampled.test")
    with start_dns_server(records, tmp_path) as server:
        resolver = Resolver(server.servers, timeout=2)
        result = await evaluate(b"", spf, (), resolver, domains=["sampled.test"])
    assert (result.result, result.disposition) == ("fail", "reject")
