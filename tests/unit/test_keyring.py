"""Private keys sealed under one secret: the setting, or a key file made once in the data dir."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from postroom import keyring
from postroom.config import load_settings
from postroom.errors import ConfigError


def test_sealed_then_unsealed_gives_the_key_back(tmp_path: Path) -> None:
    settings = load_settings({"POSTROOM_DATA_DIR": str(tmp_path)})
    sealed = keyring.seal(settings, b"-----BEGIN PRIVATE KEY-----")
    assert b"PRIVATE" not in sealed
    assert keyring.unseal(settings, sealed) == b"-----BEGIN PRIVATE KEY-----"


def test_without_the_setting_a_key_file_is_made_once_with_mode_600(tmp_path: Path) -> None:
    settings = load_settings({"POSTROOM_DATA_DIR": str(tmp_path)})
    keyring.seal(settings, b"x")
    path = keyring.key_file(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_bytes()
    keyring.seal(settings, b"y")
    assert path.read_bytes() == first


def test_the_setting_wins_over_the_key_file(tmp_path: Path) -> None:
    secret = Fernet.generate_key().decode()
    env = {"POSTROOM_DATA_DIR": str(tmp_path), "POSTROOM_KEY_ENCRYPTION_KEY": secret}
    sealed = keyring.seal(load_settings(env), b"x")
    assert Fernet(secret.encode()).decrypt(sealed) == b"x"
    assert not keyring.key_file(load_settings(env)).exists()


def test_another_secret_cannot_open_it_and_says_so(tmp_path: Path) -> None:
    sealed = keyring.seal(load_settings({"POSTROOM_DATA_DIR": str(tmp_path / "a")}), b"x")
    with pytest.raises(ConfigError, match="cannot be opened with this key encryption key"):
        keyring.unseal(load_settings({"POSTROOM_DATA_DIR": str(tmp_path / "b")}), sealed)


def test_a_malformed_secret_names_the_setting(tmp_path: Path) -> None:
    settings = load_settings({"POSTROOM_KEY_ENCRYPTION_KEY": "short"})
    with pytest.raises(ConfigError, match="POSTROOM_KEY_ENCRYPTION_KEY"):
        keyring.seal(settings, b"x")


def test_the_secret_is_not_shown_in_the_settings(tmp_path: Path) -> None:
    secret = Fernet.generate_key().decode()
    settings = load_settings({"POSTROOM_KEY_ENCRYPTION_KEY": secret})
    assert secret not in repr(settings)
