"""Run a synchronous checking library on the event loop, its DNS answered through postroom.dns.

pyspf and dkimpy ask DNS through a blocking callback. Rather than a thread per check (which
a slow DNS server would exhaust), the check runs on the loop against the answers known so
far; a question not yet answered stops it (``Missing``), the question is asked
asynchronously, and the check runs again from the start. Each run is cheap next to a DNS
round trip, the libraries' own lookup limits bound the number of runs, and every run sees
the same answers, so the limits (RFC 7208 §4.6.4) count exactly as in one run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Missing(BaseException):
    """Raised inside a check for a question without an answer yet.

    A BaseException so that the libraries' ``except Exception`` clauses let it through
    (a bare ``except:`` still swallows it; ``Answers.wanted`` remembers the question).
    """

    def __init__(self, key: Hashable) -> None:
        super().__init__(key)
        self.key = key


class Answers(dict[K, V]):
    """Answers by question; ``need`` raises Missing for one not asked yet."""

    def __init__(self) -> None:
        super().__init__()
        self.wanted: list[K] = []

    def need(self, key: K) -> V:
        try:
            return self[key]
        except KeyError:
            self.wanted.append(key)
            raise Missing(key) from None


async def replay(
    check: Callable[[Answers[K, V]], T],
    fetch: Callable[[K], Awaitable[V]],
    *,
    prefetch: Iterable[K] = (),
    max_runs: int,
    in_thread: bool = False,
) -> T:
    """``check(answers)`` run until it needs no answer it lacks; raises RuntimeError past
    ``max_runs`` runs. ``in_thread``: each run in a worker thread (long CPU work, such as
    hashing a large message, must not hold up the event loop)."""
    answers: Answers[K, V] = Answers()
    await _fetch_all(answers, list(prefetch), fetch)
    for _ in range(max_runs):
        answers.wanted.clear()
        try:
            result = await asyncio.to_thread(check, answers) if in_thread else check(answers)
        except Missing:
            pass
        else:
            if not [k for k in answers.wanted if k not in answers]:
                return result
        await _fetch_all(answers, [k for k in answers.wanted if k not in answers], fetch)
    raise RuntimeError(f"check still asking DNS after {max_runs} runs")


async def _fetch_all(
    answers: Answers[K, V], keys: list[K], fetch: Callable[[K], Awaitable[V]]
) -> None:
    keys = list(dict.fromkeys(keys))
    if not keys:
        return
    if len(keys) == 1:  # the usual case: no task to create and schedule
        answers[keys[0]] = await fetch(keys[0])
        return
    values = await asyncio.gather(*(fetch(k) for k in keys))
    answers.update(zip(keys, values, strict=True))
