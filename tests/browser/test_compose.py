"""Compose in Chromium: rich text cleaned on the server with a plain alternative, replies
that quote, drafts kept in the Drafts folder, attachments dropped in, recipients completed
from contacts, identities with signatures, and undo send."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from playwright.sync_api import Page, expect

from postroom import store
from postroom.store.types import Account
from tests.browser.conftest import Login, Site, axe_violations, mail


def folder(site: Site, account: Account, name: str) -> list[tuple[frozenset[str], EmailMessage]]:
    """The messages of one of the account's folders: flags and the parsed message."""

    async def read() -> list[tuple[frozenset[str], EmailMessage]]:
        box = await store.get_special_use(site.conn, account.id, name)
        assert box is not None
        out = []
        for message in await store.list_messages(site.conn, box.id):
            raw = await store.fetch_raw(site.conn, box.id, message.uid)
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            out.append((message.flags, parsed))
        return out

    return site.run(read())


UNDO_MS = 5000  # compose.js: how long a send can be undone
AUTOSAVE_MS = 3000  # compose.js: the pause in typing after which a draft is saved


def send_and_wait(page: Page) -> None:
    """Send, let the undo window pass on the page's clock, and wait until it says sent."""
    page.click("#send")
    expect(page.locator("#status button:has-text('Undo')")).to_be_visible()
    page.clock.fast_forward(UNDO_MS)
    page.wait_for_selector("#status:has-text('Message sent.')", timeout=20_000)


def test_rich_text_is_sent_cleaned_with_a_plain_alternative(site: Site, login: Login) -> None:
    alice = site.user("alice")
    page = login(alice, clock=True)
    page.click("#compose-button")
    page.fill("#compose-form input[name=to]", "bob@far.test")
    page.fill("#compose-form input[name=subject]", "Rich")
    page.check("#rich-toggle")
    page.click("#compose-rich")
    page.keyboard.type("plain then ")
    page.click("#format-buttons button[aria-label=Bold]")
    page.keyboard.type("bold")
    send_and_wait(page)
    [(_, sent)] = folder(site, alice, "\\Sent")
    html = sent.get_body(("html",))
    text = sent.get_body(("plain",))
    assert html is not None
    assert text is not None
    assert "<b>bold</b>" in html.get_content()
    assert text.get_content().strip() == "plain then bold"


def test_reply_all_quotes_and_copies_everyone_else(site: Site, login: Login) -> None:
    alice = site.user("alice")
    site.deliver(
        alice,
        mail("Plans", "Line one\nLine two", to=f"{alice.address}, Dan <dan@far.test>"),
    )
    page = login(alice, clock=True)
    page.click("#messages li:has-text('Plans') .open")
    page.click("#reply-all-button")
    expect(page.locator("#compose")).to_be_visible()
    assert page.input_value("#compose-form input[name=to]") == "Carol <carol@remote.test>"
    assert page.input_value("#compose-form input[name=cc]") == "Dan <dan@far.test>"
    assert page.input_value("#compose-form input[name=subject]") == "Re: Plans"
    body = page.input_value("#compose-text")
    assert "Carol <carol@remote.test> wrote:\n> Line one\n> Line two" in body


def test_a_draft_is_saved_to_drafts_as_you_type_and_sent_from_there(
    site: Site, login: Login
) -> None:
    alice = site.user("alice")
    page = login(alice, clock=True)
    page.click("#compose-button")
    page.fill("#compose-form input[name=to]", "bob@far.test")
    page.fill("#compose-form input[name=subject]", "Half written")
    page.fill("#compose-text", "To be continued")
    page.clock.fast_forward(AUTOSAVE_MS)  # the pause after typing that saves
    page.wait_for_selector("#draft-state:has-text('Draft saved')")
    [(flags, draft)] = folder(site, alice, "\\Drafts")
    assert "\\Draft" in flags  # what an IMAP client sees in Drafts too
    assert draft["Subject"] == "Half written"
    assert draft["To"] == "bob@far.test"
    page.fill("#compose-text", "To be continued, and finished")
    page.click("#cancel")
    page.wait_for_selector("#status:has-text('Draft saved in Drafts.')")
    [(_, draft)] = folder(site, alice, "\\Drafts")  # the new save replaced the first
    assert "and finished" in draft.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    page.click("#folders li[data-name=Drafts] a")
    page.click("#messages li:has-text('Half written') .open")
    page.click("#edit-draft")
    expect(page.locator("#compose")).to_be_visible()
    assert page.input_value("#compose-form input[name=subject]") == "Half written"
    send_and_wait(page)
    assert folder(site, alice, "\\Drafts") == []
    [(_, sent)] = folder(site, alice, "\\Sent")
    assert sent["Subject"] == "Half written"


def test_files_dropped_on_the_window_are_attached(site: Site, login: Login) -> None:
    alice = site.user("alice")
    page = login(alice, clock=True)
    page.click("#compose-button")
    page.fill("#compose-form input[name=to]", "bob@far.test")
    page.fill("#compose-form input[name=subject]", "With a file")
    files = page.evaluate_handle(
        """() => { const dt = new DataTransfer();
                   dt.items.add(new File(['hello file'], 'note.txt', {type: 'text/plain'}));
                   return dt; }"""
    )
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": files})
    expect(page.locator("#compose-attachments li")).to_have_text(["note.txt (10 B)Remove"])
    send_and_wait(page)
    [(_, sent)] = folder(site, alice, "\\Sent")
    [attachment] = list(sent.iter_attachments())
    assert attachment.get_filename() == "note.txt"
    assert attachment.get_content() == "hello file"


