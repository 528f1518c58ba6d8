"""Domains, accounts, passwords and alias resolution."""

from __future__ import annotations

import pytest

from postroom import store
from postroom.db import Conn
from postroom.errors import AlreadyExists, AuthenticationFailed, InvalidInput, NotFound
from tests.support import Tenant


async def test_new_account_has_the_standard_folders_with_special_use(tenant: Tenant) -> None:
    account = await tenant.account("alice")
    boxes = {m.name: m.special_use for m in await store.list_mailboxes(tenant.conn, account.id)}
    assert boxes == {
        "INBOX": None,
        "Sent": "\\Sent",
        "Drafts": "\\Drafts",
        "Trash": "\\Trash",
        "Junk": "\\Junk",
        "Archive": "\\Archive",
    }


async def test_password_is_stored_as_argon2id_hash(tenant: Tenant) -> None:
    await tenant.account("alice", "correct horse")
    cur = await tenant.conn.execute(
        "SELECT password_hash FROM accounts WHERE address = %s", (tenant.address("alice"),)
    )
    row = await cur.fetchone()
    assert row is not None
    assert row["password_hash"].startswith("$argon2id$")
    assert "correct horse" not in row["password_hash"]


async def test_right_password_authenticates(tenant: Tenant) -> None:
    account = await tenant.account("alice", "correct horse")
    found = await store.authenticate(tenant.conn, tenant.address("Alice"), "correct horse")
    assert found.id == account.id


async def test_wrong_password_is_refused(tenant: Tenant) -> None:
    await tenant.account("alice", "correct horse")
    with pytest.raises(AuthenticationFailed):
        await store.authenticate(tenant.conn, tenant.address("alice"), "wrong horse")


async def test_unknown_user_is_refused_like_a_wrong_password(tenant: Tenant) -> None:
    with pytest.raises(AuthenticationFailed, match=r"^authentication failed$"):
        await store.authenticate(tenant.conn, tenant.address("nobody"), "x")


async def test_disabled_account_cannot_log_in(tenant: Tenant) -> None:
    await tenant.account("alice", "pw")
    await store.update_account(tenant.conn, tenant.address("alice"), disabled=True)
    with pytest.raises(AuthenticationFailed):
        await store.authenticate(tenant.conn, tenant.address("alice"), "pw")


async def test_changed_password_replaces_the_old_one(tenant: Tenant) -> None:
    await tenant.account("alice", "old-pw")
    await store.set_password(tenant.conn, tenant.address("alice"), "new-pw")
    await store.authenticate(tenant.conn, tenant.address("alice"), "new-pw")
    with pytest.raises(AuthenticationFailed):
        await store.authenticate(tenant.conn, tenant.address("alice"), "old-pw")


async def test_duplicate_account_is_refused(tenant: Tenant) -> None:
    await tenant.account("alice")
    with pytest.raises(AlreadyExists, match="already exists"):
        await tenant.account("ALICE")


async def test_account_in_unknown_domain_is_refused(conn: Conn) -> None:
    with pytest.raises(NotFound, match="not a local domain"):
        await store.create_account(conn, "bob@nowhere-at-all.test", "pw")


@pytest.mark.parametrize(
    "address",
    ["no-at-sign", "@example.test", "a b@example.test", "a@exa mple.test", "a@-bad-.test"],
    ids=["no-at", "no-local", "space-local", "space-domain", "bad-label"],
)
async def test_malformed_address_is_refused(tenant: Tenant, address: str) -> None:
    with pytest.raises(InvalidInput):
        await store.create_account(tenant.conn, address, "pw")


async def test_duplicate_domain_is_refused(tenant: Tenant) -> None:
    with pytest.raises(AlreadyExists):
        await store.create_domain(tenant.conn, tenant.domain.name.upper())


async def test_domain_with_accounts_cannot_be_removed(tenant: Tenant) -> None:
    await tenant.account("alice")
    with pytest.raises(InvalidInput, match="still has accounts"):
        await store.delete_domain(tenant.conn, tenant.domain.name)


async def test_account_resolves_to_itself_case_insensitively(tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    resolution = await store.resolve(tenant.conn, tenant.address("ALICE"))
    assert resolution is not None
    assert [a.id for a in resolution.accounts] == [alice.id]


async def test_plus_address_resolves_to_the_user(tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    resolution = await store.resolve(tenant.conn, tenant.address("alice+lists"))
    assert resolution is not None
    assert [a.id for a in resolution.accounts] == [alice.id]


async def test_exact_alias_resolves_to_its_destination(tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    await store.add_alias(tenant.conn, tenant.address("postmaster"), tenant.address("alice"))
    resolution = await store.resolve(tenant.conn, tenant.address("postmaster"))
    assert resolution is not None
    assert [a.id for a in resolution.accounts] == [alice.id]


async def test_alias_fans_out_to_local_and_remote(tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    bob = await tenant.account("bob")
    for dest in (tenant.address("alice"), tenant.address("bob"), "Carol@Remote.example"):
        await store.add_alias(tenant.conn, tenant.address("team"), dest)
    resolution = await store.resolve(tenant.conn, tenant.address("team"))
    assert resolution is not None
    assert {a.id for a in resolution.accounts} == {alice.id, bob.id}
    assert resolution.remote == ("Carol@remote.example",)


async def test_catch_all_takes_unknown_addresses_only(tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    bob = await tenant.account("bob")
    await store.add_alias(tenant.conn, "@" + tenant.domain.name, tenant.address("alice"))
    unknown = await store.resolve(tenant.conn, tenant.address("whoever"))
    known = await store.resolve(tenant.conn, tenant.address("bob"))
    assert unknown is not None
    assert [a.id for a in unknown.accounts] == [alice.id]
    assert known is not None
    assert [a.id for a in known.accounts] == [bob.id]


async def test_unknown_local_user_resolves_empty(tenant: Tenant) -> None:
    resolution = await store.resolve(tenant.conn, tenant.address("nobody"))
    assert resolution is not None
    assert resolution.empty


async def test_non_local_domain_does_not_resolve(conn: Conn) -> None:
    assert await store.resolve(conn, "someone@elsewhere.example") is None


async def test_alias_loop_terminates(tenant: Tenant) -> None:
    await store.add_alias(tenant.conn, tenant.address("a"), tenant.address("b"))
    await store.add_alias(tenant.conn, tenant.address("b"), tenant.address("a"))
    resolution = await store.resolve(tenant.conn, tenant.address("a"))
    assert resolution is not None
    assert resolution.empty


async def test_account_may_send_as_its_exclusive_aliases(tenant: Tenant) -> None:
    alice = await tenant.account("alice")
    await tenant.account("bob")
    await store.add_alias(tenant.conn, tenant.address("sales"), tenant.address("alice"))
    await store.add_alias(tenant.conn, tenant.address("team"), tenant.address("alice"))
    await store.add_alias(tenant.conn, tenant.address("team"), tenant.address("bob"))
    assert await store.addresses_of(tenant.conn, alice.id) == [
        tenant.address("alice"),
        tenant.address("sales"),
    ]
