"""APPEND within the process's budget of messages being received: NO [LIMIT] past it."""

from __future__ import annotations

from postroom.access.imap.parser import Command, CommandReader, NeedContinuation, TooBig
from postroom.spool import InflightBudget


def append(reader: CommandReader, tag: str, size: int, *, plus: bool = False) -> list[object]:
    """Announce an APPEND literal of ``size`` (sent along when ``plus``); the events."""
    marker = b"+" if plus else b""
    data = f"{tag} APPEND INBOX {{{size}".encode() + marker + b"}\r\n"
    if plus:
        data += b"x" * size + b"\r\n"
    reader.feed(data)
    events: list[object] = []
    while (event := reader.next_event()) is not None:
        events.append(event)
        if isinstance(event, Command | TooBig):
            break
    return events


def test_an_append_past_the_budget_is_no_limit() -> None:
    budget = InflightBudget(150)
    first, second = CommandReader(budget=budget), CommandReader(budget=budget)
    [command] = append(first, "a", 100, plus=True)
    assert isinstance(command, Command)
    [refused] = append(second, "b", 100)
    assert isinstance(refused, TooBig)
    assert refused.response() == b"b NO [LIMIT] Too many messages are being received at once\r\n"


def test_the_budget_is_given_back_once_the_command_was_answered() -> None:
    budget = InflightBudget(150)
    first, second = CommandReader(budget=budget), CommandReader(budget=budget)
    append(first, "a", 100, plus=True)
    assert budget.in_use == 100
    assert first.next_event() is None  # the server asks for more: "a" was answered
    assert budget.in_use == 0
    [waiting] = append(second, "b", 100)
    assert isinstance(waiting, NeedContinuation)
    assert budget.in_use == 100


def test_a_refused_literal_plus_is_skipped_and_the_next_command_read() -> None:
    budget = InflightBudget(10)
    reader = CommandReader(budget=budget)
    [refused] = append(reader, "a", 100, plus=True)
    assert isinstance(refused, TooBig)
    reader.feed(b"b NOOP\r\n")
    event = reader.next_event()
    assert isinstance(event, Command)
    assert (event.tag, event.name) == ("b", "NOOP")
    assert budget.in_use == 0


def test_closing_the_reader_gives_back_what_it_holds() -> None:
    budget = InflightBudget(1000)
    reader = CommandReader(budget=budget)
    append(reader, "a", 100)  # announced, literal not sent yet
    assert budget.in_use == 100
    reader.close()
    assert budget.in_use == 0
