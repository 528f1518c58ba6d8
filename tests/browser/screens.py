"""The screenshots of docs/web.md: every admin console section and every settings section, in
Chromium, on a fresh database with a little made-up data. Run by hand after a change to a page:

    .venv/bin/python -m tests.browser.screens

(POSTROOM_TEST_DATABASE_URL names the Postgres server, POSTROOM_TEST_REDIS_URL the Redis.)"""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from bench.common import fresh_database
from postroom import store
from postroom.config import Settings
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, PASSWORD, Loop, Site, mail, serve

OUT = Path(__file__).resolve().parents[2] / "docs" / "web"
VIEWPORT = {"width": 1000, "height": 640}
ADMIN_SECTIONS = ["dashboard", "domains", "accounts", "aliases", "queue"]
SETTINGS_SECTIONS = [
    "filters", "vacation", "identities", "contacts", "privacy", "security", "password",
]  # fmt: skip


def arrange(site: Site) -> None:
    """A domain with accounts, aliases, a few messages and some sent mail in the queue."""

    async def make() -> None:
        conn = site.conn
        await store.create_domain(conn, "example.org")
        await store.create_domain(conn, "example.net")
        await store.create_account(conn, "admin@example.org", PASSWORD, is_admin=True)
        for local in ("ann", "bob", "carol"):
            await store.create_account(conn, f"{local}@example.org", PASSWORD)
        await store.add_alias(conn, "sales@example.org", "ann@example.org")
        await store.add_alias(conn, "@example.net", "bob@example.org")
        account = await store.get_account(conn, "admin@example.org")
        assert account is not None
        box = await store.get_mailbox(conn, account.id, "INBOX")
        assert box is not None
        for subject in ("Quarterly figures", "Lunch on Friday?", "Release notes"):
            await store.append_message(conn, box.id, mail(subject, to="admin@example.org"))

    site.run(make())


def log_in(page: Page, base: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=address]", "admin@example.org")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def csrf(page: Page) -> dict[str, str]:
    return {"X-CSRF-Token": page.get_attribute("meta[name=csrf-token]", "content") or ""}


def shoot(page: Page, name: str) -> None:
    page.wait_for_timeout(400)  # the section's loader has drawn it
    page.screenshot(path=str(OUT / f"{name}.png"))
    print(name, (OUT / f"{name}.png").stat().st_size, "octets")


def main() -> None:
    redis = os.environ.get("POSTROOM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    with fresh_database() as url:
        loop = Loop()
        try:
            settings = Settings(database_url=url, redis_url=redis, hostname="mail.example.org")
            with serve(loop, settings) as site, sync_playwright() as p:
                arrange(site)
                browser = p.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
                )
                page = browser.new_context(viewport=VIEWPORT).new_page()
                log_in(page, site.base)
                for to in ("friend@far.example", "team@elsewhere.example"):
                    page.request.post(
                        f"{site.base}/api/v1/send",
                        multipart={"from": "admin@example.org", "to": to, "subject": "Hello"},
                        headers=csrf(page),
                    )
                page.request.post(
                    f"{site.base}/api/v1/sieve/vacation",
                    data={"enabled": False, "subject": "Away", "text": "Back on Monday."},
                    headers=csrf(page),
                )
                for section in ADMIN_SECTIONS:
                    page.goto(f"{site.base}/admin#{section}")
                    page.wait_for_selector(f"#{section}:not([hidden])")
                    shoot(page, f"admin-{section}")
                page.goto(f"{site.base}/trace")
                shoot(page, "trace")
                for section in SETTINGS_SECTIONS:
                    page.goto(f"{site.base}/settings#{section}")
                    page.wait_for_selector(f"#{section}:not([hidden])")
                    shoot(page, f"settings-{section}")
                browser.close()
        finally:
            loop.stop()


if __name__ == "__main__":
    main()
