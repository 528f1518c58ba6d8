"""`postroom dns check` against a real DNS server: a correct zone, then each record missing or
wrong."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from postroom import dkim_admin, dns_records
from postroom.config import Settings, load_settings
from postroom.db import Conn
from postroom.dns import Resolver
from postroom.dns_check import check
from postroom.store import dkim as dkim_store
from tests.dns_server import DnsServer, Record
from tests.integration.test_cli import cli
from tests.support import Tenant
from tests.zone import served

HOST = "mx.check.test"
# The host's own addresses: a name may point at it with A records instead of a CNAME.
HOST_ADDRESSES = [Record(HOST, "A", "127.0.0.7"), Record("other.test", "A", "127.0.0.8")]

# MX, SPF, one DKIM key, DMARC, MTA-STS and its host, TLS-RPT, six SRV, autoconfig, autodiscover.
RECORDS = 15

WRONG = {
    "mx": "10 other.test.",
    "spf": "v=spf1 a:other.test -all",
    "dkim": "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
    "dmarc": "v=DMARC1; p=bogus",
    "mta-sts": "v=STSv1; id=20200101",
    "mta-sts-host": "other.test.",
    "tls-rpt": "v=TLSRPTv1;",
    "srv": "0 1 9999 mx.check.test.",
    "autoconfig": "other.test.",
    "autodiscover": "other.test.",
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"POSTROOM_HOSTNAME": HOST, "POSTROOM_DATA_DIR": str(tmp_path)})


@pytest.fixture
async def records(tenant: Tenant, settings: Settings) -> list[dns_records.Record]:
    domain = tenant.domain.name
    await dkim_admin.generate(tenant.conn, settings, domain, algorithm="ed25519", selector="e1")
    keys = await dkim_store.list_keys(tenant.conn, domain)
    return dns_records.required_records(domain, settings, keys)


def ids(records: list[dns_records.Record]) -> list[str]:
    return [f"{r.purpose}:{r.name.split('.')[0]}" for r in records]


async def findings(server: DnsServer, records: list[dns_records.Record]) -> dict[str, str]:
    found = await check(Resolver(server.servers, timeout=3), records, HOST)
    return dict(zip(ids(records), (f.status for f in found), strict=True))


async def test_every_record_of_a_correct_zone_is_ok(
    records: list[dns_records.Record], dns_server: Callable[..., DnsServer]
) -> None:
    assert len(records) == RECORDS
    server = dns_server([*served(records), *HOST_ADDRESSES])
    assert set((await findings(server, records)).values()) == {"ok"}


async def test_names_with_our_addresses_instead_of_a_cname_are_ok(
    records: list[dns_records.Record], dns_server: Callable[..., DnsServer]
) -> None:
    by_address = [
        Record(r.name, "A", "127.0.0.7") if r.type == "CNAME" else Record(r.name, r.type, r.value)
        for r in records
    ]
    server = dns_server([*by_address, *HOST_ADDRESSES])
    assert set((await findings(server, records)).values()) == {"ok"}


@pytest.mark.parametrize("index", range(RECORDS))
async def test_each_record_left_out_is_missing_and_only_it(
    records: list[dns_records.Record], dns_server: Callable[..., DnsServer], index: int
) -> None:
    left_out = records[index]
    server = dns_server([*served(r for r in records if r != left_out), *HOST_ADDRESSES])
    result = await findings(server, records)
    name = ids(records)[index]
    assert result.pop(name) == "missing"
    assert set(result.values()) == {"ok"}


@pytest.mark.parametrize("index", range(RECORDS))
async def test_each_record_with_another_value_is_different_and_only_it(
    records: list[dns_records.Record], dns_server: Callable[..., DnsServer], index: int
) -> None:
    wrong = dataclasses.replace(records[index], value=WRONG[records[index].purpose])
    zone = [wrong if i == index else r for i, r in enumerate(records)]
    server = dns_server([*served(zone), *HOST_ADDRESSES])
    result = await findings(server, records)
    assert result.pop(ids(records)[index]) == "different"
    assert set(result.values()) == {"ok"}


async def test_two_spf_records_are_different(
    records: list[dns_records.Record], dns_server: Callable[..., DnsServer], tenant: Tenant
) -> None:
    extra = Record(tenant.domain.name, "TXT", "v=spf1 -all")
    server = dns_server([*served(records), extra, *HOST_ADDRESSES])
    [spf] = [
        f for f in await check(Resolver(server.servers), records, HOST) if f.record.purpose == "spf"
    ]
    assert (spf.status, spf.note) == ("different", "more than one SPF record (permerror)")


async def test_a_server_that_does_not_answer_is_an_error_not_ok(
    records: list[dns_records.Record], conn: Conn
) -> None:
    # 127.0.0.1 port 9 (discard): nothing answers DNS there.
    found = await check(Resolver([("127.0.0.1", 9)], timeout=0.5), records[:1], HOST)
    assert found[0].status == "error"


def test_the_command_exits_0_on_a_correct_zone_and_1_naming_what_to_fix(
    database_url: str, dns_server: Callable[..., DnsServer], tmp_path: Path
) -> None:
    domain = f"c{secrets.token_hex(4)}.test"
    env = {"POSTROOM_HOSTNAME": HOST, "POSTROOM_DATA_DIR": str(tmp_path)}
    cli("domain", "add", domain, database_url=database_url, env=env)
    cli("dkim", "generate", domain, "--algorithm", "ed25519", "--selector", "e1",
        database_url=database_url, env=env)  # fmt: skip
    shown = cli("dns", "show", domain, database_url=database_url, env=env).stdout
    # The zone is what `dns show` printed: its lines parsed back into records.
    zone = parse_zone(shown)
    good = dns_server([*zone, *HOST_ADDRESSES])
    result = cli("dns", "check", domain, database_url=database_url,
                 env={**env, "POSTROOM_DNS_RESOLVERS": good.resolvers})  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == f"-- {RECORDS} ok, 0 to fix"
    assert (
        result.stdout.splitlines()[0]
        == f"ok        MX    {domain}.  (mail for the domain comes here)"
    )
    without_dmarc = dns_server(
        [r for r in [*zone, *HOST_ADDRESSES] if not r.name.startswith("_dmarc")]
    )
    result = cli("dns", "check", domain, database_url=database_url,
                 env={**env, "POSTROOM_DNS_RESOLVERS": without_dmarc.resolvers})  # fmt: skip
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    at = lines.index(f"missing   TXT   _dmarc.{domain}.  (DMARC: what to do with mail that fails)")
    assert lines[at + 1] == (
        f'          publish: _dmarc.{domain}. 3600 IN TXT "v=DMARC1; p=quarantine; '
        f'rua=mailto:postmaster@{domain}"'
    )
    assert lines[-1] == f"-- {RECORDS - 1} ok, 1 to fix"


def parse_zone(text: str) -> list[Record]:
    """Zone-file lines as `dns show` prints them, back into records for the test server."""
    import re

    records = []
    for line in text.splitlines():
        if line.startswith(";") or not line.strip():
            continue
        name, _ttl, _class, rtype, data = line.split(None, 4)
        if rtype == "TXT":
            data = "".join(re.findall(r'"([^"]*)"', data))
        records.append(Record(name.rstrip("."), rtype, data))
    return records
