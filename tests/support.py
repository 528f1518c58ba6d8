"""Helpers that tests import (fixtures live in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from postroom import store
from postroom.db import Conn
from postroom.store.types import Account, Domain


@dataclass
class Tenant:
    """A domain of its own for one test, so tests sharing the database never collide."""

    conn: Conn
    domain: Domain

    def address(self, local: str) -> str:
        return f"{local}@{self.domain.name}"

    async def account(self, local: str, password: str = "secret-1", **kw: Any) -> Account:
        return await store.create_account(self.conn, self.address(local), password, **kw)
