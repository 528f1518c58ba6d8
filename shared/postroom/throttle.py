"""Failed-login throttling per client IP and per account: growing delays, then a lock-out."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Record:
    failures: int
    last: float


class AuthThrottle:
    """Bookkeeping of failed logins, shared by every listener of one process.

    After ``free_failures`` failures from an IP or for an account, each further attempt waits
    ``base_delay * 2**(n - free_failures)`` seconds (at most ``max_delay``) before its answer;
    after ``lockout_failures`` the IP or account is refused outright until ``window`` seconds
    pass without a failure. Memory is bounded: the oldest records go first.
    """

    def __init__(
        self,
        *,
        free_failures: int = 3,
        base_delay: float = 0.5,
        max_delay: float = 15.0,
        lockout_failures: int = 10,
        window: float = 900.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.lockout_failures = lockout_failures
        self.window = window
        self.max_entries = max_entries
        self.clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def _get(self, key: str) -> _Record | None:
        record = self._records.get(key)
        if record is not None and self.clock() - record.last > self.window:
            del self._records[key]
            return None
        return record

    def _keys(self, ip: str | None, account: str | None) -> list[str]:
        keys = []
        if ip:
            keys.append("ip:" + ip)
        if account:
            keys.append("acct:" + account.lower())
        return keys

    def _failures(self, ip: str | None, account: str | None) -> int:
        counts = [r.failures for k in self._keys(ip, account) if (r := self._get(k))]
        return max(counts, default=0)

    def locked(self, ip: str | None, account: str | None = None) -> bool:
        """True when this IP or account is locked out: refuse without checking the password."""
        return self._failures(ip, account) >= self.lockout_failures

    def delay(self, ip: str | None, account: str | None = None) -> float:
        """Seconds to wait before answering this attempt."""
        excess = self._failures(ip, account) - self.free_failures
        if excess < 0:
            return 0.0
        return float(min(self.max_delay, self.base_delay * 2**excess))

    def failure(self, ip: str | None, account: str | None = None) -> None:
        now = self.clock()
        for key in self._keys(ip, account):
            record = self._get(key)
            if record is None:
                record = _Record(0, now)
                self._records[key] = record
            record.failures += 1
            record.last = now
            self._records.move_to_end(key)
        while len(self._records) > self.max_entries:
            self._records.popitem(last=False)

    def success(self, ip: str | None, account: str | None = None) -> None:
        """A right password clears the account's record (not the IP's: one good login from an
        address that guesses many accounts must not reset its count)."""
        for key in self._keys(None, account):
            self._records.pop(key, None)
