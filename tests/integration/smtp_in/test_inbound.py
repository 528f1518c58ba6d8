"""The inbound listener (MX): RFC 5321 dialogue, relay rules, and the spool, over real sockets."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest

from postroom import store
from postroom.db import Conn
from postroom.store.queue import get_queue_entry, read_queued_message
from postroom.store.types import QueueId
from tests.integration.smtp_in.conftest import HOSTNAME
from tests.integration.smtp_in.transcript import ServerThread, Transcript
from tests.support import Tenant

EHLO_INBOUND = [
    f"250-{HOSTNAME}",
    "250-PIPELINING",
    "250-SIZE 65536",
    "250-8BITMIME",
    "250-SMTPUTF8",
    "250-ENHANCEDSTATUSCODES",
    "250-DSN",
    "250 STARTTLS",
]


@pytest.fixture
def t(smtp: ServerThread) -> Iterator[Transcript]:
    transcript = Transcript(smtp.inbound).greeting()
    yield transcript
    transcript.close()


def greeted(t: Transcript) -> Transcript:
    t.send("EHLO client.example").reply()
    return t


async def queued(conn: Conn, reply: str) -> tuple[bytes, list[str], str]:
    """The content, recipients and reverse-path of the message a 250 reply names."""
    assert reply.startswith("250 2.0.0 OK queued as "), reply
    queue_id = QueueId(int(reply.rsplit(" ", 1)[1]))
    entry = await get_queue_entry(conn, queue_id, with_attempts=False)
    raw = await read_queued_message(conn, queue_id)
    return raw, [d.recipient for d in entry.deliveries], entry.message.reverse_path


def body_of(raw: bytes) -> bytes:
    """The message without the Received: and Authentication-Results: fields smtp-in
    prepended (the latter one field, folded over several lines)."""
    assert raw.startswith(b"Received: from ")
    end = raw.index(b"\r\n", raw.index(b"; "))
    rest = raw[end + 2 :]
    assert rest.startswith(b"Authentication-Results: mx.postroom.test;\r\n")
    lines = rest.split(b"\r\n")
    first = 1
    while lines[first][:1] in (b" ", b"\t"):
        first += 1
    return b"\r\n".join(lines[first:])


def test_greeting_names_the_host(smtp: ServerThread) -> None:
    t = Transcript(smtp.inbound)
    t.expect_exactly(f"220 {HOSTNAME} ESMTP Postroom ready")
    t.close()


def test_ehlo_advertises_what_is_honoured(t: Transcript) -> None:
    t.send("EHLO client.example").expect_exactly(*EHLO_INBOUND)


def test_helo_answers_with_the_host_name(t: Transcript) -> None:
    t.send("HELO client.example").expect_exactly(f"250 {HOSTNAME}")


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("EHLO", "501 5.5.4 Syntax: EHLO/HELO domain"),
        ("HELO", "501 5.5.4 Syntax: EHLO/HELO domain"),
        ("FOO bar", "500 5.5.2 Command not recognized"),
        ("", "500 5.5.2 Command not recognized"),
        ("M@IL FROM:<a@b.example>", "500 5.5.2 Command not recognized"),
        ("EXPN list", "502 5.5.1 Command not implemented"),
        ("BDAT 10 LAST", "502 5.5.1 Command not implemented"),
        ("AUTH PLAIN AGFsaWNlAHB3", "502 5.5.1 AUTH is not available on this port"),
        ("MAIL FROM:<a@b.example>", "503 5.5.1 Send EHLO or HELO first"),
        ("RCPT TO:<a@b.example>", "503 5.5.1 Send EHLO or HELO first"),
        ("DATA", "503 5.5.1 Send EHLO or HELO first"),
        ("NOOP", "250 2.0.0 OK"),
        ("NOOP anything", "250 2.0.0 OK"),
        ("RSET", "250 2.0.0 Reset"),
        ("RSET now", "501 5.5.4 No arguments allowed"),
        (
            "VRFY postmaster",
            "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery",
        ),
        ("VRFY", "501 5.5.4 Syntax: VRFY address"),
        ("HELP", "214 2.0.0 See RFC 5321; commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT"),
    ],
    ids=lambda v: v if isinstance(v, str) and v and not v[0].isdigit() else None,
)
def test_command_before_ehlo(t: Transcript, line: str, reply: str) -> None:
    t.send(line).expect_exactly(reply)


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("RCPT TO:<a@b.example>", "503 5.5.1 Need MAIL command"),
        ("DATA", "503 5.5.1 Need MAIL command"),
        ("MAIL <a@b.example>", "501 5.5.2 Syntax: MAIL FROM:<address>"),
        ("MAIL FROM:a@b.example", "501 5.5.2 Syntax: MAIL FROM:<address>"),
        ("MAIL FROM:<a@b.example", "501 5.1.7 Bad sender address syntax"),
        ("MAIL FROM:<a b@b.example>", "501 5.1.7 Bad sender address syntax"),
        ("MAIL FROM:<a@b..example>", "501 5.1.7 Bad sender address syntax"),
        ("MAIL FROM:<a\x01@b.example>", "501 5.1.7 Bad sender address syntax"),
        ("MAIL FROM:<a@b.example>SIZE=10", "501 5.1.7 Bad sender address syntax"),
        ("MAIL FROM:<@>", "501 5.1.7 Bad sender address syntax"),
        ("MAIL FROM:<a@[300.1.1.1]>", "501 5.1.7 Bad sender address syntax"),
        ("MAIL FROM:<a@b.example> SIZE=x", "501 5.5.4 SIZE must be a number"),
        (
            "MAIL FROM:<a@b.example> SIZE=65537",
            "552 5.3.4 Message size exceeds fixed maximum message size",
        ),
        ("MAIL FROM:<a@b.example> BODY=BINARYMIME", "501 5.5.4 BODY must be 7BIT or 8BITMIME"),
        (
            "MAIL FROM:<a@b.example> MT-PRIORITY=3",
            "555 5.5.4 Parameters not recognized or not implemented",
        ),
        ("MAIL FROM:<a@b.example> RET=BODY", "501 5.5.4 RET must be FULL or HDRS"),
        ("MAIL FROM:<a@b.example> RET", "501 5.5.4 RET must be FULL or HDRS"),
        (
            "MAIL FROM:<a@b.example> RET=FULL RET=HDRS",
            "555 5.5.4 Parameters not recognized or not implemented",
        ),
        (
            "MAIL FROM:<a@b.example> ENVID=a+0Db",
            "501 5.5.4 ENVID must be xtext of at most 100 characters",
        ),
        (
            "MAIL FROM:<a@b.example> ENVID=a+b",
            "501 5.5.4 ENVID must be xtext of at most 100 characters",
        ),
        (
            "MAIL FROM:<a@b.example> ENVID=" + "x" * 101,
            "501 5.5.4 ENVID must be xtext of at most 100 characters",
        ),
        (
            "MAIL FROM:<a@b.example> SIZE=1 SIZE=2",
            "555 5.5.4 Parameters not recognized or not implemented",
        ),
        (
            "MAIL FROM:<pelé@b.example>",
            "553 5.6.7 Non-ASCII address requires the SMTPUTF8 parameter",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and not v[0].isdigit() else None,
)
def test_mail_from_is_checked(t: Transcript, line: str, reply: str) -> None:
    greeted(t).send(line).expect_exactly(reply)


@pytest.mark.parametrize(
    "line",
    [
        "MAIL FROM:<>",
        "MAIL FROM:<a@b.example>",
        "MAIL FROM: <a@b.example>",
        "mail from:<A@B.Example>",
        "MAIL FROM:<@relay.example:a@b.example>",
        'MAIL FROM:<"x y>z"@b.example>',
        "MAIL FROM:<a@[127.0.0.1]>",
        "MAIL FROM:<a@[IPv6:::1]>",
        "MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME",
        "MAIL FROM:<pelé@bücher.example> SMTPUTF8",
        "MAIL FROM:<a@b.example> AUTH=<>",
        "MAIL FROM:<a@b.example> RET=HDRS ENVID=QQ314159",
        "MAIL FROM:<> ret=full envid=a+2Bb",
    ],
)
def test_mail_from_is_accepted(t: Transcript, line: str) -> None:
    greeted(t).send(line).expect_exactly("250 2.1.0 Sender OK")


def test_nested_mail_is_a_sequence_error(t: Transcript) -> None:
    greeted(t).send("MAIL FROM:<a@b.example>").expect("250")
    t.send("MAIL FROM:<a@b.example>").expect_exactly("503 5.5.1 Nested MAIL command")


def test_data_without_rcpt_is_a_sequence_error(t: Transcript) -> None:
    greeted(t).send("MAIL FROM:<a@b.example>").expect("250")
    t.send("DATA").expect_exactly("503 5.5.1 Need RCPT before DATA")


async def test_relay_to_a_foreign_domain_is_denied(t: Transcript) -> None:
    greeted(t).send("MAIL FROM:<a@b.example>").expect("250")
    t.send("RCPT TO:<someone@elsewhere.example>").expect_exactly("554 5.7.1 Relay access denied")


async def test_unknown_local_user_is_refused_at_rcpt(t: Transcript, tenant: Tenant) -> None:
    greeted(t).send("MAIL FROM:<a@b.example>").expect("250")
    t.send(f"RCPT TO:<nobody@{tenant.domain.name}>").expect_exactly("550 5.1.1 No such user here")


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("RCPT TO:<>", "501 5.1.3 Bad recipient address syntax"),
        ("RCPT TO:<a@>", "501 5.1.3 Bad recipient address syntax"),
        ("RCPT TO:<a@b.example", "501 5.1.3 Bad recipient address syntax"),
        ("RCPT TO: a@b.example", "501 5.5.2 Syntax: RCPT TO:<address>"),
        ("RCPT <a@b.example>", "501 5.5.2 Syntax: RCPT TO:<address>"),
        (
            "RCPT TO:<a@b.example> XFORWARD=1",
            "555 5.5.4 Parameters not recognized or not implemented",
        ),
        (
            "RCPT TO:<a@b.example> NOTIFY=NEVER,FAILURE",
            "501 5.5.4 NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY",
        ),
        (
            "RCPT TO:<a@b.example> NOTIFY=SOMETIMES",
            "501 5.5.4 NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY",
        ),
        (
            "RCPT TO:<a@b.example> NOTIFY=FAILURE,FAILURE",
            "501 5.5.4 NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY",
        ),
        ("RCPT TO:<a@b.example> ORCPT=a@b.example", "501 5.5.4 ORCPT must be addr-type;xtext"),
        ("RCPT TO:<a@b.example> ORCPT=rfc822;a+0A", "501 5.5.4 ORCPT must be addr-type;xtext"),
    ],
    ids=lambda v: v if isinstance(v, str) and not v[0].isdigit() else None,
)
def test_rcpt_to_is_checked(t: Transcript, line: str, reply: str) -> None:
    greeted(t).send("MAIL FROM:<a@b.example>").expect("250")
    t.send(line).expect_exactly(reply)


async def test_message_is_spooled_byte_for_byte(t: Transcript, tenant: Tenant, conn: Conn) -> None:
    await tenant.account("alice")
    content = (
        b"From: a@b.example\r\nSubject: dots\r\n\r\n"
        b".leading dot\r\n..two dots\r\n.\tdot tab\r\nend\r\n"
    )
    stuffed = content.replace(b"\r\n.", b"\r\n..")
    greeted(t).send("MAIL FROM:<a@b.example>").expect("250")
    t.send(f"RCPT TO:<alice@{tenant.domain.name}>").expect_exactly("250 2.1.5 Recipient OK")
    t.send("DATA").expect_exactly("354 Start mail input; end with <CRLF>.<CRLF>")
    t.send(stuffed + b".\r\n")
    raw, recipients, reverse_path = await queued(conn, t.reply()[0])
    assert body_of(raw) == content
    assert recipients == [f"alice@{tenant.domain.name}"]
    assert reverse_path == "a@b.example"


async def test_dsn_parameters_are_kept_with_the_message(
    start_smtp: Callable[..., ServerThread], tenant: Tenant, conn: Conn
) -> None:
    """RFC 3461: RET and ENVID of MAIL, NOTIFY and ORCPT of each RCPT, xtext decoded (with
    every DSN kind allowed to senders who did not authenticate)."""
    server = start_smtp(unauthenticated_notify="SUCCESS,FAILURE,DELAY")
    t = Transcript(server.inbound).greeting()
    await tenant.account("alice")
    await tenant.account("bob")
    alice, bob = tenant.address("alice"), tenant.address("bob")
    greeted(t).send("MAIL FROM:<a@b.example> RET=FULL ENVID=QQ+2B314159").expect("250")
    t.send(f"RCPT TO:<{alice}> NOTIFY=delay,failure ORCPT=rfc822;first+2Blast@old.example")
    t.expect_exactly("250 2.1.5 Recipient OK")
    t.send(f"RCPT TO:<{bob}> NOTIFY=NEVER").expect_exactly("250 2.1.5 Recipient OK")
    t.send("DATA").expect("354")
    t.send(b"Subject: dsn\r\n\r\nx\r\n.\r\n")
    reply = t.reply()[0]
    entry = await get_queue_entry(conn, QueueId(int(reply.rsplit(" ", 1)[1])))
    # RET=FULL of a sender who did not authenticate is kept as HDRS (the DSN policy).
    assert (entry.message.dsn_ret, entry.message.env_id) == ("HDRS", "QQ+314159")
    first, second = entry.deliveries
    assert (first.notify, first.original_recipient) == (
        "FAILURE,DELAY",
        "rfc822;first+last@old.example",
    )
    assert (second.notify, second.original_recipient) == ("NEVER", None)
    t.close()


async def test_null_sender_is_accepted(t: Transcript, tenant: Tenant, conn: Conn) -> None:
    await tenant.account("alice")
    greeted(t).send("MAIL FROM:<>").expect_exactly("250 2.1.0 Sender OK")
    t.send(f"RCPT TO:<alice@{tenant.domain.name}>").expect("250")
    t.send("DATA").expect("354")
    t.send(b"Subject: bounce\r\n\r\nbody\r\n.\r\n")
    _raw, _rcpts, reverse_path = await queued(conn, t.reply()[0])
    assert reverse_path == ""


async def test_first_line_dot_and_empty_message(t: Transcript, tenant: Tenant, conn: Conn) -> None:
    await tenant.account("alice")
    for wire, content in [(b"..x\r\n.\r\n", b".x\r\n"), (b".\r\n", b"")]:
        greeted(t).send("MAIL FROM:<a@b.example>").expect("250")
        t.send(f"RCPT TO:<alice@{tenant.domain.name}>").expect("250")
        t.send("DATA").expect("354")
        t.send(wire)
        raw, _, _ = await queued(conn, t.reply()[0])
        assert body_of(raw) == content


async def test_aliases_catch_all_and_plus_addresses_are_local(
    t: Transcript, tenant: Tenant, conn: Conn
) -> None:
    await tenant.account("alice")
    await store.add_alias(conn, tenant.address("info"), tenant.address("alice"))
    greeted(t).send("MAIL FROM:<a@b.example>").expect("250")
    for local in ("info", "alice+news", "ALICE"):
        t.send(f"RCPT TO:<{local}@{tenant.domain.name}>").expect_exactly("250 2.1.5 Recipient OK")
    t.send(f"RCPT TO:<bob@{tenant.domain.name}>").expect_exactly("550 5.1.1 No such user here")
    await store.add_alias(conn, f"@{tenant.domain.name}", tenant.address("alice"))
    t.send(f"RCPT TO:<bob@{tenant.domain.name}>").expect_exactly("250 2.1.5 Recipient OK")
    t.send("DATA").expect("354")
    t.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
    _raw, recipients, _ = await queued(conn, t.reply()[0])
    # Stored as given: aliases are expanded at delivery time.
    domain = tenant.domain.name
    assert recipients == [
        f"info@{domain}",
        f"alice+news@{domain}",
        f"ALICE@{domain}",
        f"bob@{domain}",
    ]


async def test_too_many_recipients_get_452(t: Transcript, tenant: Tenant) -> None:
    await tenant.account("alice")
    for n in range(5):
        await store.add_alias(
            t_conn := tenant.conn, tenant.address(f"a{n}"), tenant.address("alice")
        )
    del t_conn
    greeted(t).send("MAIL FROM:<a@b.example>").expect("250")
    for n in range(5):
        t.send(f"RCPT TO:<a{n}@{tenant.domain.name}>").expect("250")
    t.send(f"RCPT TO:<alice@{tenant.domain.name}>").expect_exactly("452 4.5.3 Too many recipients")


async def test_pipelined_group_gets_every_reply_in_order(
    t: Transcript, tenant: Tenant, conn: Conn
) -> None:
    await tenant.account("alice")
    domain = tenant.domain.name
    group = (
        f"EHLO client.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<alice@{domain}>\r\n"
        f"RCPT TO:<nobody@{domain}>\r\nRCPT TO:<x@elsewhere.example>\r\nDATA\r\n"
    ).encode()
    t.send(group)
    assert t.reply() == EHLO_INBOUND
    t.expect_exactly("250 2.1.0 Sender OK").expect_exactly("250 2.1.5 Recipient OK")
    t.expect_exactly("550 5.1.1 No such user here").expect_exactly("554 5.7.1 Relay access denied")
    t.expect_exactly("354 Start mail input; end with <CRLF>.<CRLF>")
    # RFC 2920: the end of DATA may be followed by the next commands in the same write.
    t.send(b"Subject: p\r\n\r\nbody\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n")
    raw, recipients, _ = await queued(conn, t.reply()[0])
    assert body_of(raw) == b"Subject: p\r\n\r\nbody\r\n"
    assert recipients == [f"alice@{domain}"]
    t.expect_exactly("250 2.0.0 Reset").expect_exactly("250 2.0.0 OK").expect_exactly(
        "221 2.0.0 Bye"
    )
    assert t.closed()


async def test_data_after_only_failed_recipients_gets_554(t: Transcript, tenant: Tenant) -> None:
    greeted(t).send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@elsewhere.example>\r\nDATA\r\n")
    t.expect("250").expect("554 5.7.1").expect_exactly("554 5.5.1 No valid recipients")
    t.send("NOOP").expect_exactly("250 2.0.0 OK")


@pytest.mark.parametrize(
    "content",
    [
        b"Subject: a\r\n\r\nline\nline\r\n",
        b"Subject: a\r\n\r\nline\rline\r\n",
        b"Subject: a\r\n\r\nx\n.\nMAIL FROM:<evil@b.example>\r\n",
        b"Subject: a\r\n\r\nx\r\n.\nMAIL FROM:<evil@b.example>\r\n",
        b"Subject: a\r\n\r\nx\n.\r\nMAIL FROM:<evil@b.example>\r\n",
        b"Subject: a\r\n\r\nx\r.\r\nMAIL FROM:<evil@b.example>\r\n",
        b"Subject: a\r\n\r\nx\r\n.\rMAIL FROM:<evil@b.example>\r\n",
    ],
    ids=[
        "bare-lf",
        "bare-cr",
        "lf-dot-lf",
        "crlf-dot-lf",
        "lf-dot-crlf",
        "cr-dot-crlf",
        "crlf-dot-cr",
    ],
)
async def test_bare_line_endings_are_refused_so_nothing_is_smuggled(
    t: Transcript, tenant: Tenant, content: bytes
) -> None:
    await tenant.account("alice")
    greeted(t).send("MAIL FROM:<a@b.example>").expect("250")
    t.send(f"RCPT TO:<alice@{tenant.domain.name}>").expect("250")
    t.send("DATA").expect("354")
    t.send(content + b".\r\n")
    t.expect_exactly(
        "554 5.6.0 Message refused: bare CR or LF in the content; lines must end with CRLF"
    )
    # The session goes on, in sync, and the would-be second transaction never started.
    t.send("RCPT TO:<x@b.example>").expect_exactly("503 5.5.1 Need MAIL command")


async def test_oversized_message_is_read_to_the_end_then_refused(
    t: Transcript, tenant: Tenant
) -> None:
    await tenant.account("alice")
    greeted(t).send("MAIL FROM:<a@b.example>").expect("250")
    t.send(f"RCPT TO:<alice@{tenant.domain.name}>").expect("250")
    t.send("DATA").expect("354")
    t.send(b"Subject: big\r\n\r\n" + b"x" * 998 + b"\r\n" * 1 + (b"y" * 998 + b"\r\n") * 200)
    t.send(b".\r\n")
    t.expect_exactly("552 5.3.4 Message size exceeds fixed maximum message size")
    t.send("NOOP").expect_exactly("250 2.0.0 OK")


def test_overlong_command_line_gets_500_and_the_session_goes_on(t: Transcript) -> None:
    t.send("NOOP " + "x" * 10_000).expect_exactly("500 5.5.2 Line too long")
    t.send("NOOP").expect_exactly("250 2.0.0 OK")


def test_command_with_bare_lf_is_refused(t: Transcript) -> None:
    t.send(b"NOOP\n").expect_exactly("500 5.5.2 Command lines must end with CRLF")


def test_quit_says_bye_and_closes(t: Transcript) -> None:
    t.send("QUIT").expect_exactly("221 2.0.0 Bye")
    assert t.closed()


def test_garbage_flood_ends_with_421_and_others_are_unaffected(smtp: ServerThread) -> None:
    t = Transcript(smtp.inbound).greeting()
    t.send(b"\x00\xff garbage\r\n" * 19 + b"\x00\xff garbage\r\n")
    for _ in range(19):
        t.expect_exactly("500 5.5.2 Command not recognized")
    t.expect_exactly("500 5.5.2 Command not recognized")
    t.expect_exactly("421 4.7.0 Too many errors, closing connection")
    assert t.closed()
    other = Transcript(smtp.inbound).greeting()
    other.send("NOOP").expect_exactly("250 2.0.0 OK")
    other.close()


async def test_received_field_is_prepended(t: Transcript, tenant: Tenant, conn: Conn) -> None:
    await tenant.account("alice")
    greeted(t).send("MAIL FROM:<a@b.example>").expect("250")
    t.send(f"RCPT TO:<alice@{tenant.domain.name}>").expect("250")
    t.send("DATA").expect("354")
    t.send(b"Subject: trace\r\n\r\nbody\r\n.\r\n")
    raw, _, _ = await queued(conn, t.reply()[0])
    trace = raw[: raw.index(b"Subject:")].decode()
    lines = trace.split("\r\n")
    assert lines[0] == "Received: from client.example ([127.0.0.1])"
    assert lines[1] == f"\tby {HOSTNAME} (Postroom)"
    assert re.fullmatch(r"\twith ESMTP id [0-9A-F]{16}", lines[2])
    assert re.fullmatch(
        rf"\tfor <alice@{re.escape(tenant.domain.name)}>; \w{{3}}, \d\d \w{{3}} \d{{4}} "
        r"\d\d:\d\d:\d\d \+0000",
        lines[3],
    )
