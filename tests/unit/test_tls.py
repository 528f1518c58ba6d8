"""TLS material: the configured pair, or a self-signed one made once in the data dir."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from postroom.config import load_settings
from postroom.errors import ConfigError
from postroom.tls import certificate_paths, server_context


def test_self_signed_pair_is_made_once_in_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings({"POSTROOM_DATA_DIR": str(tmp_path), "POSTROOM_HOSTNAME": "mx.test"})
    cert, key = certificate_paths(settings)
    assert cert == tmp_path / "tls" / "cert.pem"
    assert key.stat().st_mode & 0o077 == 0
    first = cert.read_bytes()
    certificate_paths(settings)
    assert cert.read_bytes() == first
    assert isinstance(server_context(settings), ssl.SSLContext)


def test_configured_pair_is_used(tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("mx.test")
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    settings = load_settings({"POSTROOM_TLS_CERT": str(cert), "POSTROOM_TLS_KEY": str(key)})
    assert certificate_paths(settings) == (cert, key)
    server_context(settings)


def test_only_one_of_the_pair_is_an_error(tmp_path: Path) -> None:
    settings = load_settings({"POSTROOM_TLS_CERT": str(tmp_path / "c.pem")})
    with pytest.raises(ConfigError, match="set both POSTROOM_TLS_CERT and POSTROOM_TLS_KEY"):
        certificate_paths(settings)


def test_missing_file_names_the_variable(tmp_path: Path) -> None:
    settings = load_settings(
        {"POSTROOM_TLS_CERT": str(tmp_path / "c.pem"), "POSTROOM_TLS_KEY": str(tmp_path / "k")}
    )
    with pytest.raises(ConfigError, match=r"POSTROOM_TLS_CERT: .* is not a readable file"):
        certificate_paths(settings)


def test_the_self_signed_fallback_warns_loudly(tmp_path: Path) -> None:
    import structlog.testing

    settings = load_settings({"POSTROOM_DATA_DIR": str(tmp_path), "POSTROOM_HOSTNAME": "mx.test"})
    with structlog.testing.capture_logs() as logs:
        certificate_paths(settings)
    [event] = [e for e in logs if e["event"] == "tls.self_signed"]
    assert event["log_level"] == "warning"
    assert "NO TLS CERTIFICATE CONFIGURED" in event["warning"]


def test_a_configured_pair_does_not_warn(tmp_path: Path) -> None:
    import structlog.testing

    ca = trustme.CA()
    issued = ca.issue_cert("mx.test")
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    settings = load_settings({"POSTROOM_TLS_CERT": str(cert), "POSTROOM_TLS_KEY": str(key)})
    with structlog.testing.capture_logs() as logs:
        certificate_paths(settings)
    assert not [e for e in logs if e["event"] == "tls.self_signed"]
