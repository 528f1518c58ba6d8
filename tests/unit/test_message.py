"""Message parsing: envelope, MIME structure and BODY[section] bytes, decoding, search text."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from postroom.message import (
    MAX_DEPTH,
    MAX_PARTS,
    MAX_SEARCH_TEXT,
    Address,
    Attachment,
    BodyPart,
    ParsedMessage,
    decode_header_value,
    find_part,
    header_fields,
    parse_message,
    part_bytes,
)


def crlf(text: str) -> bytes:
    """A message written with "\\n" line ends, as it travels: CRLF."""
    return text.replace("\n", "\r\n").encode("utf-8")


def section(raw: bytes, name: str) -> bytes | None:
    return part_bytes(raw, parse_message(raw).body, name)


def part(raw: bytes, number: str) -> BodyPart:
    node = find_part(parse_message(raw).body, number)
    assert node is not None, number
    return node


SIMPLE = crlf(
    "From: Alice <alice@example.org>\n"
    "To: bob@example.net\n"
    "Subject: Lunch\n"
    "Date: Tue, 01 Jul 2025 12:30:00 +0200\n"
    "Message-ID: <lunch.1@example.org>\n"
    "\n"
    "Shall we meet at noon?\n"
    "Alice\n"
)
SIMPLE_HEADER = crlf(
    "From: Alice <alice@example.org>\n"
    "To: bob@example.net\n"
    "Subject: Lunch\n"
    "Date: Tue, 01 Jul 2025 12:30:00 +0200\n"
    "Message-ID: <lunch.1@example.org>\n"
    "\n"
)

MIXED_HEADER = crlf(
    "From: alice@example.org\n"
    "To: bob@example.net\n"
    "Subject: Report\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/mixed; boundary="frontier"\n'
    "\n"
)
MIXED_TEXT = crlf(
    "This is the preamble, which readers ignore.\n"
    "--frontier\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "\n"
    "The report is attached.\n"
    "--frontier\n"
    "Content-Type: application/pdf; name=report.pdf\n"
    'Content-Disposition: attachment; filename="report.pdf"\n'
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "JVBERi0xLjQK\n"
    "--frontier--\n"
    "This is the epilogue.\n"
)
MIXED = MIXED_HEADER + MIXED_TEXT


# --- a simple message ------------------------------------------------------------------------


def test_simple_message_body_is_part_1_of_type_text_plain() -> None:
    body = parse_message(SIMPLE).body

    assert (body.part, body.type, body.subtype) == ("1", "text", "plain")
    assert body.children == ()


def test_simple_message_without_content_type_gets_the_rfc2045_default_charset() -> None:
    body = parse_message(SIMPLE).body

    assert body.params == (("charset", "us-ascii"),)
    assert body.encoding == "7BIT"


def test_simple_message_offsets_split_header_and_body() -> None:
    message = parse_message(SIMPLE)

    assert message.size == len(SIMPLE)
    assert message.header_size == len(SIMPLE_HEADER)
    assert (message.body.header_start, message.body.body_start, message.body.end) == (
        0,
        len(SIMPLE_HEADER),
        len(SIMPLE),
    )
    assert message.body.size == len(b"Shall we meet at noon?\r\nAlice\r\n")


def test_simple_message_lines_count_the_body_lines() -> None:
    assert parse_message(SIMPLE).body.lines == 2


def test_simple_message_body_1_and_text_are_the_body() -> None:
    assert section(SIMPLE, "1") == b"Shall we meet at noon?\r\nAlice\r\n"
    assert section(SIMPLE, "TEXT") == b"Shall we meet at noon?\r\nAlice\r\n"


def test_simple_message_header_includes_the_blank_line() -> None:
    assert section(SIMPLE, "HEADER") == SIMPLE_HEADER


def test_empty_section_is_the_whole_message() -> None:
    assert section(SIMPLE, "") == SIMPLE


def test_simple_message_envelope_is_raw_header_values() -> None:
    envelope = parse_message(SIMPLE).envelope

    assert envelope.date == "Tue, 01 Jul 2025 12:30:00 +0200"
    assert envelope.subject == "Lunch"
    assert envelope.from_ == (Address("Alice", None, "alice", "example.org"),)
    assert envelope.to == (Address(None, None, "bob", "example.net"),)
    assert envelope.cc is None
    assert envelope.bcc is None
    assert envelope.in_reply_to is None
    assert envelope.message_id == "<lunch.1@example.org>"


def test_simple_message_summary_fields() -> None:
    message = parse_message(SIMPLE)

    assert message.subject == "Lunch"
    assert message.from_ == (("Alice", "alice@example.org"),)
    assert message.to == (("", "bob@example.net"),)
    assert message.cc == ()
    assert message.message_id == "<lunch.1@example.org>"
    assert message.date == datetime(2025, 7, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    assert message.has_attachments is False
    assert message.attachments == ()
    assert message.preview == "Shall we meet at noon? Alice"


# --- multipart/mixed with an attachment ---------------------------------------------------------


def test_multipart_top_node_has_no_number_and_numbered_children() -> None:
    body = parse_message(MIXED).body

    assert (body.part, body.type, body.subtype) == ("", "multipart", "mixed")
    assert body.params == (("boundary", "frontier"),)
    assert [(c.part, c.type, c.subtype) for c in body.children] == [
        ("1", "text", "plain"),
        ("2", "application", "pdf"),
    ]


def test_multipart_body_1_is_the_text_without_the_crlf_before_the_delimiter() -> None:
    # RFC 2046 §5.1.1: the CRLF before a delimiter line belongs to the delimiter.
    assert section(MIXED, "1") == b"The report is attached."


def test_multipart_body_2_is_the_encoded_attachment() -> None:
    assert section(MIXED, "2") == b"JVBERi0xLjQK"


def test_multipart_body_2_mime_is_the_part_header_with_its_blank_line() -> None:
    assert section(MIXED, "2.MIME") == crlf(
        "Content-Type: application/pdf; name=report.pdf\n"
        'Content-Disposition: attachment; filename="report.pdf"\n'
        "Content-Transfer-Encoding: base64\n"
        "\n"
    )


def test_multipart_text_is_everything_after_the_header_preamble_and_epilogue_included() -> None:
    assert section(MIXED, "TEXT") == MIXED_TEXT


def test_multipart_header_is_the_message_header() -> None:
    assert section(MIXED, "HEADER") == MIXED_HEADER


def test_multipart_part_fields_for_bodystructure() -> None:
    attachment = part(MIXED, "2")

    assert attachment.params == (("name", "report.pdf"),)
    assert attachment.encoding == "BASE64"
    assert attachment.disposition == ("attachment", (("filename", "report.pdf"),))
    assert attachment.size == len(b"JVBERi0xLjQK")
    assert attachment.lines is None
    assert attachment.filename == "report.pdf"


def test_attachment_is_listed_with_its_decoded_size() -> None:
    message = parse_message(MIXED)

    assert message.has_attachments is True
    assert message.attachments == (Attachment("2", "report.pdf", "application/pdf", 9),)


def test_epilogue_and_preamble_are_not_search_text() -> None:
    text = parse_message(MIXED).text

    assert "The report is attached." in text
    assert "preamble" not in text
    assert "epilogue" not in text


# --- nested multipart ---------------------------------------------------------------------------


NESTED = crlf(
    "From: alice@example.org\n"
    'Content-Type: multipart/mixed; boundary="outer"\n'
    "\n"
    "--outer\n"
    'Content-Type: multipart/alternative; boundary="inner"\n'
    "\n"
    "--inner\n"
    "Content-Type: text/plain\n"
    "\n"
    "Plain words\n"
    "--inner\n"
    "Content-Type: text/html\n"
    "\n"
    "<p>Rich <b>words</b></p>\n"
    "--inner--\n"
    "--outer\n"
    "Content-Type: image/png\n"
    "Content-Disposition: inline; filename=logo.png\n"
    "\n"
    "PNG\n"
    "--outer--\n"
)


def test_nested_alternative_inside_mixed_is_numbered_1_1_1_2_then_2() -> None:
    body = parse_message(NESTED).body
    numbered = [(c.part, c.content_type) for c in body.children]
    numbered += [(c.part, c.content_type) for c in body.children[0].children]

    assert numbered == [
        ("1", "multipart/alternative"),
        ("2", "image/png"),
        ("1.1", "text/plain"),
        ("1.2", "text/html"),
    ]


def test_nested_parts_have_exact_bytes() -> None:
    assert section(NESTED, "1.1") == b"Plain words"
    assert section(NESTED, "1.2") == b"<p>Rich <b>words</b></p>"
    assert section(NESTED, "1.2.MIME") == b"Content-Type: text/html\r\n\r\n"
    assert section(NESTED, "2") == b"PNG"


def test_nested_multipart_part_body_is_its_own_mime_body() -> None:
    assert section(NESTED, "1") == crlf(
        "--inner\n"
        "Content-Type: text/plain\n"
        "\n"
        "Plain words\n"
        "--inner\n"
        "Content-Type: text/html\n"
        "\n"
        "<p>Rich <b>words</b></p>\n"
        "--inner--"
    )


def test_search_text_takes_the_plain_alternative_only() -> None:
    message = parse_message(NESTED)

    assert message.text.endswith("Plain words")
    assert "Rich" not in message.text


def test_non_text_part_with_a_filename_is_an_attachment_even_inline() -> None:
    assert parse_message(NESTED).attachments == (Attachment("2", "logo.png", "image/png", 3),)


# --- message/rfc822 -----------------------------------------------------------------------------


FORWARDED_INNER_HEADER = crlf(
    "From: Carol <carol@example.com>\n"
    "To: alice@example.org\n"
    "Subject: Original\n"
    "Date: Mon, 30 Jun 2025 09:00:00 +0000\n"
    "Message-ID: <orig@example.com>\n"
    "\n"
)
FORWARDED_INNER_BODY = crlf("The original text.\n")
FORWARDED = (
    crlf(
        "From: alice@example.org\n"
        "Subject: Fwd: Original\n"
        'Content-Type: multipart/mixed; boundary="fwd"\n'
        "\n"
        "--fwd\n"
        "Content-Type: text/plain\n"
        "\n"
        "See below.\n"
        "--fwd\n"
        "Content-Type: message/rfc822\n"
        "\n"
    )
    + FORWARDED_INNER_HEADER
    + FORWARDED_INNER_BODY
    + crlf("--fwd--\n")
)


def test_message_rfc822_part_has_the_envelope_of_the_encapsulated_message() -> None:
    envelope = part(FORWARDED, "2").envelope

    assert envelope is not None
    assert envelope.subject == "Original"
    assert envelope.from_ == (Address("Carol", None, "carol", "example.com"),)
    assert envelope.sender == envelope.from_
    assert envelope.to == (Address(None, None, "alice", "example.org"),)
    assert envelope.message_id == "<orig@example.com>"


def test_message_rfc822_part_has_the_encapsulated_body_as_its_child() -> None:
    forwarded = part(FORWARDED, "2")

    assert forwarded.content_type == "message/rfc822"
    assert [(c.part, c.content_type) for c in forwarded.children] == [("2.1", "text/plain")]
    assert forwarded.lines == 7


def test_message_rfc822_body_2_is_the_whole_encapsulated_message() -> None:
    # The CRLF before "--fwd--" belongs to the delimiter (RFC 2046 §5.1.1).
    assert section(FORWARDED, "2") == FORWARDED_INNER_HEADER + b"The original text."


def test_message_rfc822_2_header_and_2_text() -> None:
    assert section(FORWARDED, "2.HEADER") == FORWARDED_INNER_HEADER
    assert section(FORWARDED, "2.TEXT") == b"The original text."


def test_message_rfc822_single_part_body_is_2_1() -> None:
    # RFC 3501 §6.4.5: a non-multipart message has only a part 1.
    assert section(FORWARDED, "2.1") == b"The original text."
    assert section(FORWARDED, "2.2") is None


def test_message_rfc822_2_header_fields() -> None:
    assert section(FORWARDED, "2.HEADER.FIELDS (Subject)") == b"Subject: Original\r\n\r\n"


def test_encapsulated_message_is_searchable() -> None:
    text = parse_message(FORWARDED).text

    assert "Carol <carol@example.com>" in text
    assert "Original" in text
    assert "The original text." in text


def test_message_rfc822_is_not_listed_as_an_attachment_when_inline() -> None:
    assert parse_message(FORWARDED).attachments == ()


def test_message_rfc822_with_disposition_attachment_is_an_attachment() -> None:
    raw = FORWARDED.replace(
        b"Content-Type: message/rfc822\r\n",
        b"Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n",
    )
    size = len(FORWARDED_INNER_HEADER) + len(b"The original text.")

    assert parse_message(raw).attachments == (Attachment("2", None, "message/rfc822", size),)


def test_base64_message_rfc822_stays_an_opaque_leaf() -> None:
    # RFC 2046 §5.2.1 allows only 7bit, 8bit or binary for message/rfc822.
    raw = crlf(
        "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nU3ViamVjdDogeAoK\n"
    )
    body = parse_message(raw).body

    assert (body.content_type, body.envelope, body.children) == ("message/rfc822", None, ())
    assert section(raw, "1") == b"U3ViamVjdDogeAoK\r\n"
    assert section(raw, "1.HEADER") is None


# The example message of RFC 3501 §6.4.5, with every part's body naming its section.
RFC3501_EXAMPLE = crlf(
    "From: a@example.org\n"
    "Subject: RFC 3501 section 6.4.5\n"
    'Content-Type: multipart/mixed; boundary="outer"\n'
    "\n"
    "--outer\n"
    "Content-Type: text/plain\n"
    "\n"
    "part 1\n"
    "--outer\n"
    "Content-Type: application/octet-stream\n"
    "\n"
    "part 2\n"
    "--outer\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "Subject: part 3\n"
    'Content-Type: multipart/mixed; boundary="three"\n'
    "\n"
    "--three\n"
    "Content-Type: text/plain\n"
    "\n"
    "part 3.1\n"
    "--three\n"
    "Content-Type: application/octet-stream\n"
    "\n"
    "part 3.2\n"
    "--three--\n"
    "--outer\n"
    'Content-Type: multipart/mixed; boundary="four"\n'
    "\n"
    "--four\n"
    "Content-Type: image/gif\n"
    "\n"
    "part 4.1\n"
    "--four\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "Subject: part 4.2\n"
    'Content-Type: multipart/mixed; boundary="fourtwo"\n'
    "\n"
    "--fourtwo\n"
    "Content-Type: text/plain\n"
    "\n"
    "part 4.2.1\n"
    "--fourtwo\n"
    'Content-Type: multipart/alternative; boundary="alt"\n'
    "\n"
    "--alt\n"
    "Content-Type: text/plain\n"
    "\n"
    "part 4.2.2.1\n"
    "--alt\n"
    "Content-Type: text/richtext\n"
    "\n"
    "part 4.2.2.2\n"
    "--alt--\n"
    "--fourtwo--\n"
    "--four--\n"
    "--outer--\n"
)


@pytest.mark.parametrize(
    ("number", "content_type"),
    [
        ("1", "text/plain"),
        ("2", "application/octet-stream"),
        ("3", "message/rfc822"),
        ("3.1", "text/plain"),
        ("3.2", "application/octet-stream"),
        ("4", "multipart/mixed"),
        ("4.1", "image/gif"),
        ("4.2", "message/rfc822"),
        ("4.2.1", "text/plain"),
        ("4.2.2", "multipart/alternative"),
        ("4.2.2.1", "text/plain"),
        ("4.2.2.2", "text/richtext"),
    ],
    ids=lambda value: str(value),
)
def test_rfc3501_example_part_numbers(number: str, content_type: str) -> None:
    node = part(RFC3501_EXAMPLE, number)

    assert (node.part, node.content_type) == (number, content_type)


@pytest.mark.parametrize("number", ["1", "2", "3.1", "3.2", "4.1", "4.2.1", "4.2.2.1", "4.2.2.2"])
def test_rfc3501_example_leaf_bodies(number: str) -> None:
    assert section(RFC3501_EXAMPLE, number) == f"part {number}".encode()


def test_rfc3501_example_3_header_and_4_2_header() -> None:
    assert section(RFC3501_EXAMPLE, "3.HEADER") == crlf(
        'Subject: part 3\nContent-Type: multipart/mixed; boundary="three"\n\n'
    )
    assert section(RFC3501_EXAMPLE, "4.2.HEADER") == crlf(
        'Subject: part 4.2\nContent-Type: multipart/mixed; boundary="fourtwo"\n\n'
    )


def test_rfc3501_example_4_2_text_is_the_encapsulated_multipart_body() -> None:
    text = section(RFC3501_EXAMPLE, "4.2.TEXT")

    assert text is not None
    assert text.startswith(b"--fourtwo\r\n")
    assert text.endswith(b"--fourtwo--")


def test_rfc3501_example_4_1_mime_is_the_image_part_header() -> None:
    assert section(RFC3501_EXAMPLE, "4.1.MIME") == b"Content-Type: image/gif\r\n\r\n"


def test_rfc3501_example_4_2_envelope() -> None:
    envelope = part(RFC3501_EXAMPLE, "4.2").envelope

    assert envelope is not None
    assert envelope.subject == "part 4.2"
    assert envelope.from_ is None


@pytest.mark.parametrize(
    "name",
    ["5", "1.1", "2.1", "4.3", "4.2.3", "0", "01", "1..2", "x", "1.HEADER", "MIME", "1.BOGUS"],
)
def test_sections_that_do_not_exist_are_none(name: str) -> None:
    assert section(RFC3501_EXAMPLE, name) is None


def test_section_keywords_are_case_insensitive() -> None:
    assert section(RFC3501_EXAMPLE, "4.2.header") == section(RFC3501_EXAMPLE, "4.2.HEADER")
    assert section(RFC3501_EXAMPLE, "4.1.mime") == section(RFC3501_EXAMPLE, "4.1.MIME")


def test_find_part_of_empty_string_is_the_top_node() -> None:
    body = parse_message(RFC3501_EXAMPLE).body

    assert find_part(body, "") is body


# --- header decoding ----------------------------------------------------------------------------


def test_rfc2047_subject_is_decoded_for_display_and_raw_in_the_envelope() -> None:
    raw = crlf("Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus =?ISO-8859-1?B?S/Zsbg==?=\n\nx")
    message = parse_message(raw)

    assert message.subject == "Grüße aus Köln"
    assert message.envelope.subject == "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus =?ISO-8859-1?B?S/Zsbg==?="


def test_rfc2047_white_space_between_adjacent_encoded_words_is_dropped() -> None:
    # RFC 2047 §6.2
    assert decode_header_value("=?utf-8?q?a?= =?utf-8?q?b?=") == "ab"
    assert decode_header_value("=?utf-8?q?a?=\r\n =?utf-8?q?_b?=") == "a b"


def test_rfc2047_character_split_across_words_is_joined() -> None:
    # "é" is C3 A9 in UTF-8; some mailers split it across two words.
    assert decode_header_value("=?utf-8?b?w6k=?=") == "é"
    assert decode_header_value("=?utf-8?q?=C3?= =?utf-8?q?=A9t=C3=A9?=") == "été"


def test_rfc2047_folded_value_is_unfolded() -> None:
    assert decode_header_value("Hello\r\n world") == "Hello world"


def test_rfc2231_language_in_encoded_word_charset_is_ignored() -> None:
    # RFC 2231 §5
    assert decode_header_value("=?US-ASCII*EN?Q?Keith_Moore?=") == "Keith Moore"


@pytest.mark.parametrize(
    "value",
    ["=?x-unknown-charset?q?caf=E9?=", "=?utf-8?b?!!!?=", "=?utf-8?q?=ZZ?=", "=?utf-8?x?a?="],
    ids=["unknown-charset", "bad-base64", "bad-escape", "bad-encoding"],
)
def test_malformed_encoded_words_do_not_raise(value: str) -> None:
    assert isinstance(decode_header_value(value), str)


def test_unknown_charset_decodes_as_utf8_with_replacement() -> None:
    assert decode_header_value("=?x-unknown?q?caf=C3=A9_=FF?=") == "café \ufffd"


def test_raw_utf8_header_is_read_as_utf8() -> None:
    # RFC 6532 allows UTF-8 in header fields.
    assert parse_message("Subject: Grüße\r\n\r\n".encode()).subject == "Grüße"


def test_raw_8bit_header_that_is_not_utf8_is_read_as_latin1() -> None:
    assert parse_message(b"Subject: Gr\xfc\xdfe\r\n\r\n").subject == "Grüße"


def test_nul_in_header_is_replaced_so_postgres_can_store_it() -> None:
    assert parse_message(b"Subject: a\x00b\r\n\r\n").subject == "a\ufffdb"


# --- RFC 2231 parameters ------------------------------------------------------------------------


def test_rfc2231_filename_with_charset_is_decoded() -> None:
    raw = crlf(
        "Content-Type: application/octet-stream\n"
        "Content-Disposition: attachment; filename*=iso-8859-1'de'Gr%FC%DFe.txt\n"
        "\n"
        "x"
    )
    body = parse_message(raw).body

    assert body.filename == "Grüße.txt"
    assert body.disposition == ("attachment", (("filename", "Grüße.txt"),))


def test_rfc2231_continuations_are_joined_in_order() -> None:
    # RFC 2231 §3 and §4.1: literal and encoded segments may be mixed.
    raw = crlf(
        "Content-Type: application/pdf;\n"
        " name*1*=%E2%82%AC%20rates;\n"
        " name*0*=utf-8''2025%20;\n"
        ' name*2=".pdf"\n'
        "\n"
        "x"
    )
    body = parse_message(raw).body

    assert body.params == (("name", "2025 € rates.pdf"),)
    assert body.filename == "2025 € rates.pdf"


def test_rfc2047_encoded_filename_parameter_is_decoded() -> None:
    raw = crlf(
        'Content-Type: image/jpeg; name="=?UTF-8?B?0YTQvtGC0L4uanBn?="\n'
        "Content-Transfer-Encoding: base64\n"
        "\n"
        "/9j/\n"
    )
    message = parse_message(raw)

    assert message.body.filename == "фото.jpg"
    assert message.attachments == (Attachment("1", "фото.jpg", "image/jpeg", 3),)


def test_directory_in_filename_is_dropped() -> None:
    # RFC 2183 §2.3
    raw = crlf(
        'Content-Type: text/plain\nContent-Disposition: attachment; filename="../x/y.txt"\n\n'
    )

    assert parse_message(raw).body.filename == "y.txt"


def test_parameter_names_are_lowercased_and_quotes_removed() -> None:
    raw = crlf('Content-Type: Text/HTML; CharSet="ISO-8859-1"; Format=flowed\n\nx')
    body = parse_message(raw).body

    assert (body.type, body.subtype) == ("text", "html")
    assert body.params == (("charset", "ISO-8859-1"), ("format", "flowed"))


def test_quoted_parameter_may_hold_semicolons_and_escapes() -> None:
    raw = crlf('Content-Type: application/x-a; name="a;b \\"c\\".txt"\n\nx')

    assert parse_message(raw).body.params == (("name", 'a;b "c".txt'),)


# --- addresses ----------------------------------------------------------------------------------


def test_group_syntax_in_to_gives_start_and_end_markers() -> None:
    # RFC 3501 §7.4.2: group start (NIL NIL "name" NIL), group end (NIL NIL NIL NIL).
    raw = crlf("To: Team: ann@example.org, Bob <bob@example.org>;, carl@example.org\n\nx")

    assert parse_message(raw).envelope.to == (
        Address(None, None, "Team", None),
        Address(None, None, "ann", "example.org"),
        Address("Bob", None, "bob", "example.org"),
        Address(None, None, None, None),
        Address(None, None, "carl", "example.org"),
    )


def test_empty_group_gives_start_and_end_markers() -> None:
    raw = crlf("To: undisclosed-recipients:;\n\nx")

    assert parse_message(raw).envelope.to == (
        Address(None, None, "undisclosed-recipients", None),
        Address(None, None, None, None),
    )


def test_group_members_are_in_the_decoded_address_list() -> None:
    raw = crlf("To: Team: ann@example.org, Bob <bob@example.org>;\n\nx")

    assert parse_message(raw).to == (("", "ann@example.org"), ("Bob", "bob@example.org"))


def test_quoted_display_name_is_unquoted_but_encoded_words_kept() -> None:
    raw = crlf('From: "Doe, John" <j@example.org>, =?utf-8?q?J=C3=B6rg?= <jorg@example.org>\n\n')
    message = parse_message(raw)

    assert message.envelope.from_ == (
        Address("Doe, John", None, "j", "example.org"),
        Address("=?utf-8?q?J=C3=B6rg?=", None, "jorg", "example.org"),
    )
    assert message.from_ == (("Doe, John", "j@example.org"), ("Jörg", "jorg@example.org"))


def test_comment_after_bare_address_is_the_display_name() -> None:
    raw = crlf("From: carl@example.org (Carl Sagan)\n\n")

    assert parse_message(raw).envelope.from_ == (
        Address("Carl Sagan", None, "carl", "example.org"),
    )


def test_source_route_is_the_adl() -> None:
    # RFC 5322 §4.4 obs-route; RFC 3501 §7.4.2: the at-domain-list of the address.
    raw = crlf("From: Old <@relay.example,@gw.example:old@example.org>\n\n")

    assert parse_message(raw).envelope.from_ == (
        Address("Old", "@relay.example,@gw.example", "old", "example.org"),
    )


def test_quoted_local_part_keeps_its_quotes() -> None:
    raw = crlf('To: "john doe"@example.org\n\n')

    assert parse_message(raw).envelope.to == (Address(None, None, '"john doe"', "example.org"),)


def test_address_without_domain_has_empty_host_not_nil() -> None:
    # NIL host would mean group syntax to an IMAP client.
    raw = crlf("From: MAILER-DAEMON\n\n")

    assert parse_message(raw).envelope.from_ == (Address(None, None, "MAILER-DAEMON", ""),)


def test_sender_and_reply_to_default_to_from() -> None:
    # RFC 3501 §7.4.2
    envelope = parse_message(SIMPLE).envelope

    assert envelope.sender == envelope.from_
    assert envelope.reply_to == envelope.from_


def test_empty_sender_and_reply_to_default_to_from() -> None:
    raw = crlf("From: a@example.org\nSender:\nReply-To: \n\n")
    envelope = parse_message(raw).envelope

    assert envelope.sender == (Address(None, None, "a", "example.org"),)
    assert envelope.reply_to == (Address(None, None, "a", "example.org"),)


def test_present_sender_and_reply_to_are_kept() -> None:
    raw = crlf("From: a@example.org\nSender: s@example.org\nReply-To: r@example.org\n\n")
    envelope = parse_message(raw).envelope

    assert envelope.sender == (Address(None, None, "s", "example.org"),)
    assert envelope.reply_to == (Address(None, None, "r", "example.org"),)


def test_present_but_empty_subject_is_empty_string_not_nil() -> None:
    # RFC 3501 §7.4.2: absent is NIL, present but empty is "".
    envelope = parse_message(crlf("Subject:\nMessage-ID: \n\n")).envelope

    assert (envelope.subject, envelope.message_id, envelope.date) == ("", "", None)


def test_folded_subject_is_unfolded_in_the_envelope() -> None:
    raw = crlf("Subject: a long\n  subject line\n\n")

    assert parse_message(raw).envelope.subject == "a long  subject line"


def test_first_occurrence_of_a_repeated_field_wins() -> None:
    raw = crlf("Subject: first\nSubject: second\n\n")

    assert parse_message(raw).subject == "first"


# --- threading and dates ------------------------------------------------------------------------


def test_message_ids_are_stripped_and_references_listed() -> None:
    raw = crlf(
        "Message-ID:\n <a@example.org>\n"
        "In-Reply-To: <b@example.org> (comment)\n"
        "References: <c@example.org>\n <b@example.org>\n"
        "\n"
    )
    message = parse_message(raw)

    assert message.message_id == "<a@example.org>"
    assert message.in_reply_to == "<b@example.org>"
    assert message.references == ("<c@example.org>", "<b@example.org>")


def test_date_without_known_zone_is_utc() -> None:
    # RFC 5322 §3.3: -0000 means UTC with the local zone unknown.
    raw = crlf("Date: Tue, 1 Jul 2025 10:00:00 -0000\n\n")

    assert parse_message(raw).date == datetime(2025, 7, 1, 10, tzinfo=UTC)


def test_unparsable_date_is_none_and_raw_value_is_kept() -> None:
    message = parse_message(crlf("Date: next Tuesday\n\n"))

    assert message.date is None
    assert message.envelope.date == "next Tuesday"


# --- MIME defaults ------------------------------------------------------------------------------


def test_missing_content_type_in_a_part_defaults_to_text_plain_us_ascii() -> None:
    # RFC 2045 §5.2
    raw = crlf('Content-Type: multipart/mixed; boundary="b"\n\n--b\n\nhello\n--b--\n')
    child = part(raw, "1")

    assert (child.content_type, child.params) == ("text/plain", (("charset", "us-ascii"),))


def test_missing_content_type_in_a_digest_defaults_to_message_rfc822() -> None:
    # RFC 2046 §5.1.5
    raw = crlf(
        'Content-Type: multipart/digest; boundary="d"\n\n--d\n\nSubject: one\n\nfirst\n--d--\n'
    )
    child = part(raw, "1")

    assert (child.content_type, child.params) == ("message/rfc822", ())
    assert child.envelope is not None
    assert child.envelope.subject == "one"
    assert section(raw, "1.1") == b"first"


def test_syntactically_invalid_content_type_defaults_to_text_plain() -> None:
    # RFC 2045 §5.2
    body = parse_message(crlf("Content-Type: garbage\n\nx")).body

    assert (body.content_type, body.params) == ("text/plain", (("charset", "us-ascii"),))


def test_multipart_without_boundary_is_read_as_text_plain() -> None:
    body = parse_message(crlf("Content-Type: multipart/mixed\n\nhello")).body

    assert (body.part, body.content_type, body.children) == ("1", "text/plain", ())


def test_multipart_without_any_delimiter_is_one_part_holding_the_body() -> None:
    raw = crlf('Content-Type: multipart/mixed; boundary="b"\n\njust text\n')
    body = parse_message(raw).body

    assert [(c.part, c.content_type) for c in body.children] == [("1", "text/plain")]
    assert section(raw, "1") == b"just text\r\n"


def test_content_transfer_encoding_is_uppercased_and_defaults_to_7bit() -> None:
    quoted = parse_message(crlf("Content-Transfer-Encoding: Quoted-Printable\n\nx"))

    assert quoted.body.encoding == "QUOTED-PRINTABLE"
    assert parse_message(crlf("\nx")).body.encoding == "7BIT"


def test_content_id_description_md5_language_location_are_kept_raw() -> None:
    raw = crlf(
        "Content-Type: text/plain\n"
        "Content-ID: <logo@example.org>\n"
        "Content-Description: =?utf-8?q?Men=C3=BC?=\n"
        "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
        "Content-Language: en, de-CH\n"
        "Content-Location: http://example.org/menu.txt\n"
        "\n"
        "x"
    )
    body = parse_message(raw).body

    assert body.id == "<logo@example.org>"
    assert body.description == "=?utf-8?q?Men=C3=BC?="
    assert body.md5 == "Q2hlY2sgSW50ZWdyaXR5IQ=="
    assert body.language == ("en", "de-CH")
    assert body.location == "http://example.org/menu.txt"


def test_part_without_a_header_starts_its_body_right_after_the_delimiter() -> None:
    raw = crlf('Content-Type: multipart/mixed; boundary="b"\n\n--b\nno header here\n--b--\n')

    assert section(raw, "1") == b"no header here"
    assert section(raw, "1.MIME") == b""


# --- boundaries ---------------------------------------------------------------------------------


def test_missing_close_delimiter_ends_the_last_part_at_the_end_of_the_message() -> None:
    raw = crlf('Content-Type: multipart/mixed; boundary="b"\n\n--b\n\none\n--b\n\ntwo\n')

    assert section(raw, "1") == b"one"
    assert section(raw, "2") == b"two\r\n"


def test_transport_padding_after_a_delimiter_is_allowed() -> None:
    # RFC 2046 §5.1.1: receivers must handle white space added by transports.
    raw = crlf('Content-Type: multipart/mixed; boundary="b"\n\n--b  \n\none\n--b-- \n')

    assert section(raw, "1") == b"one"


def test_boundary_must_not_match_a_longer_boundary() -> None:
    raw = crlf(
        'Content-Type: multipart/mixed; boundary="b"\n'
        "\n"
        "--b\n"
        'Content-Type: multipart/alternative; boundary="b2"\n'
        "\n"
        "--b2\n"
        "\n"
        "inner\n"
        "--b2--\n"
        "--b\n"
        "\n"
        "outer\n"
        "--b--\n"
    )

    assert section(raw, "1.1") == b"inner"
    assert section(raw, "2") == b"outer"


def test_boundary_text_inside_a_line_is_not_a_delimiter() -> None:
    raw = crlf('Content-Type: multipart/mixed; boundary="b"\n\n--b\n\nsee --b here\n--b--\n')

    assert section(raw, "1") == b"see --b here"


def test_empty_part_between_adjacent_delimiters() -> None:
    raw = crlf('Content-Type: multipart/mixed; boundary="b"\n\n--b\n--b\n\ntwo\n--b--\n')
    message = parse_message(raw)

    assert [c.part for c in message.body.children] == ["1", "2"]
    assert section(raw, "1") == b""
    assert section(raw, "2") == b"two"


def test_bare_lf_message_is_parsed_with_lf_line_ends() -> None:
    raw = (
        b"From: a@example.org\n"
        b"Subject: bare\n"
        b'Content-Type: multipart/mixed; boundary="b"\n'
        b"\n"
        b"--b\n"
        b"Content-Type: text/plain\n"
        b"\n"
        b"line one\n"
        b"line two\n"
        b"--b--\n"
    )
    message = parse_message(raw)

    assert message.subject == "bare"
    assert message.header_size == raw.index(b"\n\n") + 2
    assert section(raw, "1") == b"line one\nline two"
    assert section(raw, "1.MIME") == b"Content-Type: text/plain\n\n"
    assert part(raw, "1").lines == 2


def test_message_without_blank_line_is_all_header() -> None:
    raw = b"Subject: no body\r\nFrom: a@example.org\r\n"
    message = parse_message(raw)

    assert message.header_size == len(raw)
    assert message.body.size == 0
    assert section(raw, "HEADER") == raw
    assert section(raw, "TEXT") == b""


def test_message_starting_with_blank_line_has_empty_header() -> None:
    message = parse_message(b"\r\nbody")

    assert message.header_size == 2
    assert message.envelope.from_ is None


# --- lines --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "lines"),
    [(b"", 0), (b"one", 1), (b"one\r\n", 1), (b"one\r\ntwo", 2), (b"\r\n\r\n", 2), (b"a\nb\n", 2)],
    ids=["empty", "no-break", "one-line", "partial-last", "blank-lines", "bare-lf"],
)
def test_lines_of_a_text_body(body: bytes, lines: int) -> None:
    assert parse_message(b"Subject: x\r\n\r\n" + body).body.lines == lines


def test_lines_are_none_for_non_text_parts() -> None:
    assert parse_message(crlf("Content-Type: image/gif\n\nGIF\n")).body.lines is None


# --- header_fields ------------------------------------------------------------------------------


FOLDED_HEADER = (
    b"Received: from a\r\n\tby b\r\n"
    b"Subject: folded\r\n  across lines\r\n"
    b"From: a@example.org\r\n"
    b"X-Other: yes\r\n"
    b"\r\n"
)


def test_header_fields_keeps_folded_lines_and_ends_with_the_blank_line() -> None:
    assert header_fields(FOLDED_HEADER, ["SUBJECT", "from"]) == (
        b"Subject: folded\r\n  across lines\r\nFrom: a@example.org\r\n\r\n"
    )


def test_header_fields_not_returns_the_other_fields() -> None:
    assert header_fields(FOLDED_HEADER, ["Subject", "From"], exclude=True) == (
        b"Received: from a\r\n\tby b\r\nX-Other: yes\r\n\r\n"
    )


def test_header_fields_with_no_match_is_just_the_blank_line() -> None:
    assert header_fields(FOLDED_HEADER, ["Cc"]) == b"\r\n"


def test_header_fields_keeps_every_occurrence() -> None:
    header = b"Received: one\r\nX: 1\r\nReceived: two\r\n\r\n"

    assert header_fields(header, ["received"]) == b"Received: one\r\nReceived: two\r\n\r\n"


def test_header_fields_of_a_header_without_blank_line_ends_with_crlf() -> None:
    assert header_fields(b"Subject: x", ["subject"]) == b"Subject: x\r\n\r\n"


def test_header_fields_section_through_part_bytes() -> None:
    assert section(SIMPLE, "HEADER.FIELDS (Subject Date)") == (
        b"Subject: Lunch\r\nDate: Tue, 01 Jul 2025 12:30:00 +0200\r\n\r\n"
    )
    assert section(SIMPLE, "HEADER.FIELDS.NOT (Subject Date Message-ID)") == (
        b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\n\r\n"
    )


# --- search text and preview --------------------------------------------------------------------


def test_search_text_has_decoded_headers_and_body() -> None:
    assert parse_message(SIMPLE).text == (
        "Alice <alice@example.org>\nbob@example.net\nLunch\n\nShall we meet at noon?\nAlice"
    )


def test_base64_text_is_decoded_with_its_charset() -> None:
    raw = crlf(
        "Content-Type: text/plain; charset=iso-8859-1\n"
        "Content-Transfer-Encoding: base64\n"
        "\n"
        "R3L832UgYXVzIEv2bG4=\n"
    )

    assert parse_message(raw).text == "Grüße aus Köln"


def test_quoted_printable_text_is_decoded() -> None:
    raw = crlf(
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: quoted-printable\n"
        "\n"
        "Caf=C3=A9 au l=\n"
        "ait\n"
    )

    assert parse_message(raw).text == "Café au lait"


def test_unknown_charset_text_is_decoded_as_utf8() -> None:
    raw = b"Content-Type: text/plain; charset=x-martian\r\n\r\ncaf\xc3\xa9 \xff"

    assert parse_message(raw).text == "café \ufffd"


def test_html_is_reduced_to_its_text() -> None:
    raw = crlf(
        "Content-Type: text/html\n"
        "\n"
        "<html><head><style>p { color: red }</style></head>"
        "<body><p>Hello <b>W</b>orld &amp; friends</p><!-- hidden -->"
        "<script>var x = '<p>no</p>';</script><div>a&nbsp;b</div></body></html>\n"
    )

    assert parse_message(raw).text == "Hello World & friends\na b"


def test_attachment_bodies_are_not_search_text() -> None:
    assert "JVBER" not in parse_message(MIXED).text


def test_search_text_is_capped() -> None:
    raw = b"Subject: big\r\n\r\n" + b"word " * (MAX_SEARCH_TEXT // 2)

    assert len(parse_message(raw).text) == MAX_SEARCH_TEXT


def test_preview_collapses_white_space_and_is_cut_at_200_characters() -> None:
    raw = b"Subject: x\r\n\r\n" + b"Hello\r\n\r\n   there\t" + b"x" * 500
    preview = parse_message(raw).preview

    assert preview.startswith("Hello there xxx")
    assert len(preview) == 200


# --- malformed input and limits -----------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n",
        b"\x00\xff\xfe garbage \x80\x81",
        bytes(range(256)) * 4,
        b":::\r\n\r\n",
        b'From: <<<>>>,,,;;;:::"""(((\r\n\r\n',
        b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n",
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b',
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b--',
        b"Content-Type: message/rfc822\r\n\r\n",
        b'Content-Type: text/plain; charset="\r\n\r\nx',
        b"Content-Type: text/plain; charset=punycode\r\n\r\n\xff" * 3,
        b"Content-Type: text/html\r\n\r\n<a <a <a <!-- <script",
        b"Content-Transfer-Encoding: base64\r\nContent-Type: text/plain\r\n\r\n=====",
        b"Subject: =?utf-8?b?\r\n\r\n",
        b"Content-Disposition: attachment; filename*0*=x'; filename*1*=%G\r\n\r\n",
        b"Date: Mon, 99 Foo 99999 99:99:99 +9999\r\n\r\n",
    ],
    ids=lambda raw: repr(raw[:24]),
)
def test_malformed_input_does_not_raise(raw: bytes) -> None:
    message = parse_message(raw)

    assert message.size == len(raw)
    assert json.loads(json.dumps(message.to_json())) == message.to_json()


def test_nesting_deeper_than_the_limit_becomes_an_opaque_leaf() -> None:
    raw = b"".join(
        b'Content-Type: multipart/mixed; boundary="level%dx"\r\n\r\n--level%dx\r\n' % (i, i)
        for i in range(MAX_DEPTH + 10)
    )
    node = parse_message(raw).body
    depth = 0
    while node.children:
        node = node.children[0]
        depth += 1

    assert depth == MAX_DEPTH
    assert node.content_type == "application/octet-stream"


def test_parts_beyond_the_limit_are_not_split_out() -> None:
    raw = b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + b"--b\r\n\r\nx\r\n" * 5000

    assert len(parse_message(raw).body.children) == MAX_PARTS - 1


def test_message_rfc822_nesting_is_limited() -> None:
    raw = b"Content-Type: message/rfc822\r\n\r\n" * (MAX_DEPTH * 2) + b"Subject: deep\r\n\r\n"
    node = parse_message(raw).body
    depth = 0
    while node.children:
        node = node.children[0]
        depth += 1

    assert depth == MAX_DEPTH
    assert node.envelope is None


# --- JSON -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [SIMPLE, MIXED, NESTED, FORWARDED, RFC3501_EXAMPLE],
    ids=["simple", "mixed", "nested", "forwarded", "rfc3501-example"],
)
def test_json_round_trip(raw: bytes) -> None:
    message = parse_message(raw)
    stored = json.loads(json.dumps(message.to_json()))

    assert ParsedMessage.from_json(stored) == message


def test_json_round_trip_keeps_group_markers_and_date() -> None:
    raw = crlf("Date: Tue, 1 Jul 2025 10:00:00 +0530\nTo: g: a@b.example;\n\nx")
    message = parse_message(raw)
    restored = ParsedMessage.from_json(json.loads(json.dumps(message.to_json())))

    assert restored.envelope.to == message.envelope.to
    assert restored.date == message.date
    assert restored.date is not None
    assert restored.date.utcoffset() == timedelta(hours=5, minutes=30)


def test_json_has_a_version() -> None:
    assert parse_message(SIMPLE).to_json()["version"] == 1
