"""The admin console in Chromium: dashboard, domains with DKIM keys and the DNS check,
accounts, aliases and the queue, as an administrator sees them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet
from playwright.sync_api import expect

from postroom import store
from postroom.config import Settings
from postroom.store import queue
from postroom.store.types import Arrival
from tests.browser.conftest import Login, Loop, Site, axe_violations, mail, serve
from tests.dns_server import DnsServer, Record

HOST = "mx.console.test"


@pytest.fixture
def dns_site(
    database_url: str, redis_url: str, loop: Loop, dns_server: Callable[..., DnsServer]
) -> Iterator[Site]:
    """The app with DKIM keys sealed and DNS asked of a test server that knows only the
    host's address (so every record the domains need is missing)."""
    server = dns_server([Record(HOST, "A", "127.0.0.7")])
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        hostname=HOST,
        dns_resolvers=server.servers,
        dns_timeout=2,
        key_encryption_key=Fernet.generate_key().decode(),
    )
    with serve(loop, settings) as running:
        yield running


def test_a_domain_is_added_signed_checked_and_removed(dns_site: Site, login: Login) -> None:
    admin = dns_site.user("admin", is_admin=True)
    page = login(admin, path="/admin#domains", on=dns_site)
    domain = f"new-{admin.address.split('@')[1]}"
    page.fill("#domain-form input[name=name]", domain)
    page.click("#domain-form button[type=submit]")
    page.wait_for_selector(f"#status:has-text('Domain {domain} added.')")
    page.click(f"#domain-rows tr[data-name='{domain}'] button:has-text('DKIM and DNS')")
    expect(page.locator("#domain-detail-title")).to_have_text(domain)
    expect(page.locator("#dkim-rows")).to_contain_text("No key yet")
    page.select_option("#dkim-form select[name=algorithm]", "ed25519")
    page.click("#dkim-form button[type=submit]")
    row = page.locator("#dkim-rows tr[data-selector]")
    expect(row).to_contain_text("ed25519")
    expect(row).to_contain_text("active")
    expect(row).to_contain_text(f'._domainkey.{domain} TXT "v=DKIM1; k=ed25519; p=')
    expect(page.locator("#dns-rows tr[data-purpose=dkim]")).to_have_count(1)
    page.click("#dns-check")
    expect(page.locator("#dns-verdict")).to_contain_text("need attention")
    expect(page.locator("#dns-rows tr[data-purpose=mx]")).to_contain_text("missing")
    assert axe_violations(page) == []
    page.once("dialog", lambda d: d.accept())
    page.click(f"#domain-rows tr[data-name='{domain}'] button:has-text('Remove')")
    page.wait_for_selector(f"#status:has-text('Domain {domain} removed.')")
    expect(page.locator(f"#domain-rows tr[data-name='{domain}']")).to_have_count(0)


def test_accounts_are_added_disabled_reset_and_show_their_usage(site: Site, login: Login) -> None:
    admin = site.user("admin", is_admin=True)
    domain = admin.address.split("@")[1]
    page = login(admin, path="/admin#accounts")
    page.fill("#account-form input[name=address]", f"carol@{domain}")
    page.fill("#account-form input[name=password]", "carol-pw-1")
    page.fill("#account-form input[name=quota]", "10")
    page.click("#account-form button[type=submit]")
    page.wait_for_selector(f"#status:has-text('Account carol@{domain} added.')")
    carol = site.run(store.get_account(site.conn, f"carol@{domain}"))
    assert carol is not None
    site.deliver(carol, mail("Sized", "x" * 2000))
    page.reload()
    row = page.locator(f"#account-rows tr[data-address='carol@{domain}']")
    expect(row).to_contain_text("in 1 messages")
    expect(row).to_contain_text("10.0 MiB")
    row.locator("button:has-text('Disable')").click()
    page.wait_for_selector(f"#status:has-text('carol@{domain} disabled.')")
    expect(row).to_contain_text("disabled")
    row.locator("button:has-text('Reset password')").click()
    page.fill("#password-form input[name=password]", "carol-pw-2")
    page.click("#password-form button[type=submit]")
    page.wait_for_selector("#status:has-text('Password of carol@')")
    assert axe_violations(page) == []


