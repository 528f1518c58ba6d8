"""TLS material: the configured pair, or a self-signed one made once in the data dir."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from postroom.config import load_settings
from postroom.errors import ConfigError
from postroom.tls import ServerTls, certificate_paths, server_context


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


# --- ServerTls: a new certificate for new connections, without a restart --------------------


def _write_pair(issued: trustme.LeafCert, cert: Path, key: Path) -> None:
    issued.private_key_pem.write_to_path(str(key))
    issued.cert_chain_pems[0].write_to_path(str(cert))


def _presented(context: ssl.SSLContext, ca: trustme.CA) -> bytes:
    """The certificate a handshake against ``context`` shows (memory BIOs, no sockets)."""
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_context.wrap_bio(c_in, c_out, server_hostname="mx.test")
    server = context.wrap_bio(s_in, s_out, server_side=True)
    done: set[str] = set()
    for _ in range(10):
        for name, side in (("client", client), ("server", server)):
            try:
                side.do_handshake()
                done.add(name)
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if done == {"client", "server"}:
            break
    der = client.getpeercert(binary_form=True)
    assert der is not None
    return der


@pytest.fixture
def configured(tmp_path: Path) -> tuple[trustme.CA, Path, Path, ServerTls]:
    ca = trustme.CA()
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    _write_pair(ca.issue_cert("mx.test"), cert, key)
    settings = load_settings({"POSTROOM_TLS_CERT": str(cert), "POSTROOM_TLS_KEY": str(key)})
    return ca, cert, key, ServerTls(settings)


def test_unchanged_files_are_not_loaded_again(
    configured: tuple[trustme.CA, Path, Path, ServerTls],
) -> None:
    _ca, _cert, _key, server_tls = configured
    assert server_tls.reload() is False


def test_a_replaced_certificate_is_presented_to_new_handshakes(
    configured: tuple[trustme.CA, Path, Path, ServerTls],
) -> None:
    ca, cert, key, server_tls = configured
    before = _presented(server_tls.context, ca)
    renewed = ca.issue_cert("mx.test")
    _write_pair(renewed, cert, key)
    assert server_tls.reload() is True
    after = _presented(server_tls.context, ca)
    assert after != before
    assert after == ssl.PEM_cert_to_DER_cert(renewed.cert_chain_pems[0].bytes().decode())


def test_a_pair_that_does_not_load_keeps_the_certificate_in_force(
    configured: tuple[trustme.CA, Path, Path, ServerTls],
) -> None:
    ca, cert, _key, server_tls = configured
    before = _presented(server_tls.context, ca)
    ca.issue_cert("mx.test").cert_chain_pems[0].write_to_path(str(cert))  # the old key
    assert server_tls.reload() is False
    assert _presented(server_tls.context, ca) == before


def test_an_acme_certificate_in_the_data_dir_replaces_the_self_signed_one(
    tmp_path: Path,
) -> None:
    settings = load_settings(
        {
            "POSTROOM_DATA_DIR": str(tmp_path),
            "POSTROOM_HOSTNAME": "mx.test",
            "POSTROOM_ACME_DIRECTORY": "https://acme.test/dir",
            "POSTROOM_ACME_CONTACT": "postmaster@mx.test",
        }
    )
    server_tls = ServerTls(settings)
    assert server_tls.paths[0] == tmp_path / "tls" / "cert.pem"
    ca = trustme.CA()
    folder = tmp_path / "tls" / "acme"
    folder.mkdir(parents=True)
    _write_pair(ca.issue_cert("mx.test"), folder / "chain.pem", folder / "key.pem")
    assert server_tls.reload() is True
    assert server_tls.paths == (folder / "chain.pem", folder / "key.pem")
    _presented(server_tls.context, ca)  # verifies against the ACME certificate's CA


def test_waiting_for_acme_the_self_signed_fallback_still_warns(tmp_path: Path) -> None:
    import structlog.testing

    settings = load_settings(
        {
            "POSTROOM_DATA_DIR": str(tmp_path),
            "POSTROOM_ACME_DIRECTORY": "https://acme.test/dir",
            "POSTROOM_ACME_CONTACT": "postmaster@mx.test",
        }
    )
    with structlog.testing.capture_logs() as logs:
        certificate_paths(settings)
    [event] = [e for e in logs if e["event"] == "tls.self_signed"]
    assert event["log_level"] == "warning"
    assert "no ACME certificate issued yet" in event["warning"]
