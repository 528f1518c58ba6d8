"""Where the running Postgres and Redis are: the settings, else what `postroom up` wrote down."""

from __future__ import annotations

from pathlib import Path

from postroom.config import Settings
from postroom.errors import ConfigError


def run_dir(settings: Settings) -> Path:
    return settings.data_dir / "run"


def database_url(settings: Settings) -> str:
    """POSTROOM_DATABASE_URL, or the embedded server's URL that `postroom up` wrote down."""
    if settings.database_url:
        return settings.database_url
    recorded = run_dir(settings) / "database_url"
    if recorded.is_file():
        return recorded.read_text(encoding="utf-8").strip()
    raise ConfigError(
        "POSTROOM_DATABASE_URL is not set and no embedded database is running in "
        f"{settings.data_dir} (start one with `postroom up`)"
    )


def redis_url(settings: Settings) -> str:
    """POSTROOM_REDIS_URL, or the embedded server's URL that `postroom up` wrote down."""
    if settings.redis_url:
        return settings.redis_url
    recorded = run_dir(settings) / "redis_url"
    if recorded.is_file():
        return recorded.read_text(encoding="utf-8").strip()
    raise ConfigError(
        "POSTROOM_REDIS_URL is not set and no embedded Redis is running in "
        f"{settings.data_dir} (start one with `postroom up`)"
    )
