"""Retry policy: 4xx defers by the interval or backoff, 5xx bounces, expiry bounces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from postroom.config import load_settings
from postroom.delivery.retry import decide, enhanced_status, from_reply

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("code", "text", "kind", "status"),
    [
        (550, "5.1.1 no such user", "permanent", "5.1.1"),
        (451, "4.7.1 greylisted", "transient", "4.7.1"),
        (550, "no such user", "permanent", "5.0.0"),
        (None, "4.4.7 expired", "permanent", "4.4.7"),
        (None, None, "transient", "4.0.0"),
        (250, "5.1.1x not a status", "delivered", "2.0.0"),
    ],
    ids=["enhanced-5xx", "enhanced-4xx", "bare-5xx", "own-reason", "nothing", "not-a-code"],
)
def test_enhanced_status(code: int | None, text: str | None, kind: str, status: str) -> None:
    assert enhanced_status(code, text, kind) == status  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "kind"),
    [(250, "delivered"), (354, "delivered"), (421, "transient"), (554, "permanent")],
    ids=["250", "354", "421", "554"],
)
def test_reply_classes(code: int, kind: str) -> None:
    assert from_reply(code, "text", "h").kind == kind


def test_4xx_is_deferred_by_the_retry_interval() -> None:
    settings = load_settings({"POSTROOM_RETRY_INTERVAL": "30m"})
    d = decide(
        from_reply(451, "4.7.1 later", "h"), attempts=0, received_at=T0, now=T0, settings=settings
    )
    assert (d.outcome, d.next_attempt_at) == ("deferred", T0 + timedelta(minutes=30))


def test_5xx_bounces_at_once() -> None:
    d = decide(
        from_reply(550, "5.1.1 x", "h"),
        attempts=0,
        received_at=T0,
        now=T0,
        settings=load_settings({}),
    )
    assert (d.outcome, d.next_attempt_at) == ("bounced", None)


def test_last_retry_is_pulled_in_to_the_end_of_the_lifetime() -> None:
    settings = load_settings(
        {"POSTROOM_MAX_QUEUE_LIFETIME": "1h", "POSTROOM_RETRY_INTERVAL": "45m"}
    )
    now = T0 + timedelta(minutes=45)
    d = decide(from_reply(451, "x", "h"), attempts=1, received_at=T0, now=now, settings=settings)
    assert d.next_attempt_at == T0 + timedelta(hours=1)


def test_failure_at_the_end_of_the_lifetime_bounces_with_4_4_7() -> None:
    settings = load_settings({"POSTROOM_MAX_QUEUE_LIFETIME": "1h"})
    now = T0 + timedelta(hours=1)
    d = decide(
        from_reply(451, "4.3.0 busy", "h"), attempts=2, received_at=T0, now=now, settings=settings
    )
    assert d.outcome == "bounced"
    assert d.text == "4.4.7 delivery time expired (queued for 1h); last error: 451 4.3.0 busy"
