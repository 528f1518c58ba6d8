"""MTA-STS policies (RFC 8461 §3.2, §4.1): parsing and which MX names a policy allows."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.delivery.mta_sts import Policy, PolicyError, mx_matches, parse_policy, record_id

POLICY = (
    "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
    "max_age: 86400\r\n"
)


def test_a_policy_parses_with_every_mx() -> None:
    assert parse_policy(POLICY) == Policy("enforce", ("mail.example.com", "*.example.net"), 86400)


def test_lf_line_endings_are_accepted_too() -> None:
    assert parse_policy(POLICY.replace("\r\n", "\n")).mode == "enforce"


@pytest.mark.parametrize(
    "text",
    [
        POLICY.replace("STSv1", "STSv2"),
        POLICY.replace("enforce", "strict"),
        POLICY.replace("86400", "soon"),
        "version: STSv1\nmode: enforce\nmax_age: 60\n",
        "version STSv1\n",
    ],
    ids=["version", "mode", "max-age", "no-mx", "no-colon"],
)
def test_a_bad_policy_is_refused(text: str) -> None:
    with pytest.raises(PolicyError):
        parse_policy(text)


def test_max_age_is_capped_at_one_year() -> None:
    assert parse_policy(POLICY.replace("86400", "99999999")).max_age == 31557600


def test_mode_none_needs_no_mx() -> None:
    assert parse_policy("version: STSv1\nmode: none\nmax_age: 60\n").mx == ()


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("mail.example.com", "MAIL.example.com.", True),
        ("mail.example.com", "mx.example.com", False),
        ("*.example.net", "mx1.example.net", True),
        ("*.example.net", "a.b.example.net", False),  # §4.1: one label only
        ("*.example.net", "example.net", False),
    ],
)
def test_mx_patterns(pattern: str, host: str, matches: bool) -> None:
    assert mx_matches(pattern, host) is matches


def test_the_record_id_needs_exactly_one_sts_record() -> None:
    assert record_id([b"v=STSv1; id=20240101"]) == "20240101"
    assert record_id([b"v=STSv1; id=a", b"v=STSv1; id=b"]) is None
    assert record_id([b"v=spf1 -all"]) is None
    assert record_id([b"v=STSv1;"]) is None


@given(st.text(max_size=500))
def test_parsing_never_fails_other_than_with_policy_error(text: str) -> None:
    try:
        policy = parse_policy(text)
    except PolicyError:
        return
    assert policy.mode in ("enforce", "testing", "none")
    assert 0 <= policy.max_age <= 31557600
