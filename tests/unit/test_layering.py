"""The rules of the layout, checked: services never import each other, the shared library
imports no service, and SQL is written only in the store (and the migrations in db.py)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {
    "smtp_in": ROOT / "services/smtp-in/postroom/smtp_in",
    "delivery": ROOT / "services/delivery-worker/postroom/delivery",
    "access": ROOT / "services/access/postroom/access",
    "api": ROOT / "services/mailbox-api/postroom/api",
}
SHARED = ROOT / "shared/postroom"
SQL_HOMES = (SHARED / "store", SHARED / "db.py")
_SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|LISTEN|NOTIFY|CREATE|ALTER|DROP|LOCK|"
                  r"TRUNCATE|COPY|SET|VACUUM)\b", re.I)  # fmt: skip


def modules(folder: Path) -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(folder.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def imported(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def service_of(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) >= 2 and parts[0] == "postroom" and parts[1] in SERVICES:
        return parts[1]
    return None


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_service_imports_no_other_service(service: str) -> None:
    found = [
        f"{path.relative_to(ROOT)}: {module}"
        for path, tree in modules(SERVICES[service])
        for module in imported(tree)
        if service_of(module) not in (None, service)
    ]
    assert found == []


def test_the_shared_library_imports_no_service() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {module}"
        for path, tree in modules(SHARED)
        for module in imported(tree)
        if service_of(module) is not None
    ]
    assert found == []


def sql_calls(tree: ast.Module) -> Iterator[int]:
    """Lines that hand a SQL string to something's execute()."""
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in ("execute", "executemany") or not node.args:
            continue
        first = node.args[0]
        text = ""
        if isinstance(first, ast.Constant) and isinstance(first.value, str | bytes):
            text = first.value if isinstance(first.value, str) else first.value.decode()
        elif isinstance(first, ast.JoinedStr):
            text = "".join(
                v.value
                for v in first.values
                if isinstance(v, ast.Constant) and isinstance(v.value, str)
            )
        if _SQL.match(text):
            yield node.lineno


def test_sql_is_written_only_in_the_store() -> None:
    folders = [SHARED, *SERVICES.values()]
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for folder in folders
        for path, tree in modules(folder)
        if not any(path == home or home in path.parents for home in SQL_HOMES)
        for line in sql_calls(tree)
    ]
    assert found == []


def test_the_sql_check_sees_sql() -> None:
    source = [
        "async def f(c):",
        '    await c.execute("SELECT 1")',
        '    await c.execute(f"UPDATE t SET a = {x}")',
    ]
    tree = ast.parse("\n".join(source))
    assert list(sql_calls(tree)) == [2, 3]
