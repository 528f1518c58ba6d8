"""TLS-RPT (RFC 8460): the rua of a TLSRPT record, the JSON report of §4.4, the message of
§5.3."""

from __future__ import annotations

import email
import email.policy
import gzip
import json
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.delivery.tls_reports import build_report, report_addresses, report_message
from postroom.store.tls_reports import TlsCount, TlsResult

STS = "version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 86400"


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([b"v=TLSRPTv1; rua=mailto:tls@example.test"], ["tls@example.test"]),
        (
            [b"v=TLSRPTv1;rua=https://r.example.test/v1,mailto:a@example.test?subject=x"],
            ["a@example.test"],
        ),
        ([b"v=spf1 -all", b"v=TLSRPTv1; rua=mailto:b@example.test"], ["b@example.test"]),
        ([b"v=TLSRPTv1; rua=mailto:a@x.test", b"v=TLSRPTv1; rua=mailto:b@x.test"], []),
        ([b"v=TLSRPTv2; rua=mailto:a@x.test"], []),
        ([], []),
    ],
    ids=["mailto", "https-skipped-query-dropped", "other-txt", "two-records", "version", "none"],
)
def test_the_rua_mailto_addresses_of_exactly_one_record(
    records: list[bytes], expected: list[str]
) -> None:
    # RFC 8460 §3.
    assert report_addresses(records) == expected


@given(st.lists(st.binary(max_size=200), max_size=4))
def test_any_txt_records_give_a_short_list_of_addresses(records: list[bytes]) -> None:
    found = report_addresses(records)
    assert len(found) <= 5
    assert all("@" in a and " " not in a for a in found)


def _count(mx: str, result: str, sessions: int, policy: str = STS) -> TlsCount:
    return TlsCount(TlsResult("example.test", "sts", policy, mx, result), sessions)


def test_the_report_has_the_fields_of_section_4_4() -> None:
    counts = [
        _count("", "success", 7),
        _count("mx.example.test", "certificate-expired", 2),
        _count("mx.example.test", "starttls-not-supported", 1),
    ]
    report = build_report(
        "example.test",
        date(2026, 12, 1),
        counts,
        organization="mail.sender.test",
        contact="postmaster@mail.sender.test",
        report_id="r1@mail.sender.test",
    )
    assert report == {
        "organization-name": "mail.sender.test",
        "date-range": {
            "start-datetime": "2026-12-01T00:00:00Z",
            "end-datetime": "2026-12-01T23:59:59Z",
        },
        "contact-info": "postmaster@mail.sender.test",
        "report-id": "r1@mail.sender.test",
        "policies": [
            {
                "policy": {
                    "policy-type": "sts",
                    "policy-string": STS.split("\n"),
                    "policy-domain": "example.test",
                    "mx-host": ["mx.example.test"],
                },
                "summary": {
                    "total-successful-session-count": 7,
                    "total-failure-session-count": 3,
                },
                "failure-details": [
                    {
                        "result-type": "certificate-expired",
                        "receiving-mx-hostname": "mx.example.test",
                        "failed-session-count": 2,
                    },
                    {
                        "result-type": "starttls-not-supported",
                        "receiving-mx-hostname": "mx.example.test",
                        "failed-session-count": 1,
                    },
                ],
            }
        ],
    }


def test_a_tlsa_policy_lists_its_records_and_no_mx_host() -> None:
    counts = [
        TlsCount(TlsResult("example.test", "tlsa", "3 1 1 ab12", "mx.example.test", "success"), 4)
    ]
    report = build_report(
        "example.test", date(2026, 12, 1), counts, organization="o", contact="c", report_id="r"
    )
    [entry] = report["policies"]
    assert entry["policy"] == {
        "policy-type": "tlsa",
        "policy-string": ["3 1 1 ab12"],
        "policy-domain": "example.test",
    }
    assert "failure-details" not in entry


def test_the_message_is_a_tlsrpt_report_with_the_gzipped_json() -> None:
    report = build_report(
        "example.test",
        date(2026, 12, 1),
        [_count("", "success", 1)],
        organization="o",
        contact="c",
        report_id="r1@mail.sender.test",
    )
    raw = report_message(
        report,
        policy_domain="example.test",
        submitter="mail.sender.test",
        sender="postmaster@mail.sender.test",
        to=["tls@example.test"],
    )
    message = email.message_from_bytes(raw, policy=email.policy.default)
    # RFC 8460 §5.3.
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "tlsrpt"
    assert message["TLS-Report-Domain"] == "example.test"
    assert message["TLS-Report-Submitter"] == "mail.sender.test"
    assert message["Subject"] == (
        "Report Domain: example.test Submitter: mail.sender.test Report-ID: <r1@mail.sender.test>"
    )
    [attachment] = [p for p in message.walk() if p.get_content_type() == "application/tlsrpt+gzip"]
    assert attachment.get_filename() == (
        "mail.sender.test!example.test!1796083200!1796169599!r1@mail.sender.test.json.gz"
    )
    payload = attachment.get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert json.loads(gzip.decompress(payload)) == report