def test_aliases_are_added_and_removed(site: Site, login: Login) -> None:
    admin = site.user("admin", is_admin=True)
    domain = admin.address.split("@")[1]
    page = login(admin, path="/admin#aliases")
    page.fill("#alias-form input[name=source]", f"sales@{domain}")
    page.fill("#alias-form input[name=destination]", admin.address)
    page.click("#alias-form button[type=submit]")
    page.wait_for_selector(f"#status:has-text('Alias sales@{domain} → {admin.address} added.')")
    row = page.locator("#alias-rows tr", has_text=f"sales@{domain}")
    expect(row).to_contain_text(admin.address)
    row.locator("button:has-text('Remove')").click()
    expect(row).to_have_count(0)


def test_the_queue_shows_a_timeline_and_retries_and_deletes(site: Site, login: Login) -> None:
    admin = site.user("admin", is_admin=True)
    spooled = site.run(
        queue.spool(
            site.conn,
            mail("Outbound"),
            reverse_path=admin.address,
            recipients=["someone@far.test"],
            arrival=Arrival(source="api", protocol="HTTP"),
            now=datetime.now(UTC),
        )
    )
    entry = spooled.message.id
    page = login(admin, path="/admin#queue")
    row = page.locator(f"#queue-rows tr[data-id='{entry}']")
    expect(row).to_contain_text("someone@far.test (queued)")
    row.locator("button:has-text('Timeline')").click()
    expect(page.locator("#entry-timeline")).to_contain_text("received")
    row.locator("button:has-text('Retry')").click()
    page.wait_for_selector("#status:has-text('1 deliveries due now.')")
    page.once("dialog", lambda d: d.accept())
    row.locator("button:has-text('Delete')").click()
    page.wait_for_selector(f"#status:has-text('Entry {entry} deleted.')")
    expect(row).to_have_count(0)


def test_the_dashboard_charts_mail_per_hour_and_the_queue(site: Site, login: Login) -> None:
    admin = site.user("admin", is_admin=True)
    site.run(
        queue.spool(
            site.conn,
            mail("Counted"),
            reverse_path=admin.address,
            recipients=["a@far.test"],
            arrival=Arrival(source="api", protocol="HTTP"),
            now=datetime.now(UTC),
        )
    )
    site.run(
        queue.spool(
            site.conn,
            mail("Spammy"),
            reverse_path="someone@far.test",
            recipients=[admin.address],
            arrival=Arrival(source="smtp", checks={"spam": {"action": "add header"}}),
            now=datetime.now(UTC),
        )
    )
    page = login(admin, path="/admin")
    expect(page.locator("#chart-spam svg[role=img]")).to_have_attribute(
        "aria-label", "Spam filter actions"
    )
    expect(page.locator("#chart-spam details")).to_contain_text("add header")
    expect(page.locator(".tabs a[aria-current=page]")).to_have_text("Dashboard")
    chart = page.locator("#chart-mail svg[role=img]")
    expect(chart).to_have_attribute("aria-label", "Messages per hour")
    assert int(page.text_content("#depth-queued") or "0") >= 1
    figures = page.locator("#chart-mail details table tr")
    expect(figures).to_have_count(25)  # a heading row and 24 hours
    last = figures.nth(24).locator("td").nth(1)
    assert int(last.text_content() or "0") >= 1  # this hour's submission is counted
    assert axe_violations(page) == []


def test_a_non_admin_is_sent_back_to_mail(site: Site, login: Login) -> None:
    user = site.user("plain")
    page = login(user, path="/admin")
    page.wait_for_url(f"{site.base}/")
