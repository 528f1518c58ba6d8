"""Message trace: find by Message-ID, sender, recipient or time; the timeline of attempts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from postroom.store import queue
from postroom.store.types import Arrival
from tests.integration.api.conftest import MakeUser, User

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


async def _sent_by(user: User, message_id: str) -> int:
    spooled = await queue.spool(
        user.conn,
        f"Subject: t\r\nMessage-ID: <{message_id}>\r\n\r\nbody\r\n".encode(),
        reverse_path=user.account.address,
        recipients=["far@remote.test", "near@remote.test"],
        arrival=Arrival(
            source="submission",
            client_address="192.0.2.5",
            client_name="pc.test",
            helo_name="pc",
            protocol="ESMTPSA",
            tls="TLSv1.3",
            auth_account_id=user.account.id,
        ),
        now=NOW,
    )
    first, second = spooled.deliveries
    await queue.record_outcome(
        user.conn,
        first.id,
        "deferred",
        now=NOW + timedelta(minutes=1),
        host="mx.remote.test",
        reply_code=451,
        reply_text="4.7.1 try later",
        next_attempt_at=NOW + timedelta(minutes=30),
    )
    await queue.record_outcome(
        user.conn,
        second.id,
        "delivered",
        now=NOW + timedelta(minutes=1),
        host="mx.remote.test",
        reply_code=250,
        reply_text="2.0.0 ok",
        tls="TLSv1.3",
    )
    return spooled.message.id


async def test_find_by_message_id_with_or_without_brackets(alice: User) -> None:
    qid = await _sent_by(alice, "trace-1@a.test")
    for value in ("trace-1@a.test", "<trace-1@a.test>"):
        reply = await alice.client.get("/api/v1/trace", params={"message_id": value})
        assert [e["id"] for e in reply.json()] == [qid]


async def test_timeline_shows_arrival_and_each_attempt(alice: User) -> None:
    qid = await _sent_by(alice, "trace-2@a.test")
    trace = (await alice.client.get(f"/api/v1/trace/{qid}")).json()
    assert [(e["event"], e["recipient"]) for e in trace["timeline"]] == [
        ("received", None),
        ("deferred", "far@remote.test"),
        ("delivered", "near@remote.test"),
    ]
    assert trace["timeline"][0]["detail"] == (
        "from pc.test [192.0.2.5] (HELO pc) via submission with ESMTPSA TLS TLSv1.3"
    )
    assert trace["timeline"][1]["detail"] == "deferred at mx.remote.test: 451 4.7.1 try later"
    assert trace["timeline"][2]["detail"] == (
        "delivered at mx.remote.test over TLSv1.3: 250 2.0.0 ok"
    )


async def test_a_user_sees_only_the_trace_of_mail_they_sent(alice: User, bob: User) -> None:
    qid = await _sent_by(alice, "trace-3@a.test")
    assert (await bob.client.get(f"/api/v1/trace/{qid}")).status_code == 404
    found = (await bob.client.get("/api/v1/trace", params={"message_id": "trace-3@a.test"})).json()
    assert found == []


async def test_an_admin_sees_everyones_trace(make_user: MakeUser, alice: User) -> None:
    admin = await make_user(is_admin=True)
    qid = await _sent_by(alice, "trace-4@a.test")
    assert (await admin.client.get(f"/api/v1/trace/{qid}")).status_code == 200
    found = await admin.client.get(
        "/api/v1/trace", params={"sender": alice.account.address, "recipient": "far@remote"}
    )
    assert qid in [e["id"] for e in found.json()]


async def test_find_by_time_window(alice: User) -> None:
    qid = await _sent_by(alice, "trace-5@a.test")
    inside = {
        "since": (NOW - timedelta(seconds=1)).isoformat(),
        "until": (NOW + timedelta(seconds=1)).isoformat(),
    }
    later = {"since": (NOW + timedelta(hours=1)).isoformat()}
    assert qid in [e["id"] for e in (await alice.client.get("/api/v1/trace", params=inside)).json()]
    assert qid not in [
        e["id"] for e in (await alice.client.get("/api/v1/trace", params=later)).json()
    ]


CHECKS = {
    "auth_summary": {"spf": "fail", "dkim": "none", "dmarc": "fail", "arc": "none"},
    "auth": {"dmarc": {"from_domain": "quarantine.test", "policy": "quarantine"}},
    "spam": {
        "action": "add header",
        "score": 8.1,
        "required_score": 15.0,
        "symbols": {"POSTROOM_TEST_JUNK": 8.0, "MIME_GOOD": -0.1},
    },
    "quarantined_by": "dmarc",
}


async def test_timeline_shows_what_the_checks_found(alice: User) -> None:
    spooled = await queue.spool(
        alice.conn,
        b"Subject: t\r\nMessage-ID: <trace-checks@a.test>\r\n\r\nbody\r\n",
        reverse_path=alice.account.address,
        recipients=["far@remote.test"],
        arrival=Arrival(
            source="submission",
            auth_account_id=alice.account.id,
            target_special_use="\\Junk",
            checks=CHECKS,
        ),
        now=NOW,
    )
    trace = (await alice.client.get(f"/api/v1/trace/{spooled.message.id}")).json()
    assert (trace["checks"], trace["target_special_use"]) == (CHECKS, "\\Junk")
    assert [e["detail"] for e in trace["timeline"] if e["event"] == "checked"] == [
        "authentication: spf=fail dkim=none dmarc=fail arc=none"
        " (From quarantine.test p=quarantine)",
        "spam filter: add header, score 8.1 of 15; POSTROOM_TEST_JUNK(8), MIME_GOOD(-0.1)",
        "filed into Junk (by dmarc)",
    ]
