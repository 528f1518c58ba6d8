"""Whole sessions fuzzed: a hypothesis state machine sends random valid and invalid commands
to a real server over a socket and checks that every command gets its answer and that the
server goes on serving (as mox's FuzzServer does for IMAP)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import ClassVar

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

TIMEOUT = 20

# Lines no protocol knows: junk, controls, an overlong line, an empty one, 8-bit bytes.
JUNK = [
    b"",
    b"\x00\x01\x02",
    b"HELLO?",
    b"x" * 9000,
    "ünïcödé".encode(),
    b"\xff\xfe\x80",
    b"A" * 100 + b" " + b"B" * 100,
]


class Client:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.file = self.sock.makefile("rb")

    def line(self) -> bytes:
        return self.file.readline(65536)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


# (client, command line) -> what the server answered, all lines; b"" lines mean it closed.
Exchange = Callable[[Client, bytes], list[bytes]]


class SessionFuzz(RuleBasedStateMachine):
    """Set ``port``, ``commands``, ``exchange`` and ``greeting`` on a subclass."""

    port: ClassVar[int]
    commands: ClassVar[Sequence[bytes]]
    exchange: ClassVar[Exchange]
    greeting: ClassVar[bytes]

    def __init__(self) -> None:
        super().__init__()
        self.client = self._connect()

    def _connect(self) -> Client:
        client = Client(self.port)
        first = client.line()
        assert first.startswith(self.greeting), first
        return client

    @rule(data=st.data())
    def command(self, data: st.DataObject) -> None:
        line = data.draw(st.sampled_from([*self.commands, *JUNK]))
        answer = type(self).exchange(self.client, line)
        assert answer, f"no answer to {line[:60]!r}"
        if answer[-1] == b"":
            # The server closed (QUIT, LOGOUT, STARTTLS, too many errors): a new session.
            self.client.close()
            self.client = self._connect()

    def teardown(self) -> None:
        self.client.close()
        # The server goes on serving everyone else.
        self._connect().close()


def fuzz(machine: type[SessionFuzz], examples: int = 15, steps: int = 25) -> None:
    run_state_machine_as_test(
        machine, settings=settings(max_examples=examples, stateful_step_count=steps, deadline=None)
    )
