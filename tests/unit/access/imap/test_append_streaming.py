"""Large APPEND literals stream into the reader's sink as they arrive, not into memory."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from postroom.access.imap.parser import (
    STREAM_AT,
    Append,
    Command,
    CommandReader,
    NeedContinuation,
    TooBig,
)


class Sink:
    """A sink that remembers what it was given and whether it was closed."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.size = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        self.pieces.append(data)
        self.size += len(data)

    def read_all(self) -> bytes:
        return b"".join(self.pieces)

    def close(self) -> None:
        self.closed = True


def streaming_reader() -> tuple[CommandReader, list[Sink]]:
    sinks: list[Sink] = []

    def make() -> Sink:
        sinks.append(Sink())
        return sinks[-1]

    return CommandReader(literal_sink=make), sinks


def feed_all(reader: CommandReader, data: bytes, chunk: int) -> tuple[list[object], int]:
    """Feed in chunks; the events, and the most octets the reader held at any time."""
    events: list[object] = []
    most = 0
    for start in range(0, len(data), chunk):
        reader.feed(data[start : start + chunk])
        while (event := reader.next_event()) is not None:
            events.append(event)
        most = max(most, reader.buffered)
    return events, most


def test_a_large_literal_goes_to_the_sink_and_memory_holds_one_chunk() -> None:
    reader, sinks = streaming_reader()
    message = b"x" * (4 * STREAM_AT)
    events, most = feed_all(
        reader, b"a APPEND INBOX {%d}\r\n" % len(message) + message + b"\r\n", 65536
    )
    assert isinstance(events[0], NeedContinuation)
    command = events[1]
    assert isinstance(command, Command)
    assert isinstance(command.args, Append)
    assert command.args.message is sinks[0]
    assert command.args.messages()[0].content() == message
    assert most <= 65536 + 100


def test_the_sink_is_closed_once_the_command_was_answered() -> None:
    reader, sinks = streaming_reader()
    message = b"y" * (STREAM_AT + 1)
    feed_all(reader, b"a APPEND INBOX {%d+}\r\n" % len(message) + message + b"\r\n", 1 << 20)
    assert reader.next_event() is None  # the server asks for more: "a" was answered
    assert sinks[0].closed


def test_a_small_literal_stays_in_memory() -> None:
    reader, sinks = streaming_reader()
    events, _ = feed_all(reader, b"a APPEND INBOX {5+}\r\nhello\r\n", 1024)
    command = events[0]
    assert isinstance(command, Command)
    assert isinstance(command.args, Append)
    assert command.args.message == b"hello"
    assert sinks == []


def test_a_refused_command_closes_its_sink() -> None:
    reader, sinks = streaming_reader()
    reader.max_append_size = 3 * STREAM_AT
    big = b"z" * (STREAM_AT + 1)
    # The second message takes the command past its limit: refused, the first sink closed.
    data = b"a APPEND INBOX {%d+}\r\n" % len(big) + big + b" {%d+}\r\n" % (3 * STREAM_AT)
    events, _ = feed_all(reader, data, 1 << 20)
    assert [type(e) for e in events] == [TooBig]
    assert sinks[0].closed


def test_closing_the_reader_mid_literal_closes_the_sink() -> None:
    reader, sinks = streaming_reader()
    reader.feed(b"a APPEND INBOX {%d+}\r\n" % (2 * STREAM_AT) + b"x" * 1000)
    assert reader.next_event() is None
    reader.close()
    assert sinks[0].closed


@given(
    st.lists(st.integers(min_value=1, max_value=3 * STREAM_AT), min_size=1, max_size=3),
    st.integers(min_value=1000, max_value=300_000),
)
def test_every_message_arrives_whole_whatever_the_chunking(sizes: list[int], chunk: int) -> None:
    reader, _ = streaming_reader()
    reader.max_append_size = 10 * STREAM_AT
    messages = [bytes([65 + i]) * size for i, size in enumerate(sizes)]
    data = b"a APPEND INBOX"
    for body in messages:
        data += b" {%d+}\r\n" % len(body) + body
    events, _ = feed_all(reader, data + b"\r\n", chunk)
    [command] = events
    assert isinstance(command, Command)
    assert isinstance(command.args, Append)
    assert [m.content() for m in command.args.messages()] == messages
