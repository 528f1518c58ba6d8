"""Web mail in Chromium: the list, filters, selection, drag and drop, conversations, search,
folders, live counts, shortcuts and the phone and dark layouts, as the reader sees them."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from postroom import store
from tests.browser.conftest import Login, Site, axe_violations, mail

SUBJECTS = "#messages li[data-uid] .subject b"


def rows(page: Page) -> list[str]:
    """The subjects in the list, top to bottom, once the list is up to date."""
    page.wait_for_selector("#list-scroll[aria-busy=false]", state="attached")
    return page.locator(SUBJECTS).all_text_contents()


def test_the_list_shows_newest_first_and_sorts_by_subject(site: Site, login: Login) -> None:
    alice = site.user("alice")
    for subject in ("Banana", "Apple", "Cherry"):
        site.deliver(alice, mail(subject))
    page = login(alice)
    page.wait_for_selector("#messages li[data-uid]:nth-child(3)")
    assert rows(page) == ["Cherry", "Apple", "Banana"]
    assert page.text_content("#list-count") == "3 messages"
    page.select_option("#sort", "subject")
    expect(page.locator(SUBJECTS)).to_have_text(["Cherry", "Banana", "Apple"])
    page.click("#order")
    expect(page.locator(SUBJECTS)).to_have_text(["Apple", "Banana", "Cherry"])


def test_unread_and_flagged_filters(site: Site, login: Login) -> None:
    alice = site.user("alice")
    site.deliver(alice, mail("Read one"), flags=["\\Seen"])
    site.deliver(alice, mail("Unread one"))
    site.deliver(alice, mail("Flagged one"), flags=["\\Seen", "\\Flagged"])
    page = login(alice)
    page.wait_for_selector("#messages li[data-uid]:nth-child(3)")
    assert page.get_attribute("#messages li:has-text('Unread one')", "class") == "unread"
    assert page.locator("#messages li:has-text('Flagged one') [aria-label=flagged]").count() == 1
    page.select_option("#filter", "unread")
    expect(page.locator(SUBJECTS)).to_have_text(["Unread one"])
    page.select_option("#filter", "flagged")
    expect(page.locator(SUBJECTS)).to_have_text(["Flagged one"])


def test_selected_messages_are_marked_read_and_moved_together(site: Site, login: Login) -> None:
    alice = site.user("alice")
    for n in range(3):
        site.deliver(alice, mail(f"Note {n}"))
    page = login(alice)
    page.wait_for_selector("#messages li[data-uid]:nth-child(3)")
    assert page.text_content("#folders li[data-name=INBOX] .count") == "3"
    page.check("#messages li:has-text('Note 0') input[type=checkbox]")
    page.check("#messages li:has-text('Note 1') input[type=checkbox]")
    assert page.text_content("#selection-count") == "2 selected"
    page.click("#bulk-read")
    page.wait_for_selector("#folders li[data-name=INBOX] .count:text-is('1')")
    # The list is redrawn after a bulk change; it is busy until its first page is back.
    page.wait_for_selector("#list-scroll:not([aria-busy=true]) #messages li[data-uid]:nth-child(3)")
    assert "unread" not in (page.get_attribute("#messages li:has-text('Note 0')", "class") or "")
    page.check("#select-all")
    assert page.text_content("#selection-count") == "3 selected"
    page.select_option("#bulk-target", label="Archive")
    page.click("#bulk-move")
    page.wait_for_selector("#status:has-text('3 messages moved to Archive.')")
    page.wait_for_selector("#list-empty:not([hidden])")
    page.click("#folders li[data-name=Archive] a")
    page.wait_for_selector("#messages li[data-uid]:nth-child(3)")
    assert sorted(rows(page)) == ["Note 0", "Note 1", "Note 2"]


def test_a_message_dragged_onto_a_folder_moves_there(site: Site, login: Login) -> None:
    alice = site.user("alice")
    site.deliver(alice, mail("Receipt"))
    site.deliver(alice, mail("Keep me"))
    page = login(alice)
    page.wait_for_selector("#messages li:has-text('Receipt')")
    page.drag_and_drop("#messages li:has-text('Receipt')", "#folders li[data-name=Archive] a")
    page.wait_for_selector("#status:has-text('Message moved to Archive.')")
    expect(page.locator(SUBJECTS)).to_have_text(["Keep me"])
    page.click("#folders li[data-name=Archive] a")
    page.wait_for_selector("#messages li:has-text('Receipt')")


def test_a_conversation_gathers_replies_by_references(site: Site, login: Login) -> None:
    alice = site.user("alice")
    site.deliver(alice, mail("Trip", "Shall we go?", message_id="<t1@x.test>"))
    site.deliver(
        alice,
        mail("Re: Trip", "Yes!", message_id="<t2@x.test>", extra="In-Reply-To: <t1@x.test>\r\n"),
        folder="Sent",
    )
    site.deliver(
        alice,
        mail(
            "Re: Trip",
            "When?",
            message_id="<t3@x.test>",
            date="Fri, 27 Nov 2026 09:00:00 +0000",
            extra="References: <t1@x.test> <t2@x.test>\r\n",
        ),
    )
    site.deliver(alice, mail("Unrelated"))
    page = login(alice)
    page.click("#messages li:has-text('When?') .open")
    page.wait_for_selector("#thread:not([hidden]) li:nth-child(3)")
    items = page.eval_on_selector_all("#thread li", "ns => ns.map(n => n.textContent)")
    assert [i.rsplit(" · ", 1)[1] for i in items] == ["Trip", "Re: Trip (Sent)", "Re: Trip"]
    page.click("#thread li:nth-child(1) a")
    page.wait_for_selector("#reader-text:text-is('Shall we go?')")


def test_search_operators_find_what_they_say(site: Site, login: Login) -> None:
    alice = site.user("alice")
    site.deliver(alice, mail("Budget", sender="Ann <ann@corp.test>"), flags=["\\Seen"])
    site.deliver(alice, mail("Party", sender="Bob <bob@home.test>"))
    site.deliver(alice, mail("Old plan", date="Mon, 05 Jan 2026 10:00:00 +0000"))
    site.deliver(alice, mail("Filed away"), folder="Archive")
    page = login(alice)
    page.wait_for_selector("#messages li[data-uid]:nth-child(3)")

    def search(query: str) -> list[str]:
        page.fill("#q", query)
        page.press("#q", "Enter")
        expect(page.locator("#list-title")).to_contain_text(query)
        return sorted(rows(page))

    assert search("from:ann") == ["Budget"]
    assert search("is:unread") == ["Old plan", "Party"]
    assert search("before:2026-02-01") == ["Old plan"]
    assert search("in:Archive") == ["Filed away"]
    assert search("has:attachment") == []
    page.fill("#q", "before:someday")
    page.press("#q", "Enter")
    page.wait_for_selector("#status:has-text('before: wants a date as YYYY-MM-DD')")


def test_folders_are_created_nested_renamed_and_deleted(site: Site, login: Login) -> None:
    alice = site.user("alice")
    page = login(alice)
    page.click("#folder-new")
    page.fill("#folder-form input[name=name]", "Projects")
    page.click("#folder-form button[type=submit]")
    page.wait_for_selector("#folders li[data-name=Projects]")
    page.click("#folder-new")
    page.fill("#folder-form input[name=name]", "Postroom")
    page.select_option("#folder-form select[name=parent]", "Projects")
    page.click("#folder-form button[type=submit]")
    child = page.wait_for_selector("#folders li[data-name='Projects/Postroom']")
    assert child.text_content() == "Postroom"
    page.click("#folders li[data-name=Projects] a")
    page.click("#folder-rename")
    page.fill("#folder-form input[name=name]", "Work")
    page.click("#folder-form button[type=submit]")
    page.wait_for_selector("#folders li[data-name='Work/Postroom']")
    expect(page.locator("#folders li[data-name=Projects]")).to_have_count(0)
    page.click("#folders li[data-name='Work/Postroom'] a")
    page.once("dialog", lambda d: d.accept())
    page.click("#folder-delete")
    page.wait_for_selector("#status:has-text('Folder Work/Postroom deleted.')")
    expect(page.locator("#folders li[data-name='Work/Postroom']")).to_have_count(0)


def test_unread_counts_update_live_when_mail_arrives(site: Site, login: Login) -> None:
    alice = site.user("alice")
    page = login(alice)
    page.wait_for_selector("body[data-live=yes]")
    assert page.locator("#folders li[data-name=INBOX] .count").count() == 0
    site.deliver(alice, mail("Fresh news"))
    page.wait_for_selector("#folders li[data-name=INBOX] .count:text-is('1')")
    page.wait_for_selector("#messages li.unread:has-text('Fresh news')")


def test_keyboard_shortcuts(site: Site, login: Login) -> None:
    alice = site.user("alice")
    for subject in ("First", "Second", "Third"):
        site.deliver(alice, mail(subject, f"Body of {subject}"))
    page = login(alice)
    page.wait_for_selector("#messages li[data-uid]:nth-child(3)")
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    page.keyboard.press("o")
    page.wait_for_selector("#reader-text:text-is('Body of Third')")
    page.keyboard.press("j")
    page.wait_for_selector("#reader-text:text-is('Body of Second')")
    page.keyboard.press("r")
    expect(page.locator("#compose")).to_be_visible()
    assert page.input_value("#compose-form input[name=subject]") == "Re: Second"
    page.keyboard.press("Escape")
    expect(page.locator("#compose")).to_be_hidden()
    page.keyboard.press("#")
    # The list loses the message (the status line may already tell of something later, such
    # as the draft the closed reply left).
    expect(page.locator("#messages li[data-uid]")).to_have_count(2)
    expect(page.locator("#messages")).not_to_contain_text("Second")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.press("Escape")
    page.keyboard.press("?")
    expect(page.locator("#shortcuts")).to_be_visible()
    assert "reply all" in (page.text_content("#shortcuts") or "")
    page.keyboard.press("Escape")
    expect(page.locator("#shortcuts")).to_be_hidden()
    page.keyboard.press("c")
    expect(page.locator("#compose-title")).to_have_text("New message")


def test_a_phone_shows_one_pane_and_never_scrolls_sideways(site: Site, login: Login) -> None:
    alice = site.user("alice")
    site.deliver(alice, mail("A subject long enough to need cutting " * 5, "Short body."))
    page = login(alice, viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    page.wait_for_selector("#messages li[data-uid]")
    assert not page.is_visible("#folder-pane")
    assert not page.is_visible("#reader-pane")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.click("#messages li[data-uid] .open")
    page.wait_for_selector("#reader-text:text-is('Short body.')")
    assert not page.is_visible("#list-pane")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.click("#back-button")
    assert page.is_visible("#list-pane")
    page.click("#show-folders")
    assert page.is_visible("#folders")


def test_dark_mode_follows_the_system_setting(site: Site, login: Login) -> None:
    alice = site.user("alice")
    light = login(alice)
    dark = login(alice, color_scheme="dark")
    background = "getComputedStyle(document.body).backgroundColor"
    assert light.evaluate(background) == "rgb(255, 255, 255)"
    assert dark.evaluate(background) == "rgb(15, 20, 25)"


def test_the_mail_page_has_no_serious_accessibility_violation(site: Site, login: Login) -> None:
    alice = site.user("alice")
    site.deliver(alice, mail("Accessible", "Readable."))
    page = login(alice)
    page.click("#messages li[data-uid] .open")
    page.wait_for_selector("#reader-text:text-is('Readable.')")
    assert not page.is_visible("#images-note")  # a plain text message has no images
    assert axe_violations(page) == []
    page.click("#compose-button")
    assert axe_violations(page) == []


def test_a_long_folder_keeps_only_visible_rows_in_the_page(site: Site, login: Login) -> None:
    alice = site.user("alice")

    async def fill() -> None:
        box = await store.get_mailbox(site.conn, alice.id, "Archive")
        inbox = await store.get_mailbox(site.conn, alice.id, "INBOX")
        assert box is not None
        assert inbox is not None
        for n in range(50):
            await store.append_message(site.conn, box.id, mail(f"Message {n}"))
        uids = await store.list_uids(site.conn, box.id)
        for _ in range(40):
            await store.copy_messages(site.conn, box.id, uids, inbox.id)

    site.run(fill())
    page = login(alice)
    page.wait_for_selector("#messages li[data-uid]")
    assert page.text_content("#list-count") == "2,000 messages"
    assert page.locator("#messages li").count() < 40
    # Scrolled to the end (again while the list is still settling: a redraw after the first
    # scroll, on a loaded machine, may come before the end's rows are asked for).
    page.wait_for_function(
        """() => {
            const s = document.querySelector("#list-scroll");
            s.scrollTop = s.scrollHeight;
            return document.querySelector("#messages li[aria-posinset='2000'][data-uid]");
        }""",
        polling=250,
    )
    assert page.locator("#messages li").count() < 40


def test_select_all_takes_every_message_of_the_folder_not_only_the_loaded(
    site: Site, login: Login
) -> None:
    alice = site.user("alice")
    for i in range(130):  # more than one page of the list (100)
        site.deliver(alice, mail(f"Bulk {i}"))
    page = login(alice)
    expect(page.locator("#list-count")).to_have_text("130 messages")
    page.check("#select-all")
    expect(page.locator("#select-banner")).to_be_visible()
    expect(page.locator("#select-banner-text")).to_have_text(
        "All 130 messages in INBOX are selected."
    )
    assert page.text_content("#selection-count") == "130 selected"
    assert axe_violations(page) == []
    page.click("#bulk-read")
    page.wait_for_selector("#folders li[data-name=INBOX] a:not(:has(.count))")
    expect(page.locator("#select-banner")).to_be_hidden()

    async def unread() -> int:
        box = await store.get_mailbox(site.conn, alice.id, "INBOX")
        assert box is not None
        cur = await site.conn.execute(
            "SELECT count(*) AS n FROM messages WHERE mailbox_id = %s AND NOT seen", (box.id,)
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row["n"])

    assert site.run(unread()) == 0
    page.check("#select-all")
    page.click("#select-clear")
    expect(page.locator("#select-banner")).to_be_hidden()
    assert page.text_content("#selection-count") == "Select all"


def test_the_list_by_conversation_is_kept_and_moves_whole_conversations(
    site: Site, login: Login
) -> None:
    alice = site.user("alice")
    site.deliver(alice, mail("Trip", message_id="<trip1@x.test>"), flags=["\\Seen"])
    site.deliver(alice, mail("Lunch"), flags=["\\Seen"])
    site.deliver(
        alice,
        mail("Re: Trip", message_id="<trip2@x.test>", extra="In-Reply-To: <trip1@x.test>\r\n"),
    )
    site.deliver(
        alice,
        mail(
            "Re: Trip",
            message_id="<trip3@x.test>",
            extra="References: <trip1@x.test> <trip2@x.test>\r\n",
        ),
        flags=["\\Seen"],
    )
    page = login(alice)
    expect(page.locator(SUBJECTS)).to_have_count(4)
    page.check("#conversations")
    expect(page.locator(SUBJECTS)).to_have_text(["Re: Trip", "Lunch"])
    trip = page.locator("#messages li", has_text="Re: Trip")
    expect(trip.locator(".thread-count")).to_have_text("3")
    expect(trip).to_have_class(re.compile(r"\bunread\b"))  # one of its three is unread
    expect(page.locator("#list-count")).to_have_text("2 conversations")
    assert axe_violations(page) == []
    page.reload()  # the choice is kept (a preference of the account)
    expect(page.locator("#conversations")).to_be_checked()
    expect(page.locator(SUBJECTS)).to_have_text(["Re: Trip", "Lunch"])
    trip.locator("input[type=checkbox]").check()
    page.select_option("#bulk-target", label="Archive")
    page.click("#bulk-move")
    page.wait_for_selector("#status:has-text('1 conversation moved to Archive.')")
    expect(page.locator(SUBJECTS)).to_have_text(["Lunch"])
    page.click("#folders li[data-name=Archive] a")
    expect(page.locator("#list-count")).to_have_text("1 conversation")
    page.uncheck("#conversations")
    expect(page.locator(SUBJECTS)).to_have_count(3)
