"""Connection parameters every pool serving clients is opened with."""

from __future__ import annotations

from datetime import timedelta

from postroom.db import session_options


def test_statement_timeout_is_given_in_milliseconds_as_a_startup_option() -> None:
    assert session_options(statement_timeout=timedelta(seconds=30)) == {
        "options": "-c statement_timeout=30000"
    }


def test_a_zero_statement_timeout_sets_no_option() -> None:
    assert session_options(statement_timeout=timedelta(0)) == {}
    assert session_options() == {}


def test_a_sub_millisecond_statement_timeout_is_one_millisecond_not_none() -> None:
    # 0 would mean "no limit" to Postgres.
    assert session_options(statement_timeout=timedelta(microseconds=10)) == {
        "options": "-c statement_timeout=1"
    }
