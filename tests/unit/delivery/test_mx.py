"""Next hops: RFC 5321 §5.1 MX order, RFC 7505 null MX, the transport map first."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from postroom.config import load_settings
from postroom.delivery.mx import DestinationError, Hop, is_null_mx, next_hops, order_mx


def test_mx_by_preference_lowest_first() -> None:
    assert order_mx([(20, "b"), (10, "a"), (30, "c")]) == ["a", "b", "c"]


def test_equal_preferences_come_in_random_order() -> None:
    rng = random.Random(1)
    firsts = Counter(order_mx([(10, "a"), (10, "b"), (20, "c")], rng)[0] for _ in range(200))
    assert set(firsts) == {"a", "b"}
    assert min(firsts.values()) > 50


@pytest.mark.parametrize(
    ("records", "null"),
    [([(0, ".")], True), ([(0, "")], True), ([(10, "mx.example")], False)],
    ids=["root", "empty", "ordinary"],
)
def test_null_mx(records: list[tuple[int, str]], null: bool) -> None:
    assert is_null_mx(records) is null


async def test_transport_map_names_the_host_exactly() -> None:
    settings = load_settings({"POSTROOM_TRANSPORT_MAP": "remote.test=[127.0.0.1]:2526"})
    assert await next_hops("Remote.Test", settings) == [Hop("127.0.0.1", "127.0.0.1", 2526)]


async def test_address_literal_is_its_own_hop() -> None:
    assert await next_hops("[8.8.8.8]", load_settings({})) == [Hop("8.8.8.8", "8.8.8.8", 25)]


async def test_an_internal_address_literal_is_a_hop_only_when_allowed() -> None:
    settings = load_settings({"POSTROOM_ALLOW_INTERNAL_DESTINATIONS": "true"})
    assert await next_hops("[127.0.0.1]", settings) == [Hop("127.0.0.1", "127.0.0.1", 25)]


async def test_bad_address_literal_is_permanent() -> None:
    with pytest.raises(DestinationError) as info:
        await next_hops("[not-an-ip]", load_settings({}))
    assert info.value.permanent
