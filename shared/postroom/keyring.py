"""Private keys kept in Postgres sealed (Fernet: AES-128-CBC + HMAC-SHA256) under one secret.

The secret is POSTROOM_KEY_ENCRYPTION_KEY (a Fernet key: 32 url-safe base64-encoded bytes)
or, when unset, a key file made once in the data dir with mode 0600. Every process that
signs must read the same secret: in a cluster set the variable for all of them.
"""

from __future__ import annotations

import fcntl
import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from postroom.config import Settings
from postroom.errors import ConfigError


def key_file(settings: Settings) -> Path:
    return settings.data_dir / "keys" / "encryption.key"


def read_or_make(path: Path) -> bytes:
    """The secret kept in ``path``, made once (mode 0600) when it is not there yet."""
    if not path.is_file():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Several processes may start at once on one data dir: one of them makes the key.
        with (path.parent / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not path.is_file():
                tmp = path.with_suffix(".tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(Fernet.generate_key())
                tmp.replace(path)
    return path.read_bytes().strip()


@lru_cache(maxsize=8)
def _fernet(secret: bytes) -> Fernet:
    try:
        return Fernet(secret)
    except ValueError:
        raise ConfigError(
            "POSTROOM_KEY_ENCRYPTION_KEY: not a key of 32 url-safe base64-encoded bytes"
        ) from None


def fernet(settings: Settings) -> Fernet:
    if settings.key_encryption_key is not None:
        return _fernet(settings.key_encryption_key.get_secret_value().encode())
    return _fernet(read_or_make(key_file(settings)))


def seal(settings: Settings, secret: bytes) -> bytes:
    return fernet(settings).encrypt(secret)


def unseal(settings: Settings, sealed: bytes) -> bytes:
    try:
        return fernet(settings).decrypt(sealed)
    except InvalidToken:
        raise ConfigError(
            "a stored private key cannot be opened with this key encryption key "
            "(POSTROOM_KEY_ENCRYPTION_KEY or the data dir's keys/encryption.key): every "
            "process must use the one that sealed it"
        ) from None
