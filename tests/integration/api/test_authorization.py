"""Every endpoint authorises by account: another user's folders and mail are simply absent."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.api.conftest import MakeUser, User, mail

SECRET = "the-secret-subject-7f3a"

# (method, path template, json body, form fields); {box} is alice's INBOX, {uid} her message,
# {mine} one of the caller's own folders.
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None, dict[str, str] | None]] = [
    ("GET", "/api/v1/mailboxes/{box}", None, None),
    ("PATCH", "/api/v1/mailboxes/{box}", {"name": "Stolen"}, None),
    ("DELETE", "/api/v1/mailboxes/{box}", None, None),
    ("GET", "/api/v1/mailboxes/{box}/messages", None, None),
    ("GET", "/api/v1/mailboxes/{box}/messages?q=secret", None, None),
    ("GET", "/api/v1/mailboxes/{box}/messages/{uid}", None, None),
    ("GET", "/api/v1/mailboxes/{box}/messages/{uid}/html", None, None),
    ("GET", "/api/v1/mailboxes/{box}/messages/{uid}/raw", None, None),
    ("GET", "/api/v1/mailboxes/{box}/messages/{uid}/parts/1", None, None),
    ("POST", "/api/v1/mailboxes/{box}/messages/{uid}/flags", {"add": ["\\Deleted"]}, None),
    ("GET", "/api/v1/mailboxes/{box}/messages?query=from:carol", None, None),
    ("GET", "/api/v1/mailboxes/{box}/messages/{uid}/thread", None, None),
    ("GET", "/api/v1/mailboxes/{box}/messages/{uid}/raw?view=text", None, None),
    (
        "POST",
        "/api/v1/mailboxes/{box}/messages/flags",
        {"uids": ["{uid}"], "add": ["\\Deleted"]},
        None,
    ),
    (
        "POST",
        "/api/v1/mailboxes/{box}/messages/move",
        {"uids": ["{uid}"], "target_mailbox_id": "{mine}"},
        None,
    ),
    (
        "POST",
        "/api/v1/mailboxes/{box}/messages/copy",
        {"uids": ["{uid}"], "target_mailbox_id": "{mine}"},
        None,
    ),
    ("POST", "/api/v1/mailboxes/{box}/messages/delete", {"uids": ["{uid}"]}, None),
    ("POST", "/api/v1/mailboxes/{box}/messages/delete?permanent=true", {"uids": ["{uid}"]}, None),
    (
        "POST",
        "/api/v1/send",
        None,
        {
            "from": "{me}",
            "to": "x@remote.test",
            "mode": "forward",
            "reply_to_mailbox_id": "{box}",
            "reply_to_uid": "{uid}",
        },
    ),
    (
        "POST",
        "/api/v1/send",
        None,
        {
            "from": "{me}",
            "to": "x@remote.test",
            "mode": "reply",
            "reply_to_mailbox_id": "{box}",
            "reply_to_uid": "{uid}",
        },
    ),
]


def _fill(value: Any, names: dict[str, Any]) -> Any:
    if isinstance(value, str):
        for key, sub in names.items():
            if value == "{" + key + "}":
                return sub
        return value.format(**names)
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    return value


@pytest.mark.parametrize(
    ("method", "path", "json_body", "form"),
    ENDPOINTS,
    ids=[
        f"{m} {p.replace('/api/v1/', '')}{' ' + (f or {}).get('mode', '') if f else ''}"
        for m, p, _, f in ENDPOINTS
    ],
)
async def test_another_users_mail_is_404_and_untouched(
    alice: User,
    bob: User,
    method: str,
    path: str,
    json_body: dict[str, Any] | None,
    form: dict[str, str] | None,
) -> None:
    uid = await alice.deliver(mail(SECRET, "confidential body"))
    inbox = await alice.mailbox()
    mine = await bob.mailbox("Archive")
    names = {"box": inbox.id, "uid": uid, "mine": mine.id, "me": bob.account.address}
    reply = await bob.client.request(
        method,
        _fill(path, names),
        json=_fill(json_body, names) if json_body is not None else None,
        data=_fill(form, {k: str(v) for k, v in names.items()}) if form is not None else None,
        files={"attachments": ("a.txt", b"x")} if form is not None else None,
    )
    assert reply.status_code == 404, reply.text
    assert SECRET not in reply.text
    assert "confidential" not in reply.text
    message = await alice.deliver(mail("probe"))  # alice's mailbox still works
    assert message == uid + 1
    from postroom import store

    still = await store.get_message(alice.conn, inbox.id, uid)
    assert still is not None
    assert still.flags == frozenset()


async def test_a_user_moving_into_another_users_folder_is_404(alice: User, bob: User) -> None:
    uid = await bob.deliver(mail("mine"))
    bob_inbox, alice_inbox = await bob.mailbox(), await alice.mailbox()
    reply = await bob.client.post(
        f"/api/v1/mailboxes/{bob_inbox.id}/messages/move",
        json={"uids": [uid], "target_mailbox_id": alice_inbox.id},
    )
    assert reply.status_code == 404
    assert reply.json()["detail"] == f"mailbox {alice_inbox.id} does not exist"


async def test_folder_list_shows_only_the_callers_folders(alice: User, bob: User) -> None:
    await alice.client.post("/api/v1/mailboxes", json={"name": "AliceOnly"})
    names = [f["name"] for f in (await bob.client.get("/api/v1/mailboxes")).json()]
    assert "AliceOnly" not in names


ADMIN_ENDPOINTS = [
    ("GET", "/api/v1/admin/dashboard", None),
    ("GET", "/api/v1/admin/usage", None),
    ("GET", "/api/v1/admin/domains", None),
    ("POST", "/api/v1/admin/domains", {"name": "new.test"}),
    ("DELETE", "/api/v1/admin/domains/example.test", None),
    ("GET", "/api/v1/admin/accounts", None),
    ("POST", "/api/v1/admin/accounts", {"address": "x@example.test", "password": "p"}),
    ("GET", "/api/v1/admin/accounts/{alice}", None),
    ("PATCH", "/api/v1/admin/accounts/{alice}", {"password": "taken-over"}),
    ("DELETE", "/api/v1/admin/accounts/{alice}", None),
    ("GET", "/api/v1/admin/aliases", None),
    ("POST", "/api/v1/admin/aliases", {"source": "a@example.test", "destination": "b@x.test"}),
    ("DELETE", "/api/v1/admin/aliases?source=a@example.test", None),
    ("GET", "/api/v1/admin/queue", None),
    ("GET", "/api/v1/admin/queue/1", None),
    ("POST", "/api/v1/admin/queue/1/retry", None),
    ("POST", "/api/v1/admin/queue/1/release", None),
    ("DELETE", "/api/v1/admin/queue/1", None),
]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    ADMIN_ENDPOINTS,
    ids=[f"{m} {p[14:]}" for m, p, _ in ADMIN_ENDPOINTS],
)
async def test_admin_endpoints_refuse_non_admins_with_403(
    make_user: MakeUser, alice: User, method: str, path: str, body: dict[str, Any] | None
) -> None:
    user = await make_user()
    reply = await user.client.request(method, path.format(alice=alice.account.address), json=body)
    assert reply.status_code == 403
    assert reply.json()["detail"] == "this needs an administrator account"
