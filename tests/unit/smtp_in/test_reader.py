"""SMTP framing without I/O: command lines, and DATA unstuffed chunk by chunk (RFC 5321 §4.5.2)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from postroom.smtp_in import replies as R
from postroom.smtp_in.reader import MAX_LINE, BadLine, Content, EndOfData, Event, Line, Reader


def events(reader: Reader) -> list[Event]:
    out = []
    while (event := reader.next_event()) is not None:
        out.append(event)
    return out


def frame(wire: bytes, chunk: int, max_size: int = 1 << 20) -> tuple[bytes, EndOfData, bytes]:
    """Feed ``wire`` after DATA in chunks: (content, the end, the line that followed)."""
    reader = Reader()
    reader.begin_data(max_size)
    content = bytearray()
    for i in range(0, len(wire), chunk):
        reader.feed(wire[i : i + chunk])
        while (event := reader.next_event()) is not None:
            if isinstance(event, Content):
                content += event.data
            elif isinstance(event, EndOfData):
                held = reader.discard()  # what followed the terminator in this chunk
                return bytes(content), event, wire[min(i + chunk, len(wire)) - held :]
            else:
                raise AssertionError(f"a line inside DATA: {event!r}")
    raise AssertionError("DATA never ended")


def test_a_command_line_is_framed_without_its_crlf() -> None:
    reader = Reader()
    reader.feed(b"EHLO client.example\r\nNOOP\r\n")
    assert events(reader) == [Line(b"EHLO client.example"), Line(b"NOOP")]


def test_a_line_ended_by_a_bare_lf_is_refused() -> None:
    reader = Reader()
    reader.feed(b"NOOP\n")
    assert events(reader) == [BadLine(R.R500_BARE_LF)]


def test_an_overlong_line_is_answered_once_at_its_end() -> None:
    reader = Reader()
    for _ in range(10):
        reader.feed(b"x" * MAX_LINE)
        assert events(reader) == []
    reader.feed(b"\r\nNOOP\r\n")
    assert events(reader) == [BadLine(R.R500_LINE_TOO_LONG), Line(b"NOOP")]


def test_a_reader_holding_part_of_a_line_is_partial() -> None:
    reader = Reader()
    assert not reader.partial
    reader.feed(b"NO")
    assert events(reader) == []
    assert reader.partial


@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))),
    chunk=st.integers(min_value=1, max_value=64),
    tail=st.binary(max_size=20),
)
def test_dot_stuffing_round_trips_byte_for_byte(
    lines: list[bytes], chunk: int, tail: bytes
) -> None:
    content = b"".join(line + b"\r\n" for line in lines)
    stuffed = (b"\r\n" + content).replace(b"\r\n.", b"\r\n..")[2:]
    got, end, rest = frame(stuffed + b".\r\n" + tail, chunk)
    assert got == content
    assert end == EndOfData(None, len(content))
    assert rest == tail


@given(st.binary(max_size=200), st.integers(min_value=1, max_value=50))
def test_data_framing_never_accepts_a_bare_cr_or_lf(data: bytes, chunk: int) -> None:
    content, end, _rest = frame(data + b"\r\n.\r\n", chunk)
    if end.problem is not None:
        assert end.problem == R.R554_BARE_LINE_ENDING
        return
    stripped = content.replace(b"\r\n", b"")
    assert b"\r" not in stripped
    assert b"\n" not in stripped


def test_data_over_the_limit_is_discarded_but_framed() -> None:
    reader = Reader()
    reader.begin_data(1024)
    held = 0
    for _ in range(100):
        reader.feed(b"x" * 998 + b"\r\n")
        held += sum(len(e.data) for e in events(reader) if isinstance(e, Content))
    reader.feed(b".\r\nQUIT\r\n")
    tail = events(reader)
    assert isinstance(tail[-2], EndOfData)
    assert tail[-2].problem == R.R552_TOO_BIG
    assert tail[-1] == Line(b"QUIT")
    # Past the limit nothing more was handed on.
    assert held <= 1024 + 1000


def test_content_comes_out_before_the_terminator_arrives() -> None:
    """The sink sees the message as it arrives, not all at the end."""
    reader = Reader()
    reader.begin_data(1 << 20)
    reader.feed(b"Subject: x\r\n\r\n" + b"y" * 5000 + b"\r\n")
    got = events(reader)
    assert got
    assert all(isinstance(e, Content) for e in got)
    assert sum(len(e.data) for e in got if isinstance(e, Content)) > 5000
