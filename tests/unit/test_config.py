"""Settings: the contract's names and defaults, and clear errors naming the bad variable."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.config import NextHop, Settings, load_settings, parse_resolvers, parse_transport_map
from postroom.errors import ConfigError


def test_defaults_are_the_contracts() -> None:
    s = load_settings({})
    assert (s.smtp_port, s.submission_port, s.submissions_port) == (2525, 2587, 2465)
    assert (s.pop3_port, s.pop3s_port, s.imap_port, s.imaps_port, s.http_port) == (
        2110,
        2995,
        2143,
        2993,
        8080,
    )
    assert s.retry_interval == timedelta(seconds=1800)
    assert s.max_queue_lifetime == timedelta(days=5)
    assert s.data_dir == Path(".postroom")
    assert s.allow_plaintext_auth is False


def test_ports_come_from_the_environment() -> None:
    assert load_settings({"POSTROOM_SMTP_PORT": "25"}).smtp_port == 25


def test_bad_port_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="POSTROOM_SMTP_PORT"):
        load_settings({"POSTROOM_SMTP_PORT": "seventy"})


def test_out_of_range_port_is_refused() -> None:
    with pytest.raises(ConfigError, match="POSTROOM_IMAP_PORT"):
        load_settings({"POSTROOM_IMAP_PORT": "70000"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90", 90), ("30m", 1800), ("4h", 14400), ("5d", 432000), ("1.5m", 90)],
)
def test_durations_accept_seconds_or_units(text: str, expected: int) -> None:
    s = load_settings({"POSTROOM_RETRY_INTERVAL": text})
    assert s.retry_interval == timedelta(seconds=expected)


def test_bad_duration_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="POSTROOM_MAX_QUEUE_LIFETIME"):
        load_settings({"POSTROOM_MAX_QUEUE_LIFETIME": "soon"})


def test_backoff_schedule_is_used_in_order_then_repeats_its_last_step() -> None:
    s = load_settings({"POSTROOM_RETRY_BACKOFF": "5m,30m,2h"})
    assert [s.retry_delay(n).total_seconds() for n in (1, 2, 3, 4)] == [300, 1800, 7200, 7200]


def test_without_backoff_the_retry_interval_is_used() -> None:
    s = load_settings({"POSTROOM_RETRY_INTERVAL": "60"})
    assert s.retry_delay(1) == s.retry_delay(7) == timedelta(seconds=60)


def test_transport_map_like_postfix() -> None:
    hops = parse_transport_map("remote.test=[127.0.0.1]:10026, Other.Test=relay.example")
    assert hops == {
        "remote.test": NextHop("127.0.0.1", 10026, mx_lookup=False),
        "other.test": NextHop("relay.example", 25, mx_lookup=True),
    }


def test_transport_map_from_the_environment() -> None:
    s = load_settings({"POSTROOM_TRANSPORT_MAP": "remote.test=[127.0.0.1]:10026"})
    assert s.transport_map["remote.test"].port == 10026


@pytest.mark.parametrize("text", ["nodomain", "x=[127.0.0.1", "x=[h]:99999", "x=h:port"])
def test_bad_transport_map_names_the_variable(text: str) -> None:
    with pytest.raises(ConfigError, match="POSTROOM_TRANSPORT_MAP"):
        load_settings({"POSTROOM_TRANSPORT_MAP": text})


def test_hostname_is_normalised() -> None:
    assert load_settings({"POSTROOM_HOSTNAME": "Mail.Example.ORG."}).hostname == "mail.example.org"


def test_bad_hostname_is_refused() -> None:
    with pytest.raises(ConfigError, match="POSTROOM_HOSTNAME"):
        load_settings({"POSTROOM_HOSTNAME": "not a host"})


def test_pop3_idle_timeout_defaults_to_rfc_1939s_ten_minutes() -> None:
    assert load_settings({}).pop3_idle_timeout == 600.0


def test_pop3_idle_timeout_and_pool_size_come_from_the_environment() -> None:
    s = load_settings({"POSTROOM_POP3_IDLE_TIMEOUT": "30", "POSTROOM_ACCESS_DB_POOL_SIZE": "8"})
    assert (s.pop3_idle_timeout, s.access_db_pool_size) == (30.0, 8)


def test_non_positive_pop3_idle_timeout_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="POSTROOM_POP3_IDLE_TIMEOUT"):
        load_settings({"POSTROOM_POP3_IDLE_TIMEOUT": "0"})


def test_imap_autologout_defaults_to_rfc_3501s_thirty_minutes() -> None:
    s = load_settings({})
    assert (s.imap_idle_timeout, s.imap_max_sessions_per_account) == (1800.0, 20)


def test_imap_limits_come_from_the_environment() -> None:
    s = load_settings(
        {"POSTROOM_IMAP_IDLE_TIMEOUT": "5", "POSTROOM_IMAP_MAX_SESSIONS_PER_ACCOUNT": "3"}
    )
    assert (s.imap_idle_timeout, s.imap_max_sessions_per_account) == (5.0, 3)


def test_delivery_worker_defaults() -> None:
    settings = load_settings({})
    assert settings.delivery_concurrency == 8
    assert settings.delivery_lease == timedelta(seconds=30)
    assert settings.delivery_deadline == timedelta(minutes=10)
    assert settings.sweep_interval == timedelta(seconds=5)
    assert settings.smtp_connect_timeout == 30.0


def test_delivery_worker_settings_come_from_the_environment() -> None:
    settings = load_settings(
        {
            "POSTROOM_DELIVERY_CONCURRENCY": "3",
            "POSTROOM_DELIVERY_LEASE": "2m",
            "POSTROOM_SWEEP_INTERVAL": "1",
            "POSTROOM_SMTP_CONNECT_TIMEOUT": "5",
        }
    )
    assert settings.delivery_concurrency == 3
    assert settings.delivery_lease == timedelta(minutes=2)
    assert settings.sweep_interval == timedelta(seconds=1)
    assert settings.smtp_connect_timeout == 5.0


def test_every_setting_is_documented_and_nothing_else() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text()
    documented = set(re.findall(r"^\| `POSTROOM_([A-Z0-9_]+)` \|", page, re.M))
    assert documented == {name.upper() for name in Settings.model_fields}


@pytest.mark.parametrize(
    ("text", "servers"),
    [
        ("127.0.0.1", [("127.0.0.1", 53)]),
        ("127.0.0.1:5353, ::1", [("127.0.0.1", 5353), ("::1", 53)]),
        ("[::1]:5300", [("::1", 5300)]),
        ("", []),
    ],
    ids=["bare", "port-and-ipv6", "bracketed-ipv6", "empty"],
)
def test_dns_resolvers_host_and_port(text: str, servers: list[tuple[str, int]]) -> None:
    assert parse_resolvers(text) == servers


@pytest.mark.parametrize("text", ["resolver.example", "127.0.0.1:0", "[::1", "[::1]x", "1.2.3.4:x"])
def test_bad_dns_resolvers_name_the_variable(text: str) -> None:
    with pytest.raises(ConfigError, match="POSTROOM_DNS_RESOLVERS"):
        load_settings({"POSTROOM_DNS_RESOLVERS": text})


@given(
    st.lists(st.tuples(st.ip_addresses(), st.integers(min_value=1, max_value=65535)), max_size=4)
)
def test_dns_resolvers_round_trip(servers: list[tuple[Any, int]]) -> None:
    text = ",".join(f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}" for ip, port in servers)
    assert parse_resolvers(text) == [(str(ip), port) for ip, port in servers]


def test_a_site_wide_sieve_script_that_does_not_compile_stops_the_start(tmp_path: Path) -> None:
    script = tmp_path / "global.sieve"
    script.write_text("keep;\nfrob;\n")
    with pytest.raises(ConfigError, match=r"POSTROOM_SIEVE_GLOBAL_SCRIPT: .*line 2"):
        load_settings({"POSTROOM_SIEVE_GLOBAL_SCRIPT": str(script)})
    with pytest.raises(ConfigError, match=r"POSTROOM_SIEVE_GLOBAL_SCRIPT: .*cannot read"):
        load_settings({"POSTROOM_SIEVE_GLOBAL_SCRIPT": str(tmp_path / "missing.sieve")})
