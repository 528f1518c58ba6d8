"""Reading in Chromium: remote images held back until allowed (for a message or always for
a sender), attachments previewed and downloaded together, the original shown."""

from __future__ import annotations

import base64
import io
import re
import zipfile

from playwright.sync_api import expect

from tests.browser.conftest import Login, Site

# A 1×1 PNG.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def html_mail(site: Site, subject: str, sender: str = "News <news@shop.test>") -> bytes:
    image = f"{site.base}/static/remote-pixel.png"
    return (
        f"From: {sender}\r\nTo: r@x.test\r\nSubject: {subject}\r\n"
        "Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/html; charset=utf-8\r\n\r\n"
        f'<p>Offer inside</p><img alt="banner" src="{image}">\r\n'
    ).encode()


def with_attachments(subject: str) -> bytes:
    png = base64.b64encode(PIXEL).decode()
    pdf = base64.b64encode(b"%PDF-1.4\n%%EOF\n").decode()
    return (
        f"From: Ann <ann@x.test>\r\nTo: r@x.test\r\nSubject: {subject}\r\n"
        "Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
        "--b\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=dot.png\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{png}\r\n"
        "--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; "
        f"filename=report.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n{pdf}\r\n--b--\r\n"
    ).encode()


def test_remote_images_wait_until_the_reader_allows_them(site: Site, login: Login) -> None:
    reader = site.user("reader")
    site.deliver(reader, html_mail(site, "Sale"))
    page = login(reader)
    page.click("#messages li:has-text('Sale') .open")
    frame = page.locator("#reader-html")
    expect(frame).to_have_attribute("srcdoc", re.compile("Offer inside"))
    assert "remote-pixel.png" not in (frame.get_attribute("srcdoc") or "")
    expect(page.locator("#images-note")).to_be_visible()
    page.click("#show-images")
    expect(page.locator("#images-note")).to_be_hidden()
    assert "remote-pixel.png" in (frame.get_attribute("srcdoc") or "")


def test_images_always_shown_for_a_sender_the_reader_trusts(site: Site, login: Login) -> None:
    reader = site.user("reader")
    site.deliver(reader, html_mail(site, "First letter"))
    site.deliver(reader, html_mail(site, "Second letter"))
    site.deliver(reader, html_mail(site, "From a stranger", sender="X <x@other.test>"))
    page = login(reader)
    page.click("#messages li:has-text('First letter') .open")
    page.click("#always-images")
    page.wait_for_selector("#status:has-text('Images from news@shop.test will always be shown.')")
    page.click("#messages li:has-text('Second letter') .open")
    expect(page.locator("#reader-subject")).to_have_text("Second letter")
    expect(page.locator("#images-note")).to_be_hidden()
    assert "remote-pixel.png" in (page.get_attribute("#reader-html", "srcdoc") or "")
    page.click("#messages li:has-text('From a stranger') .open")
    expect(page.locator("#reader-subject")).to_have_text("From a stranger")
    expect(page.locator("#images-note")).to_be_visible()


def test_attachments_are_previewed_and_downloaded_as_one_zip(site: Site, login: Login) -> None:
    reader = site.user("reader")
    site.deliver(reader, with_attachments("Files"))
    page = login(reader)
    page.click("#messages li:has-text('Files') .open")
    image = page.locator("#attachments img.preview[alt='dot.png']")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth") == 1
    page.click("#attachments button:has-text('Preview')")
    pdf = page.locator("#attachments iframe[title='Preview of report.pdf']")
    expect(pdf).to_be_attached()
    reply = page.request.get(site.base + (pdf.get_attribute("src") or ""))
    assert reply.headers["content-type"] == "application/pdf"
    assert reply.headers["content-disposition"] == "inline"
    href = page.get_attribute("#zip-link", "href") or ""
    archive = zipfile.ZipFile(io.BytesIO(page.request.get(site.base + href).body()))
    assert sorted(archive.namelist()) == ["dot.png", "report.pdf"]
    assert archive.read("dot.png") == PIXEL


def test_show_original_opens_the_message_as_text(site: Site, login: Login) -> None:
    reader = site.user("reader")
    site.deliver(reader, with_attachments("Original"))
    page = login(reader)
    page.click("#messages li:has-text('Original') .open")
    with page.context.expect_page() as opened:
        page.click("#original-link")
    original = opened.value
    original.wait_for_load_state()
    text = original.text_content("body") or ""
    assert "Subject: Original" in text
    assert 'Content-Type: multipart/mixed; boundary="b"' in text
