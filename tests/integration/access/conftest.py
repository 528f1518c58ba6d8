"""What the IMAP tests of this folder share: a server of their own per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.access.imap_support import ImapEndpoint, running_imap


@pytest.fixture
async def imap(database_url: str, tmp_path: Path) -> AsyncIterator[ImapEndpoint]:
    """An IMAP server on a free loopback port, on the run's database."""
    async with running_imap(database_url, tmp_path) as endpoint:
        yield endpoint
