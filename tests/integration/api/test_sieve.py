"""Filters and out-of-office over the API: raw scripts, rules from forms, the generated Sieve."""

from __future__ import annotations

from postroom.sieve import compile_script
from postroom.store import sieve as sieve_store
from tests.integration.api.conftest import User

RULE = {
    "name": "Receipts",
    "conditions": [{"field": "subject", "op": "contains", "value": "receipt"}],
    "actions": [{"type": "mark_read"}, {"type": "fileinto", "value": "Receipts"}],
}


async def test_put_list_get_delete_a_raw_script(alice: User) -> None:
    reply = await alice.client.put("/api/v1/sieve/scripts/main", json={"source": "keep;"})
    assert reply.status_code == 200
    assert (reply.json()["name"], reply.json()["active"], reply.json()["size"]) == (
        "main",
        False,
        5,
    )
    listed = (await alice.client.get("/api/v1/sieve/scripts")).json()
    assert [(s["name"], s["active"]) for s in listed] == [("main", False)]
    got = (await alice.client.get("/api/v1/sieve/scripts/main")).json()
    assert got["source"] == "keep;"
    assert (await alice.client.delete("/api/v1/sieve/scripts/main")).status_code == 204
    assert (await alice.client.get("/api/v1/sieve/scripts/main")).status_code == 404


async def test_a_script_that_does_not_compile_is_422_with_its_line(alice: User) -> None:
    reply = await alice.client.put(
        "/api/v1/sieve/scripts/bad", json={"source": "keep;\nfrobnicate;"}
    )
    assert reply.status_code == 422
    body = reply.json()
    assert body["line"] == 2
    assert body["detail"] == "line 2: 'frobnicate' is an unknown command, not a command"


async def test_check_is_like_checkscript(alice: User) -> None:
    bad = await alice.client.post("/api/v1/sieve/check", json={"source": 'fileinto "x";'})
    assert bad.json() == {
        "valid": False,
        "line": 1,
        "message": "command 'fileinto' requires the extension 'fileinto'",
    }
    good = await alice.client.post("/api/v1/sieve/check", json={"source": "keep;"})
    assert good.json() == {"valid": True, "line": None, "message": None}


async def test_activate_and_the_active_script_cannot_be_deleted(alice: User) -> None:
    await alice.client.put("/api/v1/sieve/scripts/main", json={"source": "keep;"})
    reply = await alice.client.put("/api/v1/sieve/active", json={"name": "main"})
    assert reply.status_code == 204
    assert (await alice.client.delete("/api/v1/sieve/scripts/main")).status_code == 409
    await alice.client.put("/api/v1/sieve/active", json={"name": None})
    assert (await alice.client.delete("/api/v1/sieve/scripts/main")).status_code == 204


async def test_rename(alice: User) -> None:
    await alice.client.put("/api/v1/sieve/scripts/a", json={"source": "keep;", "active": True})
    reply = await alice.client.post("/api/v1/sieve/scripts/a/rename", json={"name": "b"})
    assert reply.json()["name"] == "b"
    assert reply.json()["active"] is True


async def test_scripts_of_others_are_not_visible(alice: User, bob: User) -> None:
    await alice.client.put("/api/v1/sieve/scripts/secret", json={"source": "keep;"})
    assert (await bob.client.get("/api/v1/sieve/scripts")).json() == []
    assert (await bob.client.get("/api/v1/sieve/scripts/secret")).status_code == 404


async def test_rules_make_an_active_generated_script(alice: User) -> None:
    empty = (await alice.client.get("/api/v1/sieve/rules")).json()
    assert (empty["rules"], empty["active"]) == ([], False)
    reply = await alice.client.put("/api/v1/sieve/rules", json={"rules": [RULE]})
    assert reply.status_code == 200
    body = reply.json()
    assert body["active"] is True
    assert 'fileinto :create :flags ["\\\\Seen"] "Receipts";' in body["script"]
    assert 'header :contains "subject" "receipt"' in body["script"]
    compile_script(body["script"])
    # The same script, as ManageSieve sees it, and the rules read back.
    stored = await sieve_store.get_script(alice.conn, alice.account.id, "postroom")
    assert stored is not None
    assert stored.active
    assert stored.source == body["script"]
    again = (await alice.client.get("/api/v1/sieve/rules")).json()
    assert again["rules"][0]["name"] == "Receipts"
    assert again["rules"][0]["actions"][1] == {"type": "fileinto", "value": "Receipts"}


async def test_preview_does_not_save(alice: User) -> None:
    reply = await alice.client.post("/api/v1/sieve/rules/preview", json={"rules": [RULE]})
    assert "Receipts" in reply.json()["script"]
    assert (await alice.client.get("/api/v1/sieve/scripts")).json() == []


async def test_a_rule_that_cannot_be_written_is_422(alice: User) -> None:
    rule = {**RULE, "actions": [{"type": "redirect", "value": "not an address"}]}
    reply = await alice.client.put("/api/v1/sieve/rules", json={"rules": [rule]})
    assert reply.status_code == 422
    assert reply.json()["detail"] == "'not an address' is not an e-mail address"


async def test_out_of_office_with_dates_keeps_the_rules(alice: User) -> None:
    await alice.client.put("/api/v1/sieve/rules", json={"rules": [RULE]})
    vacation = {
        "enabled": True,
        "start": "2026-12-01",
        "end": "2026-12-24",
        "subject": "Away",
        "text": "Back on the 28th.",
        "days": 3,
    }
    reply = await alice.client.put("/api/v1/sieve/vacation", json=vacation)
    assert reply.status_code == 200
    script = reply.json()["script"]
    assert (
        'if allof (currentdate :value "ge" "date" "2026-12-01",'
        ' currentdate :value "le" "date" "2026-12-24") {' in script
    )
    assert 'vacation :days 3 :subject "Away" "Back on the 28th.";' in script
    assert "Receipts" in script
    got = (await alice.client.get("/api/v1/sieve/vacation")).json()
    assert {k: got[k] for k in vacation} == vacation
    rules = (await alice.client.get("/api/v1/sieve/rules")).json()
    assert len(rules["rules"]) == 1


async def test_out_of_office_that_ends_before_it_starts_is_422(alice: User) -> None:
    reply = await alice.client.put(
        "/api/v1/sieve/vacation",
        json={"enabled": True, "start": "2026-12-10", "end": "2026-12-01", "text": "x"},
    )
    assert reply.status_code == 422
    assert reply.json()["detail"] == "the out-of-office period ends before it starts"


async def test_another_active_script_is_reported(alice: User) -> None:
    await alice.client.put("/api/v1/sieve/scripts/mine", json={"source": "keep;", "active": True})
    body = (await alice.client.get("/api/v1/sieve/rules")).json()
    assert (body["active"], body["other_active"]) == (False, "mine")


async def test_capabilities(alice: User) -> None:
    body = (await alice.client.get("/api/v1/sieve/capabilities")).json()
    assert "vacation" in body["extensions"]
    assert body["generated_script"] == "postroom"


async def test_filters_need_a_login(alice: User) -> None:
    alice.client.headers.pop("Authorization", None)
    assert (await alice.client.get("/api/v1/sieve/rules")).status_code == 401


async def test_a_hand_written_script_under_the_pages_name_is_not_overwritten(alice: User) -> None:
    await alice.client.put("/api/v1/sieve/scripts/postroom", json={"source": "discard;"})
    reply = await alice.client.put("/api/v1/sieve/rules", json={"rules": [RULE]})
    assert reply.status_code == 409
    kept = (await alice.client.get("/api/v1/sieve/scripts/postroom")).json()
    assert kept["source"] == "discard;"
