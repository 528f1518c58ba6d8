"""Messages on their way in: small ones in memory, large ones in a file, within a budget."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from postroom.errors import LimitExceeded
from postroom.spool import HEAD_SIZE, SPILL_SIZE, InflightBudget, SpoolFile


def pieces(spool: SpoolFile, start: int = 0, size: int = 1000) -> bytes:
    async def collect() -> bytes:
        return b"".join([p async for p in spool.chunks(start, size)])

    return asyncio.run(collect())


def test_a_small_message_stays_in_memory(tmp_path: Path) -> None:
    spool = SpoolFile(tmp_path / "spool")
    spool.write(b"Subject: a\r\n\r\nhello\r\n")
    assert not (tmp_path / "spool").exists()
    assert spool.read_all() == b"Subject: a\r\n\r\nhello\r\n"
    assert pieces(spool, 3, 4) == b"ject: a\r\n\r\nhello\r\n"
    spool.close()


def test_a_large_message_spills_to_an_unlinked_file(tmp_path: Path) -> None:
    spool = SpoolFile(tmp_path)
    data = bytes(range(256)) * (SPILL_SIZE // 256 * 3)
    for start in range(0, len(data), 65536):
        spool.write(data[start : start + 65536])
    assert spool.size == len(data)
    assert list(tmp_path.iterdir()) == []  # nothing to clean up after a crash
    assert spool.read_all() == data
    assert pieces(spool, 100, 99_999) == data[100:]
    assert bytes(spool.head) == data[:HEAD_SIZE]
    spool.close()


def test_past_the_budget_a_write_is_refused_and_close_gives_it_back(tmp_path: Path) -> None:
    budget = InflightBudget(1000)
    first, second = SpoolFile(tmp_path, budget), SpoolFile(tmp_path, budget)
    first.write(b"x" * 600)
    with pytest.raises(LimitExceeded):
        second.write(b"y" * 500)
    assert budget.in_use == 600
    first.close()
    assert budget.in_use == 0
    second.write(b"y" * 500)
    second.close()
    second.close()  # twice is harmless
    assert budget.in_use == 0
