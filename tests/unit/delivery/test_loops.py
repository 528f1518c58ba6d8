"""Delivered-To fields found in the header section, whatever their case and folding."""

from __future__ import annotations

from postroom.delivery.loops import delivered_to


def test_delivered_to_fields_of_the_header_only() -> None:
    raw = (
        b"Delivered-To: Bob@Example.test\r\ndelivered-to:\r\n <carol@example.test>\r\n"
        b"Subject: x\r\n\r\nDelivered-To: body@example.test\r\n"
    )
    assert delivered_to(raw) == {"bob@example.test", "carol@example.test"}


def test_no_delivered_to_is_an_empty_set() -> None:
    assert delivered_to(b"Subject: x\r\n\r\nbody\r\n") == set()
