"""Errors of the Sieve language: compile-time (with the script line) and run-time."""

from __future__ import annotations


class SieveError(Exception):
    """Any problem with a Sieve script."""


class SieveSyntaxError(SieveError):
    """The script does not compile; ``line`` is 1-based, as ManageSieve reports it."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


class SieveRuntimeError(SieveError):
    """The script failed while running; RFC 5228 §2.10.6: the message is then kept."""