def test_recipients_are_completed_from_contacts(site: Site, login: Login) -> None:
    alice = site.user("alice")
    page = login(alice, clock=True)
    page.click("#compose-button")
    page.fill("#compose-form input[name=to]", "Bob Builder <bob@far.test>")
    page.fill("#compose-form input[name=subject]", "Hi Bob")
    send_and_wait(page)
    page.click("#compose-button")
    page.fill("#compose-form input[name=to]", "carol@x.test, bo")
    option = page.locator("#contacts-list option")
    expect(option).to_have_attribute("value", "carol@x.test, Bob Builder <bob@far.test>")


def test_an_identity_gives_the_from_name_and_the_signature(site: Site, login: Login) -> None:
    alice = site.user("alice")
    page = login(alice, clock=True)
    reply = page.request.put(
        f"{site.base}/api/v1/identities/{alice.address}",
        data={"name": "Alice Example", "signature": "Alice\nPostroom team"},
        headers={"X-CSRF-Token": page.get_attribute("meta[name=csrf-token]", "content") or ""},
    )
    assert reply.status == 200
    page.reload()
    page.click("#compose-button")
    expect(page.locator("#compose")).to_be_visible()
    assert page.input_value("#compose-text").endswith("\n-- \nAlice\nPostroom team")
    page.fill("#compose-form input[name=to]", "bob@far.test")
    page.fill("#compose-form input[name=subject]", "Signed")
    send_and_wait(page)
    [(_, sent)] = folder(site, alice, "\\Sent")
    assert sent["From"] == f"Alice Example <{alice.address}>"


def test_a_send_can_be_undone_for_a_few_seconds(site: Site, login: Login) -> None:
    alice = site.user("alice")
    page = login(alice, clock=True)
    page.click("#compose-button")
    page.fill("#compose-form input[name=to]", "bob@far.test")
    page.fill("#compose-form input[name=subject]", "Oops")
    page.click("#send")
    page.click("#status button:has-text('Undo')")
    expect(page.locator("#compose")).to_be_visible()
    assert page.input_value("#compose-form input[name=subject]") == "Oops"
    page.wait_for_timeout(6000)  # past the moment the send would have happened
    assert folder(site, alice, "\\Sent") == []


def test_the_from_picker_offers_send_as_addresses_and_sends_as_them(
    site: Site, login: Login
) -> None:
    alice = site.user("alice")
    site.run(store.set_send_as(site.conn, alice.address, ["boss@b.test", "*@lists.test"]))
    page = login(alice, clock=True)
    page.click("#compose-button")
    picker = page.locator("#compose-form select[name=from]")
    expect(picker.locator("option")).to_have_text(
        [alice.address, "boss@b.test", "Another address at lists.test…"]
    )
    expect(page.locator("#from-other-field")).to_be_hidden()
    picker.select_option("boss@b.test")
    page.fill("#compose-form input[name=to]", "bob@far.test")
    page.fill("#compose-form input[name=subject]", "As the boss")
    send_and_wait(page)

    page.click("#compose-button")
    picker.select_option("*@lists.test")
    expect(page.locator("#from-other-field")).to_be_visible()
    page.fill("#compose-form input[name=from_other]", "news@lists.test")
    page.fill("#compose-form input[name=to]", "bob@far.test")
    page.fill("#compose-form input[name=subject]", "As the list")
    assert axe_violations(page) == []
    send_and_wait(page)
    sent = {m["Subject"]: m["From"] for _, m in folder(site, alice, "\\Sent")}
    assert sent == {"As the boss": "boss@b.test", "As the list": "news@lists.test"}


def test_a_draft_keeps_its_attachments_through_reopening_undo_and_send(
    site: Site, login: Login
) -> None:
    alice = site.user("alice")
    page = login(alice, clock=True)
    page.click("#compose-button")
    page.fill("#compose-form input[name=to]", "bob@far.test")
    page.fill("#compose-form input[name=subject]", "Figures")
    page.set_input_files(
        "#compose-files",
        files=[{"name": "q1.csv", "mimeType": "text/csv", "buffer": b"a,b\n1,2\n"}],
    )

    # The next autosave takes the file along (one before it, of the text alone, may come first
    # on a slow machine).
    def saved() -> list[tuple[str | None, object]]:
        return [
            (a.get_filename(), a.get_content())
            for _, draft in folder(site, alice, "\\Drafts")
            for a in draft.iter_attachments()
        ]

    for _ in range(120):  # until that save has replaced the one before
        if saved() and len(folder(site, alice, "\\Drafts")) == 1:
            break
        page.wait_for_timeout(250)
    assert saved() == [("q1.csv", "a,b\n1,2\n")]  # a MIME part, as an IMAP client sees it
    page.click("#cancel")
    page.click("#folders li[data-name=Drafts] a")
    page.click("#messages li:has-text('Figures') .open")
    page.click("#edit-draft")
    attachments = page.locator("#compose-attachments li")
    expect(attachments).to_have_text(["q1.csv (8 B)Remove"])
    page.set_input_files(
        "#compose-files", files=[{"name": "q2.csv", "mimeType": "text/csv", "buffer": b"c\n3\n"}]
    )
    page.click("#send")
    page.click("#status button:has-text('Undo')")
    expect(page.locator("#compose")).to_be_visible()
    expect(attachments).to_have_text(["q1.csv (8 B)Remove", "q2.csv (4 B)Remove"])
    assert folder(site, alice, "\\Sent") == []
    send_and_wait(page)
    [(_, sent)] = folder(site, alice, "\\Sent")
    assert [(a.get_filename(), a.get_content()) for a in sent.iter_attachments()] == [
        ("q1.csv", "a,b\n1,2\n"),
        ("q2.csv", "c\n3\n"),
    ]
    assert folder(site, alice, "\\Drafts") == []
