"""`postroom dkim` and `postroom dns show`, run as real processes against the test database."""

from __future__ import annotations

import secrets
import stat
from pathlib import Path

import psycopg
import pytest

from tests.integration.test_cli import add_domain, cli


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"POSTROOM_DATA_DIR": str(tmp_path / "data"), "POSTROOM_HOSTNAME": "mx.cli.test"}


@pytest.fixture
def domain(database_url: str) -> str:
    name = f"dk{secrets.token_hex(4)}.test"
    add_domain(database_url, name)
    return name


def test_generate_prints_the_record_to_publish(
    database_url: str, env: dict[str, str], domain: str
) -> None:
    result = cli(
        "dkim", "generate", domain, "--selector", "s1", "--algorithm", "ed25519",
        database_url=database_url, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    first, record = result.stdout.splitlines()
    assert first == f"added DKIM key s1 (ed25519) for {domain}; publish:"
    assert record.startswith(f's1._domainkey.{domain}. 3600 IN TXT "v=DKIM1; k=ed25519; p=')


def test_the_private_key_is_sealed_and_the_key_file_private(
    database_url: str, env: dict[str, str], domain: str
) -> None:
    cli("dkim", "generate", domain, "--selector", "s1", database_url=database_url, env=env)
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT sealed_key FROM dkim_keys k JOIN domains d ON d.id = k.domain_id"
            " WHERE d.name = %s",
            (domain,),
        ).fetchone()
    assert row is not None
    assert b"PRIVATE KEY" not in bytes(row[0])
    key_file = Path(env["POSTROOM_DATA_DIR"]) / "keys" / "encryption.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700


def test_list_shows_each_key_with_its_state(
    database_url: str, env: dict[str, str], domain: str
) -> None:
    cli("dkim", "generate", domain, "--selector", "a1", database_url=database_url, env=env)
    cli(
        "dkim", "generate", domain, "--selector", "e1", "--algorithm", "ed25519",
        database_url=database_url, env=env,
    )  # fmt: skip
    lines = cli("dkim", "list", domain, database_url=database_url, env=env).stdout.splitlines()
    assert sorted(line.split()[:4] for line in lines) == [
        [domain, "a1", "rsa", "active"],
        [domain, "e1", "ed25519", "active"],
    ]


def test_a_taken_selector_is_refused(database_url: str, env: dict[str, str], domain: str) -> None:
    cli("dkim", "generate", domain, "--selector", "s1", database_url=database_url, env=env)
    result = cli("dkim", "generate", domain, "--selector", "s1", database_url=database_url, env=env)
    assert result.returncode == 1
    assert result.stderr == f"postroom: error: domain {domain} already has a DKIM selector s1\n"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--algorithm", "dsa"], "unknown algorithm 'dsa': use rsa or ed25519"),
        (["--selector", "bad_selector"], "bad DKIM selector 'bad_selector': one DNS label"),
    ],
    ids=["algorithm", "selector"],
)
def test_bad_input_is_one_line_and_exit_1(
    database_url: str, env: dict[str, str], domain: str, args: list[str], error: str
) -> None:
    result = cli("dkim", "generate", domain, *args, database_url=database_url, env=env)
    assert result.returncode == 1
    assert result.stderr.startswith(f"postroom: error: {error}")


def test_an_unknown_domain_is_refused(database_url: str, env: dict[str, str]) -> None:
    result = cli("dkim", "generate", "nowhere.test", database_url=database_url, env=env)
    assert (result.returncode, result.stderr) == (
        1,
        "postroom: error: domain nowhere.test does not exist\n",
    )


def test_rotate_publishes_first_then_switches(
    database_url: str, env: dict[str, str], domain: str
) -> None:
    cli("dkim", "generate", domain, "--selector", "old", database_url=database_url, env=env)
    first = cli("dkim", "rotate", domain, database_url=database_url, env=env)
    assert first.returncode == 0, first.stderr
    assert "publish these" in first.stdout
    states = cli("dkim", "list", domain, database_url=database_url, env=env).stdout
    new = next(line.split()[1] for line in states.splitlines() if "pending" in line)
    assert (
        f"{new}._domainkey.{domain}."
        in cli("dns", "show", domain, database_url=database_url, env=env).stdout
    )
    second = cli("dkim", "rotate", domain, database_url=database_url, env=env)
    assert second.stdout == f"{domain} now signs with {new}; the old keys are retired\n"
    listed = cli("dkim", "list", domain, database_url=database_url, env=env).stdout
    assert {tuple(line.split()[1:4:2]) for line in listed.splitlines()} == {
        ("old", "retired"),
        (new, "active"),
    }


def test_rotate_without_a_key_says_generate_one(
    database_url: str, env: dict[str, str], domain: str
) -> None:
    result = cli("dkim", "rotate", domain, database_url=database_url, env=env)
    assert result.returncode == 1
    assert "has no active DKIM key to rotate" in result.stderr


def test_remove_deletes_the_key(database_url: str, env: dict[str, str], domain: str) -> None:
    cli("dkim", "generate", domain, "--selector", "s1", database_url=database_url, env=env)
    result = cli("dkim", "remove", domain, "S1", database_url=database_url, env=env)
    assert result.stdout == f"removed DKIM key s1 of {domain}\n"
    assert (
        cli("dkim", "list", domain, database_url=database_url, env=env).stdout == "no DKIM keys\n"
    )
    again = cli("dkim", "remove", domain, "s1", database_url=database_url, env=env)
    assert again.stderr == f"postroom: error: domain {domain} has no DKIM selector s1\n"


def test_dns_show_prints_every_record_the_domain_needs(
    database_url: str, env: dict[str, str], domain: str
) -> None:
    cli("dkim", "generate", domain, "--selector", "e1", "--algorithm", "ed25519",
        database_url=database_url, env=env)  # fmt: skip
    out = cli("dns", "show", domain, database_url=database_url, env=env).stdout
    records = [line for line in out.splitlines() if not line.startswith(";")]
    d = domain
    assert records[0] == f"{d}. 3600 IN MX 10 mx.cli.test."
    assert records[1] == f'{d}. 3600 IN TXT "v=spf1 mx -all"'
    assert records[2].startswith(f'e1._domainkey.{d}. 3600 IN TXT "v=DKIM1; k=ed25519; p=')
    assert f'_dmarc.{d}. 3600 IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@{d}"' in records
    assert any(r.startswith(f'_mta-sts.{d}. 3600 IN TXT "v=STSv1; id=') for r in records)
    assert f'_smtp._tls.{d}. 3600 IN TXT "v=TLSRPTv1; rua=mailto:postmaster@{d}"' in records
    assert f"_submissions._tcp.{d}. 3600 IN SRV 0 1 2465 mx.cli.test." in records
    assert f"_imaps._tcp.{d}. 3600 IN SRV 0 1 2993 mx.cli.test." in records
    assert f"autoconfig.{d}. 3600 IN CNAME mx.cli.test." in records
