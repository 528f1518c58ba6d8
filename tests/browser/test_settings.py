"""Settings in Chromium: filters and out-of-office (a Sieve script underneath), identities,
contacts, senders whose images are shown, and changing the password."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pyotp
from playwright.sync_api import Page, expect

from tests.browser.conftest import Login, Site, axe_violations


def qr_text(png: bytes) -> str:
    """What a QR reader (zbar) reads from an image."""
    zbarimg = shutil.which("zbarimg")
    assert zbarimg is not None, "zbarimg is missing (apt-get install zbar-tools)"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "qr.png"
        path.write_bytes(png)
        done = subprocess.run(
            [zbarimg, "--raw", "-q", str(path)], capture_output=True, check=True, timeout=30
        )
    return done.stdout.decode().strip()


def csrf(page: Page) -> dict[str, str]:
    return {"X-CSRF-Token": page.get_attribute("meta[name=csrf-token]", "content") or ""}


def test_a_filter_rule_is_saved_as_sieve_and_shown_again(site: Site, login: Login) -> None:
    alice = site.user("alice")
    page = login(alice, path="/settings#filters")
    page.click("#rule-add")
    rule = page.locator("#rules fieldset.rule").first
    rule.locator(".rule-name").fill("Receipts")
    condition = rule.locator(".condition").first
    condition.locator("select[aria-label=Field]").select_option("subject")
    condition.locator("input[aria-label=Value]").fill("invoice")
    rule.locator(".action input[aria-label='Folder or address']").fill("Receipts")
    page.click("#rules-save")
    page.wait_for_selector("#status:has-text('Filters saved.')")
    expect(page.locator("#rules-script")).to_contain_text('fileinto :create "Receipts"')
    assert axe_violations(page) == []
    page.reload()
    again = page.locator("#rules fieldset.rule")
    expect(again).to_have_count(1)
    expect(again.locator(".rule-name")).to_have_value("Receipts")
    expect(again.locator(".condition input[aria-label=Value]")).to_have_value("invoice")


def test_out_of_office_is_saved_and_read_back(site: Site, login: Login) -> None:
    alice = site.user("alice")
    page = login(alice, path="/settings#vacation")
    page.check("#vacation-form input[name=enabled]")
    page.fill("#vacation-form input[name=start]", "2026-12-20")
    page.fill("#vacation-form input[name=end]", "2027-01-04")
    page.fill("#vacation-form input[name=subject]", "Away until January")
    page.fill("#vacation-form textarea[name=text]", "Back on the 5th.")
    page.click("#vacation-form button[type=submit]")
    page.wait_for_selector("#status:has-text('Out-of-office reply on.')")
    page.reload()
    expect(page.locator("#vacation-form input[name=subject]")).to_have_value("Away until January")
    assert page.is_checked("#vacation-form input[name=enabled]")
    assert page.input_value("#vacation-form input[name=end]") == "2027-01-04"
    assert axe_violations(page) == []


def test_identities_contacts_and_image_senders_are_edited(site: Site, login: Login) -> None:
    alice = site.user("alice")
    page = login(alice, path="/settings#identities")
    form = page.locator(f"#identity-forms form[data-address='{alice.address}']")
    form.locator("input[name=name]").fill("Alice A.")
    form.locator("textarea[name=signature]").fill("Cheers, Alice")
    form.locator("button[type=submit]").click()
    page.wait_for_selector(f"#status:has-text('Identity {alice.address} saved.')")
    identities = page.request.get(f"{site.base}/api/v1/identities").json()
    assert identities == [
        {"address": alice.address, "name": "Alice A.", "signature": "Cheers, Alice"}
    ]

    page.click(".tabs a[href='#contacts']")
    page.fill("#contact-form input[name=address]", "dan@far.test")
    page.fill("#contact-form input[name=name]", "Dan")
    page.click("#contact-form button[type=submit]")
    row = page.locator("#contact-rows tr[data-address='dan@far.test']")
    expect(row).to_contain_text("Dan")
    row.locator("button:has-text('Edit')").click()
    page.fill("#contact-form input[name=name]", "Daniel")
    page.click("#contact-form button[type=submit]")
    expect(row).to_contain_text("Daniel")
    assert axe_violations(page) == []
    row.locator("button:has-text('Remove')").click()
    expect(row).to_have_count(0)

    allowed = page.request.post(
        f"{site.base}/api/v1/remote-images", data={"sender": "news@shop.test"}, headers=csrf(page)
    )
    assert allowed.status == 204
    page.click(".tabs a[href='#privacy']")
    expect(page.locator("#image-senders")).to_contain_text("news@shop.test")
    page.click("#image-senders button:has-text('Stop showing')")
    expect(page.locator("#image-senders")).to_contain_text("every message asks first")


def test_changing_the_password_ends_the_session(site: Site, login: Login) -> None:
    alice = site.user("alice")
    page = login(alice, path="/settings#password")
    page.fill("#password-change input[name=current_password]", "wrong-one")
    page.fill("#password-change input[name=new_password]", "a-new-password")
    page.click("#password-change button[type=submit]")
    page.wait_for_selector("#status:has-text('the password is wrong')")
    page.fill("#password-change input[name=current_password]", "browser-pw-1")
    page.click("#password-change button[type=submit]")
    page.wait_for_url(f"{site.base}/login")
    page.fill("input[name=address]", alice.address)
    page.fill("input[name=password]", "a-new-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.base}/")


def test_two_factor_login_is_turned_on_and_then_asks_for_a_code(site: Site, login: Login) -> None:
    alice = site.user("alice")
    page = login(alice, path="/settings#security")
    expect(page.locator("#totp-state")).to_have_text("Two-factor login is off.")
    page.fill("#totp-start input[name=password]", "browser-pw-1")
    page.click("#totp-start-button")
    secret = page.locator("#totp-secret")
    expect(secret).not_to_be_empty()
    assert (page.get_attribute("#totp-uri", "href") or "").startswith("otpauth://totp/")
    # The QR code shown is the same URI, as a phone's camera reads it.
    qr = page.locator("#totp-qr")
    expect(qr).to_have_attribute("alt", re.compile("QR code of your two-factor key"))
    assert qr_text(qr.screenshot()) == page.get_attribute("#totp-uri", "href")
    page.fill("#totp-confirm input[name=code]", pyotp.TOTP(secret.text_content() or "").now())
    page.click("#totp-confirm button[type=submit]")
    page.wait_for_selector("#status:has-text('Two-factor login is on.')")
    codes = page.locator("#recovery-codes li").all_text_contents()
    assert len(codes) == 10
    expect(page.locator("#totp-state")).to_contain_text("10 recovery codes left")
    assert axe_violations(page) == []

    page.click("#logout")
    page.wait_for_url(f"{site.base}/login")
    page.fill("input[name=address]", alice.address)
    page.fill("input[name=password]", "browser-pw-1")
    page.click("button[type=submit]")
    expect(page.locator("#otp-field")).to_be_visible()
    page.fill("input[name=otp]", "000000")
    page.click("button[type=submit]")
    expect(page.locator("#login-error")).to_have_text("wrong or already used code")
    page.fill("input[name=otp]", codes[0])
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.base}/")
    again = page.request.post(
        f"{site.base}/api/v1/tokens",
        data={"address": alice.address, "password": "browser-pw-1", "otp": codes[0]},
    )
    assert again.status == 401  # a recovery code works once


def test_app_passwords_are_created_listed_and_revoked(site: Site, login: Login) -> None:
    alice = site.user("alice")
    page = login(alice, path="/settings#security")
    page.fill("#app-password-form input[name=name]", "Thunderbird")
    page.click("#app-password-form button[type=submit]")
    secret = page.locator("#app-password-secret")
    expect(secret).to_have_text(re.compile(r"^[a-z]{4}(-[a-z]{4}){3}$"))
    row = page.locator("#app-password-rows tr", has_text="Thunderbird")
    expect(row).to_contain_text("never")
    # It is not a web password.
    refused = page.request.post(
        f"{site.base}/api/v1/tokens",
        data={"address": alice.address, "password": secret.text_content() or ""},
    )
    assert refused.status == 401
    expect(page.locator("#session-rows tr")).to_have_count(1)
    expect(page.locator("#session-rows")).to_contain_text("this one")
    assert axe_violations(page) == []
    row.locator("button:has-text('Revoke')").click()
    page.wait_for_selector("#status:has-text('App password Thunderbird revoked.')")
    expect(row).to_have_count(0)


def test_a_session_ended_from_another_leaves_the_mail_page_at_once(
    site: Site, login: Login
) -> None:
    alice = site.user("alice")
    reading = login(alice)
    expect(reading.locator("body[data-live=yes]")).to_have_count(1)
    settings = login(alice, path="/settings#security")
    other = settings.locator("#session-rows tr", has_not_text="this one")
    expect(other).to_have_count(1)
    other.locator("button:has-text('End')").click()
    settings.wait_for_selector("#status:has-text('Session ended.')")
    # No click on the reading page: its event stream ends, and it goes to the login page.
    reading.wait_for_url(f"{site.base}/login?ended=1")
    expect(reading.locator("#login-error")).to_have_text("Your session was ended. Log in again.")
    assert axe_violations(reading) == []
