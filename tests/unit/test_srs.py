"""SRS addresses: forward then reverse gives the original; forged and expired ones refused."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom import srs
from postroom.config import load_settings

KEY = b"a secret of the forwarder"
DAY = 86400.0
NOW = 20_000 * DAY + 3600

local_parts = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.!#$%&'*+/=?^_`{|}~-",
    min_size=1,
    max_size=40,
)
domains = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z]{2,6}){1,2}", fullmatch=True)


def test_forward_makes_an_srs0_address_in_the_forwarding_domain() -> None:
    rewritten = srs.forward("alice@example.org", "fwd.example.net", KEY, now=NOW)
    local, _, domain = rewritten.rpartition("@")
    assert domain == "fwd.example.net"
    tag, _hash, stamp, host, orig = local.split("=", 4)
    assert (tag, stamp, host, orig) == ("SRS0", srs._stamp(20_000), "example.org", "alice")


@given(local=local_parts, host=domains, via=domains)
def test_reverse_of_forward_is_the_original_sender(local: str, host: str, via: str) -> None:
    rewritten = srs.forward(f"{local}@{host}", via, KEY, now=NOW)
    assert srs.is_srs(rewritten)
    assert srs.reverse(rewritten, KEY, 21, now=NOW) == f"{local}@{host}"


@given(local=local_parts, host=domains)
def test_hash_compare_ignores_case(local: str, host: str) -> None:
    rewritten = srs.forward(f"{local}@{host}", "fwd.example.net", KEY, now=NOW)
    prefix, rest = rewritten[:5], rewritten[5:]
    hash_, tail = rest[:4], rest[4:]
    assert srs.reverse(prefix + hash_.swapcase() + tail, KEY, 21, now=NOW) == f"{local}@{host}"


def test_tampered_hash_is_refused() -> None:
    rewritten = srs.forward("alice@example.org", "fwd.example.net", KEY, now=NOW)
    forged = rewritten.replace("alice@", "mallory@").replace("=alice", "=mallory")
    with pytest.raises(srs.InvalidSrs, match="hash"):
        srs.reverse(forged, KEY, 21, now=NOW)


def test_another_secret_does_not_verify() -> None:
    rewritten = srs.forward("alice@example.org", "fwd.example.net", KEY, now=NOW)
    with pytest.raises(srs.InvalidSrs, match="hash"):
        srs.reverse(rewritten, b"another secret", 21, now=NOW)


def test_address_past_its_max_age_is_refused() -> None:
    rewritten = srs.forward("alice@example.org", "fwd.example.net", KEY, now=NOW)
    assert srs.reverse(rewritten, KEY, 21, now=NOW + 21 * DAY) == "alice@example.org"
    with pytest.raises(srs.InvalidSrs, match="expired"):
        srs.reverse(rewritten, KEY, 21, now=NOW + 22 * DAY)


def test_stamp_from_the_future_is_refused() -> None:
    rewritten = srs.forward("alice@example.org", "fwd.example.net", KEY, now=NOW + 2 * DAY)
    with pytest.raises(srs.InvalidSrs, match="expired"):
        srs.reverse(rewritten, KEY, 21, now=NOW)


@pytest.mark.parametrize(
    "address",
    ["SRS0=abcd@fwd.example.net", "SRS0==XX=h=l@fwd.example.net", "SRS2=a=b=c@x", "alice@x"],
)
def test_malformed_address_is_refused(address: str) -> None:
    with pytest.raises(srs.InvalidSrs):
        srs.reverse(address, KEY, 21, now=NOW)


def test_forwarding_an_srs0_address_makes_srs1_that_bounces_to_the_first_hop() -> None:
    first = srs.forward("alice@example.org", "hop1.example", b"hop1 secret", now=NOW)
    second = srs.forward(first, "hop2.example", KEY, now=NOW)
    assert second.startswith("SRS1=")
    assert second.endswith("@hop2.example")
    assert srs.reverse(second, KEY, 21, now=NOW) == first
    third = srs.forward(second, "hop3.example", b"hop3 secret", now=NOW)
    assert third.startswith("SRS1=")
    assert third.endswith("@hop3.example")
    assert srs.reverse(third, b"hop3 secret", 21, now=NOW) == first
    assert srs.reverse(first, b"hop1 secret", 21, now=NOW) == "alice@example.org"


def test_null_and_local_senders_are_not_rewritten() -> None:
    settings = load_settings({"POSTROOM_SRS_SECRET": "s", "POSTROOM_HOSTNAME": "mx.example.net"})
    assert srs.rewrite_sender(settings, "", sender_is_local=False, domain="d.example") == ""
    kept = srs.rewrite_sender(settings, "a@ours.example", sender_is_local=True, domain="d.example")
    assert kept == "a@ours.example"
    host = srs.rewrite_sender(settings, "a@mx.example.net", sender_is_local=False, domain="d")
    assert host == "a@mx.example.net"
    rewritten = srs.rewrite_sender(
        settings, "bob@example.org", sender_is_local=False, domain="d.example"
    )
    assert srs.reverse(rewritten, b"s", 21) == "bob@example.org"


def test_secret_file_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    settings = load_settings({"POSTROOM_DATA_DIR": str(tmp_path)})
    first = srs.secret(settings)
    assert srs.secret(settings) == first
    assert srs.secret_file(settings).stat().st_mode & 0o777 == 0o600


def _domains(*ours: str) -> Callable[[str], Awaitable[bool]]:
    async def is_local_domain(domain: str) -> bool:
        return domain in ours

    return is_local_domain


BOUNCE_SETTINGS = {"POSTROOM_SRS_SECRET": "s", "POSTROOM_HOSTNAME": "mx.example.net"}


@pytest.mark.parametrize("domain", ["mx.example.net", "MX.Example.Net", "ours.example"])
async def test_a_bounce_to_our_srs_address_goes_to_the_original_sender(domain: str) -> None:
    settings = load_settings(BOUNCE_SETTINGS)
    address = srs.forward("bob@example.org", domain, b"s", now=NOW)
    target = await srs.bounce_target(settings, address, _domains("ours.example"), now=NOW)
    assert target == "bob@example.org"


@pytest.mark.parametrize(
    "address",
    ["bob@example.org", "srs0@ours.example", "SRS0=abcd=AA=example.org=bob@elsewhere.example"],
    ids=["plain", "no-separator", "not-our-domain"],
)
async def test_a_bounce_to_anything_else_is_not_ours(address: str) -> None:
    settings = load_settings(BOUNCE_SETTINGS)
    assert await srs.bounce_target(settings, address, _domains("ours.example"), now=NOW) is None


async def test_a_forged_srs_address_of_ours_is_invalid() -> None:
    settings = load_settings(BOUNCE_SETTINGS)
    address = srs.forward("bob@example.org", "ours.example", b"another secret", now=NOW)
    with pytest.raises(srs.InvalidSrs, match="hash does not verify"):
        await srs.bounce_target(settings, address, _domains("ours.example"), now=NOW)


async def test_an_expired_srs_address_of_ours_is_invalid() -> None:
    settings = load_settings({**BOUNCE_SETTINGS, "POSTROOM_SRS_MAX_AGE_DAYS": "21"})
    address = srs.forward("bob@example.org", "ours.example", b"s", now=NOW - 22 * DAY)
    with pytest.raises(srs.InvalidSrs, match="expired"):
        await srs.bounce_target(settings, address, _domains("ours.example"), now=NOW)
