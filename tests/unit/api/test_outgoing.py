"""A sent message built into a spool file: the uploads streamed in where their placeholders
were, exactly as the email package would have encoded them, within the budget."""

from __future__ import annotations

import base64
import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.api import compose, outgoing
from postroom.errors import InvalidInput, LimitExceeded
from postroom.spool import InflightBudget, SpoolFile

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class Source:
    """An upload that answers reads with at most ``step`` octets (short reads included)."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data = data
        self.step = step
        self.offset = 0

    async def read(self, size: int = -1) -> bytes:
        size = len(self.data) if size < 0 else size
        piece = self.data[self.offset : self.offset + min(size, self.step)]
        self.offset += len(piece)
        return piece


async def _build(
    tmp_path: Path, files: list[bytes], step: int, budget: InflightBudget | None = None
) -> tuple[SpoolFile, int]:
    uploads, placeholders = [], []
    for n, data in enumerate(files):
        content = outgoing.placeholder()
        uploads.append(compose.Upload(f"f{n}.bin", "application/octet-stream", content))
        placeholders.append(
            outgoing.Placeholder(outgoing.placeholder_line(content), Source(data, step), len(data))
        )
    draft = compose.Draft(sender="a@x.test", to=["b@y.test"], text="see", attachments=uploads)
    skeleton = compose.build(draft, domain="x.test", now=NOW).as_bytes()
    spool = SpoolFile(tmp_path, budget)
    await outgoing.write(spool, skeleton, placeholders)
    return spool, outgoing.message_size(skeleton, placeholders)


def _attachments(raw: bytes) -> list[bytes]:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return [p.get_payload(decode=True) for p in parsed.iter_attachments()]  # type: ignore[misc]


@given(octets=st.integers(min_value=0, max_value=5000))
def test_encoded_size_is_the_length_of_crlf_base64(octets: int) -> None:
    expected = base64.encodebytes(b"\x00" * octets).replace(b"\n", b"\r\n")
    assert outgoing.encoded_size(octets) == len(expected)


@settings(max_examples=40, deadline=None)
@given(
    files=st.lists(st.binary(max_size=700), min_size=1, max_size=3),
    step=st.integers(min_value=1, max_value=300),
)
async def test_uploads_arrive_exactly_whatever_the_reads_return(
    files: list[bytes], step: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    spool, size = await _build(tmp_path_factory.mktemp("spool"), files, step)
    raw = spool.read_all()
    spool.close()
    assert _attachments(raw) == files
    assert size == len(raw)


async def test_lines_are_76_characters_ending_in_crlf(tmp_path: Path) -> None:
    spool, _ = await _build(tmp_path, [bytes(range(256)) * 3000], step=100_000)
    raw = spool.read_all()
    spool.close()
    body = raw.split(b"Content-Disposition: attachment", 1)[1].split(b"\r\n\r\n", 1)[1]
    lines = body.split(b"\r\n--", 1)[0].rstrip(b"\r\n").split(b"\r\n")
    assert {len(line) for line in lines[:-1]} == {76}
    assert 0 < len(lines[-1]) <= 76


async def test_a_message_past_the_budget_raises_and_gives_its_octets_back(
    tmp_path: Path,
) -> None:
    budget = InflightBudget(64 * 1024)
    spool = SpoolFile(tmp_path, budget)
    placeholders = [outgoing.Placeholder(b"PLACEHOLDER\r\n", Source(b"x" * 100_000, 4096), 100_000)]
    with pytest.raises(LimitExceeded):
        await outgoing.write(spool, b"head\r\nPLACEHOLDER\r\ntail\r\n", placeholders)
    assert 0 < spool.size <= 64 * 1024
    spool.close()
    assert budget.in_use == 0


async def test_an_upload_shorter_than_its_size_is_invalid(tmp_path: Path) -> None:
    spool = SpoolFile(tmp_path)
    placeholders = [outgoing.Placeholder(b"P\r\n", Source(b"abc", 10), 10)]
    with pytest.raises(InvalidInput, match="shorter than its size"):
        await outgoing.write(spool, b"P\r\n", placeholders)
    spool.close()
