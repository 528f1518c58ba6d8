"""RFC 9208 QUOTA: its commands' grammar and the QUOTA and QUOTAROOT responses."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from postroom.access.imap import quota
from postroom.access.imap.parser import MailboxArgument, QuotaRoot, Status
from postroom.store.types import Account, AccountId, DomainId
from tests.unit.access.imap.test_parser import args, refuse


def account(**kw: int | None) -> Account:
    values: dict[str, object] = {
        "id": AccountId(1), "domain_id": DomainId(1), "address": "a@b.test", "is_admin": False,
        "disabled": False, "quota_bytes": None, "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        **kw,
    }  # fmt: skip
    return Account(**values)  # type: ignore[arg-type]


def test_getquota_takes_a_quota_root_name() -> None:
    assert args('a GETQUOTA ""') == QuotaRoot("")
    assert args("a GETQUOTA root") == QuotaRoot("root")


def test_getquotaroot_takes_a_mailbox_name() -> None:
    assert args("a getquotaroot inbox") == MailboxArgument(b"inbox")


def test_getquota_without_a_root_is_a_syntax_error() -> None:
    assert refuse("a GETQUOTA").tag == "a"


def test_status_accepts_deleted_and_deleted_storage() -> None:
    assert args("a STATUS INBOX (deleted DELETED-STORAGE)") == Status(
        b"INBOX", ("DELETED", "DELETED-STORAGE")
    )


def test_storage_is_in_kibibytes_rounded_up() -> None:
    assert [quota.kibibytes(n) for n in (0, 1, 1024, 1025)] == [0, 1, 1, 2]


def test_quota_lists_storage_then_message() -> None:
    both = account(quota_bytes=10240, used_bytes=3000, quota_messages=50, used_messages=2)
    assert quota.quota_response(both) == b'* QUOTA "" (STORAGE 3 10 MESSAGE 2 50)\r\n'


def test_quotaroot_of_an_account_without_limits_names_no_root() -> None:
    assert quota.quotaroot_response(account(), b"INBOX") == b"* QUOTAROOT INBOX\r\n"
    assert not quota.has_root(account(), "")


def test_quotaroot_names_the_mailbox_as_encoded_then_the_root() -> None:
    limited = account(quota_bytes=1024)
    assert quota.quotaroot_response(limited, b"Entw&APw-rfe") == b'* QUOTAROOT Entw&APw-rfe ""\r\n'


_QUOTA = re.compile(rb'\* QUOTA "" \(((?:[A-Z]+ \d+ \d+)(?: [A-Z]+ \d+ \d+)*)\)\r\n')


@given(
    st.integers(0, 2**62),
    st.integers(0, 2**62),
    st.one_of(st.none(), st.integers(0, 2**62)),
    st.integers(0, 2**62),
)
def test_every_quota_response_follows_the_grammar(
    quota_bytes: int, used_bytes: int, quota_messages: int | None, used_messages: int
) -> None:
    # RFC 9208 §7: quota-response = "QUOTA" SP quota-root-name SP quota-list, with at least
    # one quota-resource = resource-name SP resource-usage SP resource-limit (number64 each).
    found = account(
        quota_bytes=quota_bytes,
        used_bytes=used_bytes,
        quota_messages=quota_messages,
        used_messages=used_messages,
    )
    match = _QUOTA.fullmatch(quota.quota_response(found))
    assert match is not None
    numbers = [int(n) for n in re.findall(rb"\d+", match[1])]
    assert all(0 <= n < 2**63 for n in numbers)
    assert numbers[:2] == [quota.kibibytes(used_bytes), quota_bytes // 1024]
