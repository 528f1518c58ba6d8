"""Argon2id cost: RFC 9106's second recommended option unless POSTROOM_ARGON2_PARAMETERS says
otherwise (the tests' own processes use tiny parameters)."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from postroom import auth
from postroom.config import load_settings
from postroom.errors import ConfigError


def test_default_parameters_are_rfc_9106_second_option() -> None:
    assert auth.parameters("") == {"t": 3, "m": 65536, "p": 4}


def test_parameters_named_replace_the_defaults() -> None:
    assert auth.parameters("t=1, m=8,p=1") == {"t": 1, "m": 8, "p": 1}


def test_a_parameter_left_out_keeps_its_default() -> None:
    assert auth.parameters("t=2") == {"t": 2, "m": 65536, "p": 4}


@pytest.mark.parametrize("text", ["x=1", "t", "t=", "t=-1", "m=8k", "t=0", "p=0", "m=16,p=4"])
def test_bad_parameters_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="argon2 parameter"):
        auth.parameters(text)


def test_a_hash_of_other_parameters_verifies_and_asks_for_a_rehash() -> None:
    other = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1).hash("pw-1")
    assert auth.verify_password(other, "pw-1")
    assert not auth.verify_password(other, "pw-2")
    assert auth.needs_rehash(other)
    assert not auth.needs_rehash(auth.hash_password("pw-1"))


def test_bad_parameters_stop_the_process_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="POSTROOM_ARGON2_PARAMETERS"):
        load_settings({"POSTROOM_ARGON2_PARAMETERS": "t=0"})
